"""Rule interpret: mean attention maps (per block and head) and Grad-CAM-style attribution per feature of one
(model, loss) with attention, signal and background of the test split of the plot trial."""

import logging
from pathlib import Path

from hzg import logs, registry
from hzg.data import objects
from hzg.learn.classifier import Classifier, pin_scoring_threads
from hzg.results import interpret, plotting

logs.setup(snakemake.log[0])
pin_scoring_threads(snakemake.threads)  # the same scores, to the last bit, in every run
p, inp, out = snakemake.params, snakemake.input, snakemake.output
classifier = Classifier.load(inp.checkpoint)
x, is_signal, weight = interpret.held_out_events(classifier, inp.features, p.window)
logging.info("%d test events in the window (%d signal)", len(x), is_signal.sum())
# the object slots' names label an object model's tokens (interpret.token_labels); other models ignore them
slots = objects.slot_names(p.objects)
result = interpret.interpret(classifier.model, x, is_signal, weight, classifier.features, object_labels=slots)
logging.info("%s_%s, trial %d:\n%s", p.info["model"], p.info["loss"], p.trial, interpret.describe(result))

title = f"{registry.run_title(p.info['model'], p.info)}, trial {p.trial}"
lumi = (p.luminosity_fb, p.sqrt_s_tev)
plotting.attention_maps(result, Path(out.attention).with_suffix(""), *lumi, title)
plotting.gradcam_bars(result, Path(out.gradcam).with_suffix(""), *lumi, title)
