"""Metrics: the dashboard reads only metrics leadflow exports (a worker's metrics port is in
tests/integration/test_metrics_port.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

import shared.metrics
from shared.metrics import QueueDepthCollector
from shared.outbox import OutboxDepthCollector, Outgoing

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "leadflow-dashboard.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


class EmptyOutbox:
    """The outbox depth collector's source, without a database."""

    def older_than(self, seconds: float) -> list[Outgoing]:
        return []

    def confirmed(self, keys: list[Any]) -> None:
        pass

    def depth(self) -> int:
        return 0


def exported_series() -> set[str]:
    """Every series name leadflow's metrics can produce, labelled children or not."""
    assert shared.metrics  # the module registers its metrics on import
    families = [
        *REGISTRY.collect(),
        *QueueDepthCollector(dict).collect(),
        *OutboxDepthCollector(EmptyOutbox(), "intake").collect(),
    ]
    return {
        family.name + suffix
        for family in families
        if family.name.startswith("leadflow_")
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def test_every_series_the_dashboard_queries_is_one_leadflow_exports() -> None:
    # given the panels' queries
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queries = [t["expr"] for p in panels for t in p.get("targets", [])]
    queried = {name for q in queries for name in re.findall(r"leadflow_\w+", q)}

    # then each names a series leadflow exports, and the core ones are all on it
    assert queried, "the dashboard queries no leadflow metric"
    assert queried <= exported_series(), queried - exported_series()
    for core in (
        "leadflow_leads_received_total",
        "leadflow_deliveries_total",
        "leadflow_retries_total",
        "leadflow_dead_letters_total",
        "leadflow_delivery_attempt_seconds_bucket",
        "leadflow_outbox_depth",
    ):
        assert core in queried, core


def test_every_metric_a_process_exports_starts_with_leadflow() -> None:
    # given this process's registry, as /metrics serves it
    assert shared.metrics

    # when its families are listed
    names = {family.name for family in REGISTRY.collect()}

    # then each starts with leadflow_, the process's own figures included
    assert {n for n in names if not n.startswith("leadflow_")} == set()
    assert "leadflow_process_cpu_seconds" in names
