"""PNG figures for review reports and docs (the same data is declared as DVC plots in dvc.yaml).

Training curves: DVCLive's per-step metrics files, written during training."""
from __future__ import annotations

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})  # no matplotlib version: same bytes across releases
    _pyplot().close(fig)


def confusion_grid(runs: dict[str, pd.DataFrame], classes: list[str], path) -> None:
    """Row-normalised confusion matrices side by side (baselines, then fine-tuned), from prediction frames."""
    from sklearn.metrics import confusion_matrix

    cols = len(runs) if len(runs) <= 3 else 2
    rows = -(-len(runs) // cols)
    fig, axes = _pyplot().subplots(rows, cols, figsize=(4.6 * cols, 4.2 * rows), squeeze=False)
    for ax, (title, df) in zip(axes.flat, runs.items()):
        cm = confusion_matrix(df["label"], df["pred"], labels=range(len(classes)), normalize="true")
        ax.imshow(cm, vmin=0, vmax=1, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v > 0.5 else "black")
        acc = (df["label"] == df["pred"]).mean()
        ax.set(title=f"{title} (accuracy {acc:.3f})", xlabel="predicted", ylabel="actual",
               xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes)
        ax.tick_params(axis="x", rotation=30)
    for ax in axes.flat[len(runs):]:
        ax.axis("off")
    _save(fig, path)


def reliability_diagram(curves: dict[str, pd.DataFrame], path, title: str) -> None:
    """Accuracy against mean confidence per confidence bin (calibration.reliability_bins), one line per
    model; the diagonal is perfect calibration. Bars: each bin's share of rows, for the first curve."""
    fig, ax = _pyplot().subplots(figsize=(5.2, 4.6))
    first = next(iter(curves.values()))
    ax.bar((first["bin_low"] + first["bin_high"]) / 2, first["count"] / first["count"].sum(),
           width=first["bin_high"] - first["bin_low"], color="lightgrey", label="rows in bin (share)")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    for label, bins in curves.items():
        ax.plot(bins["confidence"], bins["accuracy"], marker="o", label=label)
    ax.set(title=title, xlabel="confidence (highest class probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)
    _save(fig, path)


def f1_bars(f1: pd.DataFrame, path, title: str) -> None:
    """Grouped horizontal bars: one group per class (rows of `f1`), one bar per model (its columns)."""
    fig, ax = _pyplot().subplots(figsize=(6.4, 0.9 + 0.32 * f1.size))
    height = 0.8 / len(f1.columns)
    y = np.arange(len(f1))
    for k, model in enumerate(f1.columns):
        bars = ax.barh(y + (k - (len(f1.columns) - 1) / 2) * height, f1[model], height=height, label=model)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    ax.set(title=title, xlabel="F1", xlim=(0, 1.1), yticks=y, yticklabels=f1.index)
    ax.invert_yaxis()  # first class on top
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)


def training_curves(log_history: list[dict], path) -> None:
    """Loss (training steps and validation) and validation scores from a Trainer's log history."""
    logs = pd.DataFrame(log_history)
    fig, (loss_ax, score_ax) = _pyplot().subplots(1, 2, figsize=(10, 3.8))
    if "loss" in logs:
        train = logs.dropna(subset=["loss"])
        loss_ax.plot(train["step"], train["loss"], label="training loss")
    for key, ax in [("eval_loss", loss_ax), ("eval_accuracy", score_ax), ("eval_balanced_accuracy", score_ax)]:
        if key in logs:
            rows = logs.dropna(subset=[key])
            ax.plot(rows["step"], rows[key], marker="o", label=key.replace("eval_", "validation ").replace("_", " "))
    loss_ax.set(title="loss", xlabel="step")
    score_ax.set(title="validation", xlabel="step", ylim=(0, 1))
    for ax in (loss_ax, score_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    _save(fig, path)


TIMINGS = ("runtime", "_per_second")  # the Trainer's log keys that time the run (logs/, not curves)
# and its closing mean loss, of its own call only: a resumed run's would miss the steps before the
# checkpoint (metrics/train.json holds the whole run's)
NOT_CURVES = ("train_loss",)


def curves_callback(folder: str):
    """DVCLive curves in `folder`. An explicit Live, since the default one rewrites dvc.yaml (the
    curves are declared there by hand). None where dvclive is not installed (a bare GPU machine)."""
    try:
        from dvclive import Live
        from transformers.integrations import DVCLiveCallback
    except ImportError:
        print("train: dvclive is not installed; no training curves are written")
        return None

    class ScoreCurves(DVCLiveCallback):
        """Losses, scores and the schedule, without the Trainer's timings: those differ from run to run,
        and the versioned curves of a rerun, resumed or not, are the same bytes."""

        def setup(self, args, state, model):
            # no params.yaml of every TrainingArguments field: it changes with each transformers release,
            # and what the pipeline sets is in params.yaml and dvc.lock already
            self._initialized = True

        def on_train_begin(self, args, state, control, **kwargs):
            super().on_train_begin(args, state, control, **kwargs)
            # a resumed run: the checkpoint's logs first (its `step` is the Trainer's, not a log key), so
            # the curves hold the whole run, as an uninterrupted one's
            for logs in state.log_history:
                self.on_log(args, state, control, logs={k: v for k, v in logs.items() if k != "step"})

        def on_log(self, args, state, control, model=None, logs=None, **kwargs):
            # keys sorted, as in a checkpoint's log history (trainer_state.json): a resumed run's summary
            # (metrics.json) is then the same bytes as an uninterrupted one's
            logs = {k: v for k, v in sorted((logs or {}).items()) if not k.endswith(TIMINGS) and k not in NOT_CURVES}
            super().on_log(args, state, control, model=model, logs=logs, **kwargs)

    return ScoreCurves(live=Live(folder, dvcyaml=False, save_dvc_exp=False, report=None))


def end_curves(callback) -> None:
    """Close the DVCLive run: its last step's files are written."""
    callback.live.end()
