"""Rule fit: per-category templates and background functions -> pyhf workspace -> mu, Z, limit, spurious
signal."""

import logging

from hzg import io, logs, metrics, registry
from hzg.results import fit
from hzg.results.fit import templates
from hzg.learn.classifier import Classifier, pin_scoring_threads
from hzg.learn.strategies import HYPOTHESIS_FEATURE

logs.setup(snakemake.log[0])
pin_scoring_threads(snakemake.threads)  # the same scores, to the last bit, in every run
cfg = snakemake.params.fit


classifier = Classifier.load(snakemake.input.checkpoint)
# what the templates read: the classifier's inputs, the trial's split, mass, weight and label
columns = [*classifier.features, HYPOTHESIS_FEATURE, f"split_{cfg['trial']}", "mllg", "weight", "is_signal"]


def frames(paths):
    return io.read_parquet_frames(paths, columns)


varied = {
    name: {d: frames(snakemake.input[f"{name}_{d}"]) for d in registry.DIRECTIONS}
    for name in snakemake.params.reprocessed
}
mass = metrics.mass_edges(cfg["mass_bins"])
tmpl, score_edges, categories = templates.build_templates(
    classifier,
    frames(snakemake.input.nominal),
    varied,
    cfg["trial"],
    cfg["n_score_bins"],
    mass,
    cfg["background"],
    cfg["photon_resolution"],
    cfg.get("signal_shape", "template"),
)
for cat, info in categories.items():
    if info["dropped"]:
        logging.warning("category %s left out of the fit: %s", cat, info["reason"])
    else:
        logging.log(
            logging.WARNING if info["mc_limited"] or not info["passes"] else logging.INFO,
            "category %s: %s (%d parameters, F-test order %d%s, chi2 p %.2g), spurious signal %.3g +- %.3g "
            "(MC), sigma_S %.3g, ratio %.2f, zeta %.3g (the systematic), %s%s",
            cat,
            info["function"],
            info["n_parameters"],
            info["f_test"]["order"],
            " = its highest, a higher one may still improve the fit" if info["f_test"].get("capped") else "",
            info["gof_p"],
            info["spurious_signal"],
            info["spurious_signal_mc_error"] * info["scale"],
            info["sigma_signal"] * info["scale"],
            info["ratio"],
            info["spurious_systematic"],
            "passes" if info["passes"] else "FAILS the criterion",
            "; MC-limited: dS_MC > sigma_S, this MC cannot resolve a sigma_S-level bias"
            if info["mc_limited"]
            else "",
        )
spec = fit.build_workspace(tmpl, cfg["systematics"], poi_bounds=cfg["mu_bounds"])
result = fit.summarise(
    spec, tmpl.background_mc, poi_bounds=cfg["mu_bounds"], mc_sumw2=tmpl.background_mc_sumw2
)
result |= {"score_edges": score_edges.tolist(), "mass_edges": mass.tolist(), "categories": categories}
for block in ("stat_only", "with_systematics"):
    r = result[block]

    def g(x):
        return "none" if x is None else f"{x:.3g}"

    logging.info(
        "%s: mu = %.3f +%.3f -%.3f (stat.) +- %s (MC stat.), (mu - 1) / total error %s, Z = %s (model "
        "Asimov %s), 95%% CL limit %s%s",
        block,
        r["mu_hat"],
        r["err_up"],
        r["err_down"],
        g(r["err_mc_stat"]),
        g(r["pull_from_1"]),
        g(r["significance"]),
        g(r["expected_significance"]),
        r["upper_limit"] or r["limit_note"],
        "; PROBLEMS: " + "; ".join(r["problems"]) if r["problems"] else "",
    )
io.write_json(snakemake.output.workspace, spec)
io.write_json(snakemake.output.templates, tmpl.to_dict())
io.write_json(snakemake.output.fit, result)
