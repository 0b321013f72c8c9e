"""``python -m services.cli``: the ``leadflow`` command (how ``leadflow up`` starts each copy)."""

from __future__ import annotations

from services.cli import main

if __name__ == "__main__":
    main()
