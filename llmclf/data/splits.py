"""Sampling and splits: the tutorial's per-class sampling, class weights, and the split files stages read."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.params import Sample

SPLITS = ("train", "test", "val")  # the tutorial's order of taking rows from each class


def class_counts(df: pd.DataFrame, classes: list[str]) -> dict[str, int]:
    counts = df["label"].value_counts()
    return {name: int(counts.get(i, 0)) for i, name in enumerate(classes)}


def _wanted(sample: Sample, available: int, name: str) -> dict[str, int]:
    if sample.mode == "stratified":
        fractions = {s: getattr(sample, f"{s}_fraction") for s in SPLITS}
        if sum(fractions.values()) > 1 + 1e-9:
            raise DataError(f"sample.*_fraction add up to {sum(fractions.values()):.3f} > 1")
        return {s: int(f * available + 1e-9) for s, f in fractions.items()}  # 0.57 * 100 is 56.99...
    wanted = {s: getattr(sample, f"{s}_per_class") for s in SPLITS}
    need = sum(wanted.values())
    if available >= need:
        return wanted
    if not sample.allow_fewer:
        raise DataError(f"class {name!r} has {available} rows but sample needs {need} "
                        f"({' + '.join(f'{n} {s}' for s, n in wanted.items())}); lower sample.*_per_class "
                        "or set sample.allow_fewer: true to take proportionally fewer")
    taken = {s: n * available // need for s, n in wanted.items()}
    return taken


def sample_splits(df: pd.DataFrame, sample: Sample, classes: list[str], seed: int) -> pd.DataFrame:
    """The tutorial's sampling, seeded: shuffle each class, take train/test/val rows from it in that
    order, concatenate each split and shuffle it. Returns the rows with a `split` column."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[pd.DataFrame]] = {s: [] for s in SPLITS}
    for label, name in enumerate(classes):
        rows = df[df["label"] == label]
        if rows.empty:
            raise DataError(f"class {name!r} (label {label}) has no rows in the training source")
        rows = rows.sample(frac=1, random_state=rng)
        start = 0
        for split, n in _wanted(sample, len(rows), name).items():
            parts[split].append(rows.iloc[start:start + n])
            start += n
    out = []
    for split in SPLITS:
        joined = pd.concat(parts[split]).sample(frac=1, random_state=rng)
        if joined.empty:
            raise DataError(f"split {split!r} would be empty; raise its sample count or fraction")
        out.append(joined.assign(split=split))
    return pd.concat(out, ignore_index=True)[["text", "label", "split"]]


def class_weights(train: pd.DataFrame, n_classes: int) -> list[float]:
    """The tutorial's weights: 1 / normalised class counts, normalised to sum 1."""
    freq = train["label"].value_counts(normalize=True).reindex(range(n_classes))
    if freq.isna().any():
        raise DataError(f"classes {list(np.flatnonzero(freq.isna()))} have no training rows")
    w = 1.0 / freq.to_numpy()
    return (w / w.sum()).tolist()


def read_split(folder: str | Path, split: str) -> pd.DataFrame:
    path = Path(folder) / f"{split}.parquet"
    if not path.is_file():
        raise DataError(f"{path}: missing; run `dvc repro split` first")
    return pd.read_parquet(path)


def read_eval_splits(folder: str | Path, splits: list[str]) -> dict[str, pd.DataFrame]:
    """The splits to score; official_test only where the source had a test split."""
    frames = {}
    for split in splits:
        if split == "official_test" and not (Path(folder) / f"{split}.parquet").is_file():
            print(f"evaluate: no official_test split in {folder} (the source has no test split); skipped")
            continue
        frames[split] = read_split(folder, split)
    if not frames:
        raise DataError(f"evaluate.splits {splits}: none of them is in {folder}; add test or val")
    return frames
