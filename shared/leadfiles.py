"""Which columns a recipient's file has, and its rows read from the database as they go.

The columns are every field of the flows that route to the recipient (the latest
configuration), in the flows' order, followed by the fields of any other flow (or older
version of a flow) whose leads are in the file. Rows are read ``yield_per`` at a time,
so a file of any length needs constant memory. Email batches (the attachment) and
manual delivery and export (``services.manual``) build their files from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from shared.configstore import ConfigStore
from shared.flowconfig import LeadflowConfig
from shared.leaddata import display_fields

CHUNK = 500


def recipient_flows(config: LeadflowConfig, recipient_id: str) -> list[str]:
    return [
        flow_id
        for flow_id, flow in config.flows.items()
        if any(recipient_id in step.recipient_ids for step in flow.steps)
    ]


def columns(
    config: LeadflowConfig,
    flow_ids: Iterable[str],
    configs: ConfigStore | None = None,
    present: Iterable[tuple[str, int]] = (),
) -> list[str]:
    """The fields of ``flow_ids`` (latest config), then those of the (flow, version) pairs
    present in the file that the first part left out."""
    out: list[str] = []
    for flow_id in flow_ids:
        flow = config.flows.get(flow_id)
        if flow is not None:
            out.extend(f for f in flow.fields if f not in out)
    for flow_id, version in sorted(present):
        old = configs.get(version).flows.get(flow_id) if configs is not None else None
        if old is not None:
            out.extend(f for f in old.fields if f not in out)
    return out


def flow_names(config: LeadflowConfig, flow_ids: Iterable[str]) -> list[tuple[str, str | None]]:
    ordered = [f for f in config.flows if f in set(flow_ids)]
    ordered += sorted(set(flow_ids) - set(ordered))
    return [(f, config.flows[f].name if f in config.flows else None) for f in ordered]


def rows(session: Session, statement: Select[Any]) -> Iterator[dict[str, Any]]:
    """Each lead's normalized fields; ``statement`` selects ``Lead.fields``."""
    for fields in session.scalars(statement.execution_options(yield_per=CHUNK)):
        yield display_fields(fields)
