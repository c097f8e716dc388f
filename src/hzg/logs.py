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
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s",
                        handlers=handlers, force=True)
    logging.captureWarnings(True)
    return logging.getLogger()
