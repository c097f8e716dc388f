"""Fault injection for the tests: SIGKILL a job (or its whole process group: Snakemake with it, as a node
failure
would) at the moment it is about to put a given output in place. Off unless HZG_FAULT_AT is set.

HZG_FAULT_AT     substring of the output path at which to die (e.g. "results/skim/signal/0.root")
HZG_FAULT_SKIP   matching writes to let through first (default 0), counted per process
HZG_FAULT_GROUP  "1": kill the process group (the job and Snakemake), else the job alone
HZG_FAULT_ONCE   a directory: die only once per HZG_FAULT_AT across processes (a marker file is left there)
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

_seen: dict[str, int] = {}


def before_replace(path: str | os.PathLike) -> None:
    """Called by `hzg.io.atomic_path` with the complete temporary file written, just before the rename."""
    spec = os.environ.get("HZG_FAULT_AT")
    if not spec or spec not in str(Path(path).resolve()):
        return
    _seen[spec] = _seen.get(spec, 0) + 1
    if _seen[spec] <= int(os.environ.get("HZG_FAULT_SKIP", "0")):
        return
    once = os.environ.get("HZG_FAULT_ONCE")
    if once:
        marker = Path(once) / hashlib.sha256(spec.encode()).hexdigest()[:16]
        try:
            marker.open("x").close()
        except FileExistsError:
            return
    if os.environ.get("HZG_FAULT_GROUP") == "1":
        os.killpg(os.getpgid(0), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
