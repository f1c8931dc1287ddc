"""Are the predicted probabilities right? Expected calibration error, reliability bins, and temperature
scaling: one scalar T fitted on validation logits, which divides the logits (argmax, so accuracy, unchanged)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from ..core.atomic import write_json
from ..core.errors import UserError
from ..core.hashing import sha256
from ..core.params import Inference, defaults

N_BINS = 15  # equal-width confidence bins, as Guo et al. (2017)


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1))


def reliability_bins(probs: np.ndarray, labels, n_bins: int = N_BINS) -> pd.DataFrame:
    """Top-label reliability: rows binned by their highest probability into (lo, hi] intervals; per
    non-empty bin its mean confidence, its accuracy and its row count."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0, 1, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    rows = []
    for b in np.unique(index):
        rows.append({"bin_low": edges[b], "bin_high": edges[b + 1], "confidence": confidence[index == b].mean(),
                     "accuracy": correct[index == b].mean(), "count": int((index == b).sum())})
    return pd.DataFrame(rows).round(6)


def ece(probs: np.ndarray, labels, n_bins: int = N_BINS) -> float:
    """Expected calibration error: the row-weighted mean gap between a bin's accuracy and confidence."""
    bins = reliability_bins(probs, labels, n_bins)
    return float((bins["count"] * (bins["accuracy"] - bins["confidence"]).abs()).sum() / bins["count"].sum())


def nll(logits: np.ndarray, labels, temperature: float = 1.0) -> float:
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-logp[np.arange(len(logp)), np.asarray(labels)].mean())


def fit_temperature(logits: np.ndarray, labels) -> float:
    """The T > 0 minimising the NLL of softmax(logits / T). The NLL is convex in 1/T, so a bounded
    1-D search finds the optimum; bounds T in [0.01, 100]."""
    found = minimize_scalar(lambda inv_t: nll(logits, labels, 1 / inv_t), bounds=(0.01, 100), method="bounded",
                            options={"xatol": 1e-6})
    return float(1 / found.x)


def _adapter_id(adapter: str | Path) -> str:
    weights = Path(adapter) / "adapter_model.safetensors"
    return sha256(weights) if weights.is_file() else ""


def save_temperature(adapter: str | Path, fit: dict, path: str | Path, inference: dict | None = None) -> None:
    """Record the fitted temperature (fit["temperature"]), and the inference settings the adapter was scored
    with, with the adapter they belong to (its weights' sha256), so that predict never applies them to another."""
    write_json(fit | ({"inference": inference} if inference else {}) | {"adapter_sha256": _adapter_id(adapter)}, path)


def inference_settings(adapter: str | Path, path: str | Path) -> Inference:
    """The inference settings recorded in `path` for `adapter` (those the evaluate stage scored it with);
    params.yaml's where there are none for it (no file, another adapter's, or not the evaluate stage's:
    load_temperature names that, unless it is not asked)."""
    path = Path(path)
    try:
        info = _record(path) if path.is_file() else {}
    except UserError:
        info = {}
    recorded = info.get("inference") if info.get("adapter_sha256") == _adapter_id(adapter) else None
    return Inference(**recorded) if recorded else defaults().inference


REFIT = "rerun `dvc repro evaluate`"  # the fix for a calibration file that does not fit: the evaluate stage writes it


def _record(path: Path, fix: str = REFIT) -> dict:
    """The evaluate stage's record in `path`: a positive finite temperature, for an adapter's sha256."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        temperature = info["temperature"]
        if not isinstance(info["adapter_sha256"], str):
            raise ValueError(f"adapter_sha256 {info['adapter_sha256']!r} is not a checksum")
        if not (isinstance(temperature, (int, float)) and 0 < temperature < float("inf")):
            raise ValueError(f"temperature {temperature!r} is not a positive number")
    except (ValueError, KeyError, TypeError) as e:  # not JSON, not an object, a key missing, a bad value
        raise UserError(f"{path}: not a calibration file the evaluate stage wrote ({type(e).__name__}: {e}); "
                        f"{fix}") from None
    return info


def load_temperature(adapter: str | Path, path: str | Path, required: bool, fix: str = REFIT) -> tuple[float, str]:
    """T for `adapter` from `path`, and a note saying where it came from. Where the file is missing or
    belongs to another adapter: an error if `required`, else T = 1 (the model's own probabilities).
    A file that is not the evaluate stage's record is an error. An error's message ends with `fix`."""
    path = Path(path)
    if not path.is_file():
        if required:
            raise UserError(f"{path}: no such calibration file (the evaluate stage writes one); {fix}")
        return 1.0, f"not temperature-scaled (no {path})"
    info = _record(path, fix)
    if info["adapter_sha256"] != _adapter_id(adapter):
        if required:
            raise UserError(f"{path}: fitted for another adapter than {adapter}; {fix}")
        return 1.0, f"not temperature-scaled ({path} was fitted for another adapter)"
    return float(info["temperature"]), f"temperature-scaled, T = {info['temperature']} from {path}"
