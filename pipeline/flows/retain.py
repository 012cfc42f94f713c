"""The ``retain`` flow: destroy what retention makes due, verify it, certify it; daily.

Wiring only (``pipeline.retention`` does the work). Parameters are a data root and a date;
tasks return counts, ids and file names. The run holds the warehouse writer (flock and Prefect
slot), because it rebuilds the warehouse. The artifact holds counts per feed and kind, never a
value. Its daily deployment is ``pipeline.flows.deployments.retain_deployment``.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from pipeline.flows.writer import open_root, tick, warehouse_writer
from pipeline.keys import ENGINEER, IG_LEAD
from pipeline.logs import install_redaction
from pipeline.retention.plan import make_plan
from pipeline.retention.run import run_retention

__all__ = ["retain_flow"]

install_redaction()


@task(name="retention-plan", cache_policy=NO_CACHE, persist_result=False)
def plan_counts(data_root: str, as_of: str) -> dict:
    settings, keystore = open_root(data_root)
    plan = make_plan(settings, keystore, dt.date.fromisoformat(as_of))
    return plan.totals()


@task(name="destroy-verify-certify", cache_policy=NO_CACHE, persist_result=False)
def destroy(data_root: str, as_of: str) -> dict:
    # Destruction needs the IG lead's credential beside the engineer's: it signs the certificate.
    settings, keystore = open_root(data_root, roles=(ENGINEER, IG_LEAD))
    with warehouse_writer(settings, keystore, data_root):
        result = run_retention(settings, keystore, settings.audit(), dt.date.fromisoformat(as_of),
                               progress=tick)
    if result.get("nothing_due"):
        return {"nothing_due": True, "reported": len(result["reported"])}
    return {"certificate": result["certificate"], "totals": result["totals"],
            "keys_destroyed": len(result["keys_destroyed"]), "verification": result["verification"]["passed"],
            "destroyed": [{"feed": d["feed"], "what": d["what"], "rows": d["rows"], "files": d["files"]}
                          for d in result["destroyed"]], "reported": len(result["reported"])}


@flow(name="retain", persist_result=False, log_prints=False)
def retain_flow(data_root: str, as_of: str | None = None) -> dict:
    """Destroy everything due under an approved policy, prove it, and issue a certificate."""
    logger = get_run_logger()
    day = as_of or open_root(data_root)[0].today().isoformat()
    totals = plan_counts(data_root, day)
    result = destroy(data_root, day)
    if result.get("nothing_due"):
        logger.info("nothing due on %s (%d item(s) reported, not destroyed)", day, result["reported"])
        return result | {"plan": totals}
    if not result["verification"]:
        raise RuntimeError(f"certificate {result['certificate']}: the verification scan failed; see the certificate")
    logger.info("certificate %s: %d warehouse records, %d files, %d keys destroyed", result["certificate"],
                result["totals"]["records"], result["totals"]["files"], result["keys_destroyed"])
    create_table_artifact(key="destruction-certificate", table=result["destroyed"],
                          description=f"Certificate {result['certificate']}: destroyed per feed (counts)")
    return result | {"plan": totals}
