"""The ``report`` flow: rebuild the IG evidence pack and the public transparency notice (weekly).

Wiring only (``pipeline.report.evidence`` does the work). The parameter is a data root; the
task returns counts and paths. A broken audit chain still writes the pack (its panel turns red)
and then fails the run, so that a scheduled run alerts.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from pipeline.flows.writer import open_root
from pipeline.logs import install_redaction
from pipeline.report.evidence import build_evidence_pack

__all__ = ["report_flow"]

install_redaction()


@task(name="evidence-pack-and-notice", cache_policy=NO_CACHE, persist_result=False)
def build(data_root: str) -> dict:
    settings, keystore = open_root(data_root)
    paths = build_evidence_pack(settings, keystore)
    pack = paths["pack"]
    return {"evidence": str(paths["evidence"]), "notice": str(paths["notice"]), "audit_ok": pack.audit["ok"],
            "audit_entries": pack.audit["entries"], "first_bad_line": pack.audit["first_bad_line"],
            "controls": len(pack.checklist), "controls_passed": sum(c["passed"] for c in pack.checklist),
            "deliveries": len(pack.deliveries), "quarantined": len(pack.quarantines),
            "releases": len(pack.releases), "certificates": len(pack.certificates)}


@flow(name="report", persist_result=False, log_prints=False)
def report_flow(data_root: str) -> dict:
    """Rebuild the evidence pack and the notice; fail if the audit chain is broken."""
    result = build(data_root)
    create_markdown_artifact(
        key="ig-evidence-pack",
        markdown=(f"# IG evidence pack\n\n{result['controls_passed']} of {result['controls']} controls pass; audit chain "
                  f"{'intact' if result['audit_ok'] else 'BROKEN'} ({result['audit_entries']:,} entries).\n\n"
                  f"{result['deliveries']} deliveries, {result['quarantined']} quarantined, {result['releases']} "
                  f"releases, {result['certificates']} destruction certificates.\n"),
        description="Evidence pack summary (counts only)")
    if not result["audit_ok"]:
        raise RuntimeError(f"the audit log is broken at line {result['first_bad_line']}; the evidence pack shows it")
    get_run_logger().info("evidence pack: %d of %d controls pass", result["controls_passed"], result["controls"])
    return result
