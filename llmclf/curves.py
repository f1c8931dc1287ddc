"""Training curves: DVCLive's per-step metrics files, written during training."""
from __future__ import annotations


def curves_callback(folder: str):
    """DVCLive curves in `folder`. An explicit Live, since the default one rewrites dvc.yaml (the
    curves are declared there by hand). None where dvclive is not installed (a bare GPU machine)."""
    try:
        from dvclive import Live
        from transformers.integrations import DVCLiveCallback
    except ImportError:
        print("train: dvclive is not installed; no training curves are written")
        return None
    return DVCLiveCallback(live=Live(folder, dvcyaml=False, save_dvc_exp=False, report=None))


def end_curves(callback) -> None:
    """Close the DVCLive run: its last step's files are written."""
    callback.live.end()
