"""``python -m convoso_async``: the ``convoso-async`` command line."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":  # pragma: no cover - run by the subprocess test
    sys.exit(main())
