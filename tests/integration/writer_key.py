"""A pytest plugin (loaded with `-p writer_key`) that hands the run's generated IG writer key to the test.

The key goes to $SPINE_WRITER_KEY_OUT, outside the run's bundle and workdir, so the test can prove
that the key the harness, IG and WSP all used appears nowhere the run wrote.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

OUT = Path(os.environ["SPINE_WRITER_KEY_OUT"])


def pytest_bdd_before_scenario(request: Any, feature: Any, scenario: Any) -> None:
    cert = request.getfixturevalue("cert")
    if not OUT.exists() and cert.aws is not None:
        OUT.write_text(cert.generated("ig_api_key"))
