"""`python -m spine <mode> [--contract]`."""

from __future__ import annotations

from spine.cli import main

raise SystemExit(main())
