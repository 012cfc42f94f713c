"""Shared wiring for flows that write the warehouse: one writer at a time, and CLI progress.

One writer at a time, twice over. A flow holds the warehouse's writer lock (an flock, which the
OS releases if the process dies) for its whole run, and a Prefect global concurrency slot
(limit 1, created on first use, named after the data root) so the run shows as holding the
warehouse in Prefect. The flock is the source of truth: a run that holds it knows every slot
still counted on the limit belongs to a run that died (a killed process cannot release its
slot, and an ephemeral server forgets the lease), so it resets the count before taking the slot
instead of waiting out the lease.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.concurrency.sync import concurrency

from pipeline import linkage
from pipeline.keys import ENGINEER, open_keystore
from pipeline.settings import Settings, load_settings

__all__ = ["open_root", "set_progress_hook", "tick", "warehouse_writer", "writer_limit_name"]

_progress_hook = None


def set_progress_hook(hook) -> None:
    """In-process progress reporting for the CLI (never a flow parameter)."""
    global _progress_hook
    _progress_hook = hook


def tick(step: str) -> None:
    if _progress_hook:
        _progress_hook(step)


def open_root(data_root: str, roles: tuple[str, ...] = (ENGINEER,)) -> tuple[Settings, object]:
    """The settings and the keystore, opened with the credentials of ``roles`` (the engineer's)."""
    settings = load_settings(data_root=Path(data_root))
    return settings, open_keystore(settings, create_demo=settings.allow_synthetic_nhs_numbers, roles=roles)


def writer_limit_name(data_root: str) -> str:
    """The global concurrency limit guarding one warehouse (no path in it: a short digest)."""
    return "warehouse-writer-" + hashlib.sha256(str(Path(data_root).resolve()).encode()).hexdigest()[:12]


def _claim_limit(name: str) -> None:
    """Create the limit (1 slot) if missing; clear slots left by dead runs (we hold the flock)."""
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            return
        if limit.active_slots:
            get_run_logger().warning("clearing %d concurrency slot(s) left by a run that died", limit.active_slots)
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))


@contextmanager
def warehouse_writer(settings: Settings, keystore, data_root: str):
    """Hold the warehouse flock and the Prefect writer slot for the body of a flow."""
    limit = writer_limit_name(data_root)
    with linkage.open_warehouse(settings, keystore).writer():
        _claim_limit(limit)
        with concurrency(limit, occupy=1, strict=True, timeout_seconds=60):
            yield
