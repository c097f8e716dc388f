"""Tables as Markdown, CSV and LaTeX, written atomically."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from hzg import io, samples


def write_table(frame: pd.DataFrame, stem: str | Path, caption: str = "", note: str = "") -> list[Path]:
    """Write `frame` to stem.md, stem.csv and stem.tex; return the paths. `note` goes under the table in the
    Markdown and LaTeX versions (the CSV holds the cells only)."""
    stem = Path(stem)
    paths = [stem.with_suffix(s) for s in (".md", ".csv", ".tex")]
    with io.atomic_path(paths[0]) as tmp:
        # text cells stay as written (tabulate would reformat "0.04" with floatfmt to "0.0")
        text_columns = [i for i, dtype in enumerate(frame.dtypes) if not pd.api.types.is_numeric_dtype(dtype)]
        md = frame.to_markdown(index=False, floatfmt=".1f", disable_numparse=text_columns or False)
        tmp.write_text(
            (f"**{caption}**\n\n" if caption else "") + md + "\n" + (f"\n{note}\n" if note else "")
        )
    with io.atomic_path(paths[1]) as tmp:
        frame.to_csv(tmp, index=False)
    with io.atomic_path(paths[2]) as tmp:
        latex = frame.to_latex(index=False, caption=caption or None, escape=True)
        if note:
            text = _latex_escape(note)
            latex = (
                latex.replace("\\end{table}", f"\\par\\footnotesize {text}\n\\end{{table}}")
                if "\\end{table}" in latex
                else latex + f"\n{text}\n"
            )
        tmp.write_text(latex)
    return paths


def _latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text (one pass, so replacements are not escaped again)."""
    return re.sub(r"[\\&%$#_{}~^]", lambda m: _LATEX_SPECIAL[m.group()], text)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def cutflow_frame(
    flows: Mapping[str, Sequence[Mapping[str, float]]], yields_per_weight: Mapping[str, float]
) -> pd.DataFrame:
    """One row per cut; per sample raw events, expected events (weighted) and efficiency."""
    cuts = [row["cut"] for row in next(iter(flows.values()))]
    frame = pd.DataFrame({"cut": cuts})
    for sample, rows in flows.items():
        n = [row["n_raw"] for row in rows]
        frame[f"{sample} raw"] = n
        frame[f"{sample} expected"] = [
            round(row["sum_weights"] * yields_per_weight[sample], 2) for row in rows
        ]
        w = [row["sum_weights"] for row in rows]
        # weighted: with a biased generation the raw fraction is not the efficiency
        frame[f"{sample} eff. [%]"] = [round(100.0 * k / w[0], 2) if w[0] else float("nan") for k in w]
    return frame


def normalisation_frame(
    records: Mapping[str, Sequence[Mapping[str, float]]],
    xsec_used: Mapping[str, float],
    normalisation: Mapping[str, Mapping[str, float]],
    lumi_fb: float,
) -> pd.DataFrame:
    """Per sample: generated events, the generator's cross-section of what was generated, the one used and why."""
    rows = []
    for sample, recs in records.items():
        n_gen = sum(r["n_generated"] for r in recs)
        gen = samples.generator_xsec_pb(recs)
        norm = normalisation[sample]
        how = f"{norm['k_factor']:g} x generator" if "k_factor" in norm else "xsec_pb from the config"
        selected = sum(r["cutflow"][-1]["sum_weights"] for r in recs) / sum(r["sum_weights"] for r in recs)
        rows.append(
            {
                "sample": sample,
                "generated events": int(n_gen),
                "generator sigma [pb]": f"{gen:.4g}" if gen is not None else "N.A.",
                "sigma used [pb]": f"{xsec_used[sample]:.4g}",
                "how": how,
                "selected fraction [%]": round(100.0 * selected, 2),
                f"selected expected ({lumi_fb:g}/fb)": round(
                    xsec_used[sample] * 1000.0 * lumi_fb * selected, 1
                ),
            }
        )
    return pd.DataFrame(rows)
