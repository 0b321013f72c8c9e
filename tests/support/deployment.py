"""The deployment files, for the tests that read them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[2]
SERVICES = {"intake", "feedback", "console", "router", "http_delivery", "email_delivery"}


def manifests() -> list[dict[str, Any]]:
    """Every document of the cluster manifests (deploy/k8s), in file order."""
    docs: list[dict[str, Any]] = []
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs
