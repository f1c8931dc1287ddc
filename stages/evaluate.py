"""Stage 6, evaluate: base + trained adapter from disk, scored on the test splits against the baselines;
calibration (ECE, reliability, a temperature fitted on val for `llmclf predict`) and comparison figures;
with `evaluate.members`, the ensemble of the fine-tuned model and those members too."""
import _env  # first: the project's Python environment, and this stage's GPUs before torch loads
from pathlib import Path

import pandas as pd

from llmclf.core import gpus, params
from llmclf.core.atomic import together
from llmclf.core.runlog import phase, write_log
from llmclf.data import splits
from llmclf.evaluate import calibration, ensemble, inference, metrics
from llmclf.evaluate.outputs import BASELINES, write_comparison, write_evaluation, write_reliability
from llmclf.model.adapter import load_adapter

ADAPTER, SPLITS_DIR, BASELINE = "models/adapter", "data/splits", Path("metrics/baseline")
CALIBRATION = "models/calibration.json"  # `llmclf predict` reads it: temperature and inference settings

phase("data")
p = params.load()
frames = splits.read_eval_splits(SPLITS_DIR, p.evaluate.splits)
phase("model load")
model, tok, classes = load_adapter(ADAPTER)
size = ensemble.parameters(model)  # before inference merges LoRA into the weights
phase("scoring")
predict = inference.classifier(model, tok, p.inference, p.model.max_length)
logits, speed = inference.predict_splits(predict, frames, warm_up=p.inference.batch_size)

temperature, fit = None, {"temperature": 1.0}  # T = 1: the model's own probabilities
if p.evaluate.temperature_scaling:  # one scalar T fitted on val, never on the splits it is scored on
    val = splits.read_split(SPLITS_DIR, "val")
    val_logits = logits["val"] if "val" in logits else predict(val["text"].tolist(), "val, for the temperature")
    temperature = round(calibration.fit_temperature(val_logits, val["label"]), 4)
    fit = {"temperature": temperature, "val_nll": round(calibration.nll(val_logits, val["label"]), 4),
           "val_nll_calibrated": round(calibration.nll(val_logits, val["label"], temperature), 4)}
    print(f"calibration on val: {fit}")
phase("metrics")
ev = metrics.evaluate(frames, logits, classes, temperature)
metrics.print_summary(ev)
ens = None
if p.evaluate.members:  # the fine-tuned model's probabilities averaged with the members', each with its T
    probs = {split: calibration.probabilities(logits[split], temperature or 1.0) for split in frames}
    ens = ensemble.evaluate(p.evaluate.members, frames, probs, classes, size, p.inference)
    metrics.print_summary(ens.evaluation, f"ensemble of {ens.record['models']} models, "
                                          f"{ens.record['parameters']:,} parameters, ")


def figures(out: Path) -> None:
    phase("figures")
    for split, df in frames.items():
        baselines = {name: pd.read_csv(BASELINE / name / f"{split}.csv") for name in BASELINES
                     if (BASELINE / name / f"{split}.csv").is_file()}
        ensembled = {"ensemble": ens.evaluation.preds[split]} if ens else {}
        write_comparison(out, split, baselines | {"fine_tuned": ev.preds[split]} | ensembled, classes)
        write_reliability(out, split, logits[split], df["label"].to_numpy(), temperature)
    phase("writes")


phase("writes")
scores = ev.scores | ({"calibration": fit} if temperature is not None else {}) | ({"ensemble": ens.record} if ens else {})
with together():  # all or none: a full disk midway leaves each as it was
    write_evaluation(ev, scores, "metrics/eval.json", "metrics/eval", extra=figures)
    calibration.save_temperature(ADAPTER, fit, CALIBRATION, inference=p.inference.model_dump())
write_log("evaluate", {"examples_per_s": speed} | gpus.peak_gpu_memory())
_env.finish()
