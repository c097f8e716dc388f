"""Reading checkpoints without running code: tensors, plain numbers, strings, bytes and containers only."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch


class CheckpointError(RuntimeError):
    """A checkpoint is unreadable, or holds objects that loading it would have to execute; the message names
    it."""


def load(path: str | Path) -> dict[str, Any]:
    """A checkpoint on the CPU with torch's weights-only unpickler: a file carrying any other pickled object
    (which
    could run code in every job that loads it) is refused with a CheckpointError, never executed."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()
        detail = next(
            (line.strip() for line in reason if "GLOBAL" in line or "Unsupported" in line),
            reason[0] if reason else "",
        )
        raise CheckpointError(
            f"refusing to load {path}: it holds objects other than tensors, numbers and strings, "
            f"which could run code when loaded ({detail})"
        ) from err
    except Exception as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {type(err).__name__}: {err}") from err
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"{path} is not a checkpoint of this workflow (a {type(payload).__name__}, not a dict)"
        )
    return payload
