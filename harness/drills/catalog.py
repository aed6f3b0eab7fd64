"""Which function runs which drill: each module of ``harness.drills`` declares ``DRILLS = {"D7": fn}``."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from harness import drills
from harness.errors import ConfigError
from harness.session import Certification

Runner = Callable[[Certification], dict[str, Any]]


def runners() -> dict[str, Runner]:
    """Every drill a module declares; a drill declared twice is a harness bug, refused."""
    found: dict[str, Runner] = {}
    for info in pkgutil.iter_modules(drills.__path__):
        module = importlib.import_module(f"{drills.__name__}.{info.name}")
        for drill, fn in getattr(module, "DRILLS", {}).items():
            if drill in found:
                raise ConfigError(f"drill {drill} is declared by two modules of harness/drills")
            found[drill] = fn
    return found


def runner(drill: str) -> Runner:
    found = runners()
    if drill not in found:
        raise ConfigError(f"drill {drill} has a feature but no module declares it: add it to a module's DRILLS "
                          "in harness/drills/")
    return found[drill]
