"""Training curves: DVCLive's per-step metrics files, written during training."""
from __future__ import annotations

TIMINGS = ("runtime", "_per_second")  # the Trainer's log keys that time the run (logs/, not curves)


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
        and the versioned curves of a rerun are the same bytes."""

        def setup(self, args, state, model):
            # no params.yaml of every TrainingArguments field: it changes with each transformers release,
            # and what the pipeline sets is in params.yaml and dvc.lock already
            self._initialized = True

        def on_log(self, args, state, control, model=None, logs=None, **kwargs):
            logs = {k: v for k, v in (logs or {}).items() if not k.endswith(TIMINGS)}
            super().on_log(args, state, control, model=model, logs=logs, **kwargs)

    return ScoreCurves(live=Live(folder, dvcyaml=False, save_dvc_exp=False, report=None))


def end_curves(callback) -> None:
    """Close the DVCLive run: its last step's files are written."""
    callback.live.end()
