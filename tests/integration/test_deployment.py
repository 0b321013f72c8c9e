"""The deployment files: docker-compose validated by docker-compose itself (a process, so not
a unit test; the cluster manifests alone are read in tests/unit/test_cluster_manifests.py)."""

from __future__ import annotations

import subprocess
from typing import Any

import yaml

from tests.support.deployment import ROOT, SERVICES, manifests


def compose_config() -> dict[str, Any]:
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return yaml.safe_load(result.stdout)


def test_docker_compose_runs_rabbitmq_postgres_and_every_service_with_health_checks() -> None:
    services = compose_config()["services"]
    assert SERVICES | {"rabbitmq", "postgres", "migrate"} <= set(services)
    assert services["rabbitmq"]["image"].endswith("-management")
    for name in SERVICES | {"rabbitmq", "postgres"}:
        assert "healthcheck" in services[name], name


def test_every_leadflow_service_waits_for_healthy_dependencies_and_the_migration() -> None:
    services = compose_config()["services"]
    for name in SERVICES:
        depends = services[name]["depends_on"]
        assert depends["rabbitmq"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"


def test_the_migration_step_upgrades_the_schema_then_applies_the_flows_file() -> None:
    migrate = compose_config()["services"]["migrate"]
    script = " ".join(migrate["command"])
    assert script.index("leadflow db upgrade") < script.index("leadflow config apply")
    assert any(
        str(v).endswith(":/etc/leadflow/flows.yaml:ro")
        or (isinstance(v, dict) and v.get("target") == "/etc/leadflow/flows.yaml")
        for v in migrate["volumes"]
    )
    job = next(d for d in manifests() if d["kind"] == "Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert "leadflow config apply /etc/leadflow/flows.yaml" in container["args"][0]
    volume = job["spec"]["template"]["spec"]["volumes"][0]
    assert volume["configMap"]["name"] == "leadflow-flows"


def test_worker_pools_publish_no_fixed_host_ports_so_they_scale() -> None:
    services = compose_config()["services"]
    for name in ("router", "http_delivery", "email_delivery"):
        assert "ports" not in services[name]
        assert "container_name" not in services[name]
