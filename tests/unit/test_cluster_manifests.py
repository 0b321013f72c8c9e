"""The cluster manifests, read as YAML."""

from __future__ import annotations

from tests.support.deployment import SERVICES, manifests


def test_the_cluster_manifests_deploy_every_service_and_autoscale_workers_on_queue_depth() -> None:
    docs = manifests()
    deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    assert deployments == {f"leadflow-{s.replace('_', '-')}" for s in SERVICES}
    scaled = {
        d["spec"]["scaleTargetRef"]["name"]: d["spec"]["triggers"][0]
        for d in docs
        if d["kind"] == "ScaledObject"
    }
    assert set(scaled) == {"leadflow-router", "leadflow-http-delivery", "leadflow-email-delivery"}
    assert scaled["leadflow-http-delivery"]["type"] == "rabbitmq"
    assert scaled["leadflow-http-delivery"]["metadata"]["queueName"] == "http_delivery"


def test_the_cluster_uses_quorum_queues() -> None:
    config = next(d for d in manifests() if d["kind"] == "ConfigMap")
    assert config["data"]["LEADFLOW_QUEUE_TYPE"] == "quorum"


def test_every_console_copy_signs_sessions_with_one_secret() -> None:
    secret = next(d for d in manifests() if d["kind"] == "Secret")
    assert secret["stringData"]["LEADFLOW_CONSOLE_SECRET"]
