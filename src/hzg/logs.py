"""Logging of rule scripts into the rule's log file (and stderr)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def setup(log_path: str | Path | None, level: int = logging.INFO) -> logging.Logger:
    """Send library and script logs to `log_path` (created) and to stderr; return the root logger."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s", handlers=handlers, force=True
    )
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    return logging.getLogger()


def _log_uncaught(exc_type, exc, tb) -> None:
    """Write an uncaught exception into the log before the job dies, so the log says why."""
    logging.getLogger("hzg").critical(
        "job failed: %s: %s", exc_type.__name__, exc, exc_info=(exc_type, exc, tb)
    )
