"""The offline, quiet environment of every entry point (flows, stages, the CLI, the tests).

Importing this module applies it (`configure_environment`): flows import it before Prefect,
whose settings are read at import time. Explicit values in the environment always win.
"""

from __future__ import annotations

import os
from pathlib import Path

from dicepipe.layout import cache_dir

# Offline and quiet defaults; an explicit value in the environment always wins.
ENVIRONMENT_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",  # never reach the Hugging Face Hub: weights come from local folders
    "HF_DATASETS_OFFLINE": "1",  # datasets must not look for remote scripts or data
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # no telemetry from the ephemeral server
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # 2 slow cores need longer
    "PREFECT_LOGGING_LEVEL": "WARNING",  # stage summaries, not per-task chatter
    "DVC_NO_ANALYTICS": "1",
    "NO_ALBUMENTATIONS_UPDATE": "1",  # albumentations checks its version online at import
}


def configure_environment(cache: Path | None = None) -> None:
    """Set offline/quiet defaults and put Prefect's home and caches under the project cache."""
    cache = (cache or cache_dir()).resolve()
    for name, value in ENVIRONMENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("PREFECT_HOME", str(cache / "prefect"))
    os.environ.setdefault("HF_HOME", str(cache / "huggingface"))
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache / "numba"))
    os.environ.setdefault("DVC_SITE_CACHE_DIR", str(cache / "dvc-site"))
    # Prefect's ephemeral server keeps its SQLite database in PREFECT_HOME and does not create
    # missing parents: in a fresh clone (no .cache yet) every flow would time out at startup.
    home = Path(os.environ["PREFECT_HOME"]).expanduser()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"cannot create PREFECT_HOME {home}: {error}") from None
    _forget_parent_thread_exits_in_forked_children()


_FORK_HOOK_INSTALLED = False


def _forget_parent_thread_exits_in_forked_children() -> None:
    """Install (once) a fork hook that drops the thread-exit callbacks a child inherits.

    Prefect's background services register `threading._register_atexit` callbacks that drain
    their threads. A forked child (a DataLoader worker, a multiprocessing process) has none of
    those threads, so the inherited callback fails an assertion at the child's exit and every
    such child exits with status 1 once the parent has run a flow: DataLoader then reports
    "worker exited unexpectedly". The child's own exit callbacks are registered after the
    fork and are kept.
    """
    global _FORK_HOOK_INSTALLED
    if _FORK_HOOK_INSTALLED or not hasattr(os, "register_at_fork"):
        return
    import threading

    def forget() -> None:
        callbacks = getattr(threading, "_threading_atexits", None)
        if isinstance(callbacks, list):
            callbacks.clear()

    os.register_at_fork(after_in_child=forget)
    _FORK_HOOK_INSTALLED = True


configure_environment()
