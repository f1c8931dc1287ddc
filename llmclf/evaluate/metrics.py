"""Classification and calibration metrics as flat keys per split (readable `dvc exp show` columns), and reports."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, classification_report,
                             f1_score, precision_recall_fscore_support)

from . import calibration


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def scores(y_true, y_pred, classes: list[str]) -> dict[str, float]:
    labels = list(range(len(classes)))
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    out = {
        "accuracy": accuracy_score(y_true, y_pred),
        "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
        "macro_f1": f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
    }
    for i, name in enumerate(classes):
        out |= {f"precision_{slug(name)}": p[i], f"recall_{slug(name)}": r[i], f"f1_{slug(name)}": f[i]}
    return {k: round(float(v), 4) for k, v in out.items()}


def report(y_true, y_pred, classes: list[str]) -> str:
    return classification_report(y_true, y_pred, labels=list(range(len(classes))), target_names=classes,
                                 digits=4, zero_division=0)


def predictions_frame(df: pd.DataFrame, logits: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Per-row predictions, with class names (DVC's confusion plots use the actual/predicted columns)."""
    pred = logits.argmax(axis=1)
    names = np.array(classes)
    return pd.DataFrame({"actual": names[df["label"].to_numpy()], "predicted": names[pred],
                         "label": df["label"].to_numpy(), "pred": pred,
                         "confidence": calibration.probabilities(logits).max(axis=1).round(4)})


@dataclass
class Evaluation:
    """One model's results on the scored splits."""
    scores: dict[str, dict[str, float]]  # flat metrics of each split
    preds: dict[str, pd.DataFrame]  # per-row predictions of each split
    reports: dict[str, str]  # sklearn's classification report of each split


def evaluate(frames: dict[str, pd.DataFrame], logits: dict[str, np.ndarray], classes: list[str],
             temperature: float | None = None) -> Evaluation:
    """Scores, predictions and reports of each split from its logits (any per-class scores whose softmax
    is read as probabilities): the classification metrics, expected calibration error, and with a
    fitted `temperature` the ECE of the temperature-scaled probabilities too."""
    ev = Evaluation({}, {}, {})
    for split, df in frames.items():
        y = df["label"].to_numpy()
        ev.preds[split] = predictions_frame(df, logits[split], classes)
        ev.scores[split] = scores(y, ev.preds[split]["pred"], classes) | {
            "ece": round(calibration.ece(calibration.probabilities(logits[split]), y), 4)}
        if temperature is not None:
            ev.scores[split]["ece_calibrated"] = round(
                calibration.ece(calibration.probabilities(logits[split], temperature), y), 4)
        ev.reports[split] = report(y, ev.preds[split]["pred"], classes)
    return ev


def print_summary(ev: Evaluation, name: str = "") -> None:
    """Each split's headline scores and classification report, on stdout."""
    for split, s in ev.scores.items():
        print(f"{name}{split}: accuracy {s['accuracy']:.4f}  balanced accuracy {s['balanced_accuracy']:.4f}  "
              f"ECE {s['ece']:.4f}  ({len(ev.preds[split])} rows)\n{ev.reports[split]}")


def f1_table(runs: dict[str, pd.DataFrame], classes: list[str]) -> pd.DataFrame:
    """Per-class F1 (rows: classes) of each run's predictions (columns: runs)."""
    labels = list(range(len(classes)))
    return pd.DataFrame({name: f1_score(df["label"], df["pred"], labels=labels, average=None, zero_division=0)
                         for name, df in runs.items()}, index=pd.Index(classes, name="class")).round(4)
