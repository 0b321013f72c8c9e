"""A service process's ties to the ``leadflow up`` that started it.

``leadflow up`` keeps its children in its own process group (a terminal's Ctrl-C reaches
them all at once) and names itself in ``LEADFLOW_PARENT_PID``; each child then asks the
kernel for SIGTERM when that parent dies (``PR_SET_PDEATHSIG``), however it dies (SIGKILL,
a closed terminal, the OOM killer), so no service outlives it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys

logger = logging.getLogger(__name__)

PARENT_PID_VARIABLE = "LEADFLOW_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """SIGTERM to this process when the ``leadflow up`` named in the environment dies; if
    it is gone already, exit at once."""
    parent = os.environ.get(PARENT_PID_VARIABLE)
    if not parent or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        logger.warning("cannot tie this process to its parent (errno %d)", ctypes.get_errno())
        return
    if os.getppid() != int(parent):  # it died before the tie was made
        sys.exit(0)
