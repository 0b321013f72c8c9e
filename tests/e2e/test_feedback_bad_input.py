"""The feedback service conforms to its OpenAPI document under generated input."""

from __future__ import annotations

import requests
import schemathesis
from hypothesis import HealthCheck, settings

from services.feedback.openapi import OPENAPI
from tests.e2e.conftest import Stack

schema = schemathesis.openapi.from_dict(OPENAPI)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_feedback_conforms_to_its_openapi_document(case, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(base_url=stack.feedback_url)


def test_the_served_feedback_openapi_document_is_the_one_in_the_repository(stack: Stack) -> None:
    assert requests.get(f"{stack.feedback_url}/openapi.json", timeout=10).json() == OPENAPI


def test_feedback_is_ready_and_exports_metrics(stack: Stack) -> None:
    assert requests.get(f"{stack.feedback_url}/readyz", timeout=10).json()["status"] == "ok"
    metrics = requests.get(f"{stack.feedback_url}/metrics", timeout=10).text
    assert "leadflow_outbox_depth" in metrics
