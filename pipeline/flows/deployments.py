"""Every scheduled deployment ``safehaven serve`` registers, built from settings.

- ``ingest-<feed>``: one per feed contract, on ``ingest_cron`` (deliveries land monthly; a run
  that finds nothing new stages nothing);
- ``link-daily``: on ``link_cron``, after the morning's ingest runs (one link for all the feeds
  that landed, not one per feed), and ``stratify-after-link``, triggered whenever a link run
  completes (a Prefect event trigger, evaluated by the server);
- ``publish-monthly``, ``retain-daily`` and ``report-weekly`` on their crons.

All in ``schedule_timezone``; each deployment runs one at a time (``concurrency_limit=1``), and
the warehouse writers (link, stratify, retain) also share the warehouse's writer slot and flock
(``pipeline.flows.writer``). Parameters are the data root and names, never data.
"""

from __future__ import annotations

from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron

from pipeline.contracts import feed_names
from pipeline.settings import Settings

__all__ = ["all_deployments", "cron_deployment", "retain_deployment"]


def _root(settings: Settings) -> str:
    return str(settings.data_root.resolve())


def cron_deployment(flow, name: str, cron: str, settings: Settings, **parameters):
    """A deployment of ``flow`` on ``cron`` in the settings' time zone, one run at a time."""
    return flow.to_deployment(name=name, schedule=Cron(cron, timezone=settings.schedule_timezone),
                              parameters={"data_root": _root(settings), **parameters}, concurrency_limit=1,
                              tags=["safehaven"])


def _after(flow, name: str, upstream: str, settings: Settings):
    """A deployment of ``flow`` run whenever a run of the flow ``upstream`` completes."""
    trigger = DeploymentEventTrigger(
        expect={"prefect.flow-run.Completed"},
        match_related={"prefect.resource.role": "flow", "prefect.resource.name": upstream},
        parameters={"data_root": _root(settings)})
    return flow.to_deployment(name=name, triggers=[trigger], parameters={"data_root": _root(settings)},
                              concurrency_limit=1, tags=["safehaven"])


def retain_deployment(settings: Settings, name: str = "retain-daily"):
    """The daily retention deployment (cron and time zone from settings; one run at a time)."""
    from pipeline.flows.retain import retain_flow

    return cron_deployment(retain_flow, name, settings.retain_cron, settings)


def all_deployments(settings: Settings) -> list:
    from pipeline.flows.ingest import ingest_flow, ingest_task_runner
    from pipeline.flows.link import link_flow
    from pipeline.flows.publish import publish_flow
    from pipeline.flows.report import report_flow
    from pipeline.flows.stratify import stratify_flow

    ingest_runner = ingest_flow.with_options(task_runner=ingest_task_runner(settings))
    ingest = [cron_deployment(ingest_runner, f"ingest-{feed.replace('_', '-')}", settings.ingest_cron, settings,
                              feeds=[feed]) for feed in feed_names(settings.contracts_dir)]
    return [*ingest,
            cron_deployment(link_flow, "link-daily", settings.link_cron, settings),
            _after(stratify_flow, "stratify-after-link", "link", settings),
            cron_deployment(publish_flow, "publish-monthly", settings.publish_cron, settings),
            retain_deployment(settings),
            cron_deployment(report_flow, "report-weekly", settings.report_cron, settings)]
