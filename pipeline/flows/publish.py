"""The ``publish`` flow: an output contract's tables -> disclosure control -> ``outputs/published/``.

Wiring only (``pipeline.disclosure.publish`` does the work). Parameters are a data root, the
output contract's name and the suppression method; tasks return the package's name, counts and
file names. The artifact holds counts per table (cells, hidden, audit), never a cell's value.
Publishing reads the marts and never writes the warehouse, so it does not take the writer slot;
the library holds its own lock on ``outputs/published``.
"""

from __future__ import annotations

import dataclasses

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from pipeline.disclosure.publish import publish, verify_package
from pipeline.flows.writer import open_root, tick
from pipeline.logs import install_redaction

__all__ = ["publish_flow"]

install_redaction()


@task(name="publish-package", cache_policy=NO_CACHE, persist_result=False)
def publish_package(data_root: str, contract: str, method: str) -> dict:
    settings, keystore = open_root(data_root)
    result = publish(settings, keystore, settings.audit(), contract=contract, method=method,
                     progress=tick)
    if result.already_published:  # the steps were done by an earlier run: keep the bar honest
        for step in ("read-mart", *(t.name for t in result.tables), "write-package"):
            tick(step)
    return {"package": result.package, "folder": str(result.folder), "population": result.population,
            "profile": result.profile, "reference_date": result.reference_date,
            "already_published": result.already_published, "files": result.files,
            "tables": [dataclasses.asdict(t) for t in result.tables]}


@task(name="verify-package", cache_policy=NO_CACHE, persist_result=False)
def verify(folder: str) -> list[str]:
    problems = verify_package(folder)
    tick("verify-package")
    return problems


@flow(name="publish", persist_result=False, log_prints=False)
def publish_flow(data_root: str, contract: str = "commissioning", method: str = "auto") -> dict:
    """Build, protect, audit and publish an output package; then verify it as an output checker would."""
    logger = get_run_logger()
    result = publish_package(data_root, contract, method)
    problems = verify(result["folder"])
    if problems:
        raise RuntimeError(f"package {result['package']} failed verification: {problems[0]}")
    logger.info("package %s: %d tables, %s", result["package"], len(result["tables"]),
                "already published" if result["already_published"] else "published")
    for t in result["tables"]:
        if t.get("warning"):  # shares of cells only, never a value
            logger.warning("%s", t["warning"])
    create_table_artifact(key="published-package", table=[
        {"table": t["name"], "kind": t["kind"], "cells": t["cells"], "hidden": t["hidden"],
         "primary": t["primary"], "secondary": t["secondary"], "audit": "passed" if t["audit_passed"] else "FAILED",
         "warning": t.get("warning") or ""}
        for t in result["tables"]], description=f"Package {result['package']}: disclosure control per table (counts)")
    return result
