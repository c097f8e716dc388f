"""Tables as Markdown, CSV and LaTeX, written atomically."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from hzg import io


def write_table(frame: pd.DataFrame, stem: str | Path, caption: str = "") -> list[Path]:
    """Write `frame` to stem.md, stem.csv and stem.tex; return the paths."""
    stem = Path(stem)
    paths = [stem.with_suffix(s) for s in (".md", ".csv", ".tex")]
    with io.atomic_path(paths[0]) as tmp:
        tmp.write_text((f"**{caption}**\n\n" if caption else "") + frame.to_markdown(index=False, floatfmt=".1f") + "\n")
    with io.atomic_path(paths[1]) as tmp:
        frame.to_csv(tmp, index=False)
    with io.atomic_path(paths[2]) as tmp:
        tmp.write_text(frame.to_latex(index=False, caption=caption or None, escape=True))
    return paths


def cutflow_frame(flows: Mapping[str, Sequence[Mapping[str, float]]], yields_per_weight: Mapping[str, float]) -> pd.DataFrame:
    """One row per cut; per sample raw events, expected events (weighted) and efficiency."""
    cuts = [row["cut"] for row in next(iter(flows.values()))]
    frame = pd.DataFrame({"cut": cuts})
    for sample, rows in flows.items():
        n = [row["n_raw"] for row in rows]
        frame[f"{sample} raw"] = n
        frame[f"{sample} expected"] = [round(row["sum_weights"] * yields_per_weight[sample], 2) for row in rows]
        frame[f"{sample} eff. [%]"] = [round(100.0 * k / n[0], 2) if n[0] else float("nan") for k in n]
    return frame
