"""Write a stage's evaluation outputs: metrics JSON, per-row predictions, text reports and figures."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..core.atomic import atomic_path, write_json
from . import calibration, metrics, plots

# metrics/baseline.json's groups and metrics/baseline/'s folders, in the order figures show them
BASELINES = ("untrained_head", "tfidf_logreg", "zero_shot")
TITLES = {"untrained_head": "untrained head", "tfidf_logreg": "TF-IDF + LogReg",
          "zero_shot": "zero-shot prompt", "fine_tuned": "fine-tuned", "ensemble": "ensemble"}  # names in the figures


def _write_run(ev: metrics.Evaluation, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split, df in ev.preds.items():
        df.to_csv(folder / f"{split}.csv", index=False)
    (folder / "report.txt").write_text("".join(f"== {s} ==\n{r}\n" for s, r in ev.reports.items()), encoding="utf-8")


def write_evaluation(ev: metrics.Evaluation, scores: dict, metrics_file: str, folder: str, extra=None) -> None:
    """One model: predictions and reports in `folder`, `scores` in `metrics_file`; extra(folder) adds files."""
    with atomic_path(folder, is_dir=True) as out:
        _write_run(ev, out)
        if extra is not None:
            extra(out)
    write_json(scores, metrics_file)


def write_baselines(runs: dict[str, metrics.Evaluation], scores: dict, metrics_file: str, folder: str) -> None:
    """Several models: each one's predictions and reports in folder/<name>/, all scores in `metrics_file`."""
    with atomic_path(folder, is_dir=True) as out:
        for name, ev in runs.items():
            _write_run(ev, out / name)
    write_json(scores, metrics_file)


def figures(out: Path) -> Path:
    """out/figures: the PNGs of every split scored, declared in dvc.yaml as one folder, so a run shows
    those it drew (official_test on GPU presets) and the CPU main job none it did not."""
    (out / "figures").mkdir(exist_ok=True)
    return out / "figures"


def write_comparison(out: Path, split: str, runs: dict[str, pd.DataFrame], classes: list[str]) -> None:
    """Baselines against the fine-tuned model on one split, from their predictions: row-normalised confusion
    matrices (PNG) and per-class F1 (CSV for DVC, PNG)."""
    plots.confusion_grid({TITLES[name]: df for name, df in runs.items()}, classes,
                         figures(out) / f"confusion_{split}.png")
    f1 = metrics.f1_table(runs, classes)
    f1.reset_index().melt(id_vars="class", var_name="model", value_name="f1").to_csv(out / f"f1_{split}.csv",
                                                                                       index=False)
    plots.f1_bars(f1.rename(columns=TITLES), figures(out) / f"f1_{split}.png", f"per-class F1, {split}")


def write_reliability(out: Path, split: str, logits, labels, temperature: float | None) -> None:
    """Reliability bins of the model's probabilities, and of the temperature-scaled ones (CSVs for DVC, PNG)."""
    curves = {"fine-tuned": calibration.probabilities(logits)}
    if temperature is not None:
        curves[f"temperature-scaled (T = {temperature:.2f})"] = calibration.probabilities(logits, temperature)
    shown = {}
    for (label, probs), suffix in zip(curves.items(), ["", "_calibrated"]):
        bins = calibration.reliability_bins(probs, labels)
        bins.to_csv(out / f"reliability_{split}{suffix}.csv", index=False)
        shown[f"{label}, ECE {calibration.ece(probs, labels):.3f}"] = bins
    plots.reliability_diagram(shown, figures(out) / f"reliability_{split}.png", f"reliability, {split}")
