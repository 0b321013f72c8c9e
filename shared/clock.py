"""The one clock of the gates: schedules and cap windows ask ``now()``, nothing else.

UTC now, shifted by ``LEADFLOW_CLOCK_OFFSET_SECONDS`` when set (read once): end-to-end
tests start a stack a few seconds before a schedule opens, and a demo can show a week in
minutes. Unit tests pass their own instant to the pure functions of ``shared.gates``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

_OFFSET = timedelta(seconds=float(os.environ.get("LEADFLOW_CLOCK_OFFSET_SECONDS") or 0))


def now() -> datetime:
    return datetime.now(UTC) + _OFFSET
