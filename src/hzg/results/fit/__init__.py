"""The binned mℓℓγ fit as an H→Zγ analysis does it, inside pyhf's HistFactory (layout after cabinetry).

* `hzg.results.fit.shapes`: smooth background functions fitted to each category's background MC, F-test,
  spurious signal.
* `hzg.results.fit.workspace`: typed `Templates` -> pyhf workspace (per-category free background, signal
  systematics).
* `hzg.results.fit.inference`: fits with pyhf's optimisers (minuit, scipy fallback), MINOS, scan, ranking,
  limit and significance through cabinetry.
* `hzg.results.fit.results`: typed result containers, JSON-ready (no NaN or Infinity).
"""

from hzg.results.fit.inference import (
    block,
    category_yields,
    fit,
    limit,
    mc_stat_error,
    ranking,
    scan,
    significance,
    summarise,
)
from hzg.results.fit.results import Block, FitFlags, FitResult, LimitResult, ScanResult, SignificanceResult
from hzg.results.fit.workspace import (
    POI,
    Templates,
    build_workspace,
    model_and_data,
    observations,
    stat_only,
    systematics_config,
    with_observations,
)

__all__ = [
    "POI",
    "Block",
    "FitFlags",
    "FitResult",
    "LimitResult",
    "ScanResult",
    "SignificanceResult",
    "Templates",
    "block",
    "build_workspace",
    "category_yields",
    "fit",
    "limit",
    "mc_stat_error",
    "model_and_data",
    "observations",
    "ranking",
    "scan",
    "significance",
    "stat_only",
    "summarise",
    "systematics_config",
    "with_observations",
]
