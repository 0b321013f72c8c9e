"""Applied configuration versions: stored by ``config apply``, read by every service.

Running services ask for the newest version at most once per refresh interval, so a new
version takes effect without a restart; a lead keeps the version it arrived under.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from shared.db.engine import SessionFactory, transaction, utcnow
from shared.db.models import ConfigVersion
from shared.errors import NotFound
from shared.flowconfig import LeadflowConfig, load_config_text


@dataclass(frozen=True, slots=True)
class Applied:
    version: int
    created: bool


def apply_config(factory: SessionFactory, text: str, environ: Mapping[str, str]) -> Applied:
    """Validate and store ``text`` as a new version (nothing is stored when it is invalid)."""
    config = load_config_text(text, environ)
    document = config.model_dump(mode="json")
    checksum = hashlib.sha256(
        json.dumps(document, sort_keys=True).encode() + b"\0" + text.encode()
    ).hexdigest()
    with transaction(factory) as session:
        latest = session.scalars(
            select(ConfigVersion).order_by(ConfigVersion.id.desc()).limit(1)
        ).first()
        if latest is not None and latest.checksum == checksum:
            return Applied(latest.id, created=False)
        version = session.execute(
            insert(ConfigVersion)
            .values(created_at=utcnow(), checksum=checksum, source_text=text, document=document)
            .returning(ConfigVersion.id)
        ).scalar_one()
        return Applied(version, created=True)


class ConfigStore:
    def __init__(self, factory: SessionFactory, refresh_seconds: float = 1.0) -> None:
        self._factory = factory
        self._refresh = refresh_seconds
        self._versions: dict[int, LeadflowConfig] = {}
        self._latest_id: int | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def cached_latest(self) -> tuple[int, LeadflowConfig] | None:
        """The newest version when the cache is fresh (no database access), else None."""
        latest_id = self._latest_id
        if latest_id is None or time.monotonic() - self._checked_at >= self._refresh:
            return None
        config = self._versions.get(latest_id)
        return (latest_id, config) if config is not None else None

    def latest(self) -> tuple[int, LeadflowConfig]:
        """The newest applied version; raises NotFound when none was ever applied."""
        now = time.monotonic()
        if now - self._checked_at >= self._refresh or self._latest_id is None:
            with self._factory() as session:
                latest_id = session.scalar(
                    select(ConfigVersion.id).order_by(ConfigVersion.id.desc()).limit(1)
                )
            with self._lock:
                self._latest_id = latest_id
                self._checked_at = now
        if self._latest_id is None:
            raise NotFound("no configuration has been applied (run `leadflow config apply FILE`)")
        return self._latest_id, self.get(self._latest_id)

    def get(self, version: int, session: Session | None = None) -> LeadflowConfig:
        """A version (immutable, so cached for good); read through ``session`` when given
        (a caller inside a transaction, e.g. on an asyncio worker's connection)."""
        config = self._versions.get(version)
        if config is not None:
            return config
        if session is not None:
            config = self._load(session, version)
        else:
            with self._factory() as own:
                config = self._load(own, version)
        with self._lock:
            self._versions[version] = config
        return config

    @staticmethod
    def _load(session: Session, version: int) -> LeadflowConfig:
        row = session.get(ConfigVersion, version)
        if row is None:
            raise NotFound(f"configuration version {version} does not exist")
        return LeadflowConfig.model_validate(row.document)

    def source_text(self, version: int | None = None) -> tuple[int, str]:
        with self._factory() as session:
            query = select(ConfigVersion)
            query = (
                query.where(ConfigVersion.id == version)
                if version is not None
                else query.order_by(ConfigVersion.id.desc()).limit(1)
            )
            row = session.scalars(query).first()
            if row is None and version is not None:
                raise NotFound(f"there is no configuration version {version}")
            if row is None:
                raise NotFound("no configuration has been applied")
            return row.id, row.source_text
