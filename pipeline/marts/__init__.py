"""Marts: read-only, encrypted DuckDB files per access tier, and audited analyst access."""

from pipeline.marts.build import MartBuild, current_mart, publish_marts
from pipeline.marts.contracts import MartContract, load_mart_contracts, roles_of
from pipeline.marts.query import QueryResult, attach_marts, export_result, open_marts, run_query

__all__ = ["MartBuild", "MartContract", "QueryResult", "attach_marts", "current_mart", "export_result", "load_mart_contracts", "open_marts",
           "publish_marts", "roles_of", "run_query"]
