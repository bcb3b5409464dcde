"""Test-wide environment: offline, quiet, and Prefect's home in a temporary folder.

The defaults themselves live in one place, `dicepipe.runtime.configure_environment`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from dicepipe.runtime import configure_environment

REPO = Path(__file__).resolve().parents[1]
_HOME = Path(tempfile.mkdtemp(prefix="dicepipe-tests-"))
# Tests are offline whatever the caller's environment says, and never share Prefect's home.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["PREFECT_HOME"] = str(_HOME / "prefect")
configure_environment(REPO / ".cache")
