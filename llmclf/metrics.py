"""Classification metrics as flat keys (readable `dvc exp show` columns), reports and confusion plots."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, classification_report,
                             f1_score, precision_recall_fscore_support)


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
    z = logits - logits.max(axis=1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    names = np.array(classes)
    return pd.DataFrame({"actual": names[df["label"].to_numpy()], "predicted": names[pred],
                         "label": df["label"].to_numpy(), "pred": pred, "confidence": prob.max(axis=1).round(4)})


def confusion_figure(runs: dict[str, pd.DataFrame], classes: list[str], path) -> None:
    """Row-normalised confusion matrices side by side (e.g. baseline vs fine-tuned), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    fig, axes = plt.subplots(1, len(runs), figsize=(4.6 * len(runs), 4.2), squeeze=False)
    for ax, (title, df) in zip(axes[0], runs.items()):
        cm = confusion_matrix(df["label"], df["pred"], labels=range(len(classes)), normalize="true")
        ax.imshow(cm, vmin=0, vmax=1, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v > 0.5 else "black")
        acc = (df["label"] == df["pred"]).mean()
        ax.set(title=f"{title} (accuracy {acc:.3f})", xlabel="predicted", ylabel="actual",
               xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes)
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
