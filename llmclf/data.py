"""Data IO and sampling: read a source (hub or local files) into text/label frames, sample and split it."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UserError
from .params import Data, Sample

SPLITS = ("train", "test", "val")  # the tutorial's order of taking rows from each class
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}
OFFLINE_HINT = ("Point data.source at local files instead, e.g. `dvc exp run -S data.source=data/ag_news` "
                "(the AG News copy in the project).")


class DataError(UserError):
    """Input data that cannot be used; the message names the input and the fix."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- reading a source


def is_local(source: str | list[str]) -> bool:
    if isinstance(source, list):
        return True
    return Path(source).exists() or source.startswith((".", "/", "~"))


def local_files(source: str | list[str]) -> list[Path]:
    paths = [Path(p).expanduser() for p in (source if isinstance(source, list) else [source])]
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in SUFFIXES)
            if not found:
                raise DataError(f"{p}: no .csv, .parquet or .jsonl files in this folder")
            files += found
        elif p.is_file():
            if p.suffix.lower() not in SUFFIXES:
                raise DataError(f"{p}: unsupported file type {p.suffix!r}; use .csv, .parquet or .jsonl")
            files.append(p)
        else:
            raise DataError(f"{p}: no such file or folder (data.source)")
    stems = [f.stem for f in files]
    if len(set(stems)) != len(stems):
        raise DataError(f"{paths}: two files map to the same split name: {stems}")
    return files


def is_agnews_csv(path: Path) -> bool:
    """The original AG News release: no header, every row `class index (1-based), title, description`."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        first = next(csv.reader(f), [])
    return len(first) == 3 and first[0].strip().isdigit()


def read_agnews_csv(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, header=None, encoding="utf-8-sig", names=["label", "title", "description"],
                     dtype={"title": str, "description": str}, keep_default_na=False)
    # as the hub's ag_news builder: text = title + " " + description, labels 1..4 -> 0..3
    text = (df["title"] + " " + df["description"]).str.strip()
    return pd.DataFrame({"text": text, "label": df["label"].astype("int64") - 1})


def read_file(path: Path, data: Data) -> pd.DataFrame:
    kind = SUFFIXES[path.suffix.lower()]
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind == "jsonl":
            return pd.read_json(path, lines=True, dtype=False)  # "007" stays "007"
        if is_agnews_csv(path):
            return read_agnews_csv(path)
        # texts such as "NA" or "1.50" stay as written
        return pd.read_csv(path, dtype={c: str for c in data.text_columns}, keep_default_na=False)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); re-encode it as UTF-8") from None
    except (ValueError, pd.errors.ParserError, OSError) as e:
        raise DataError(f"{path}: cannot be read as {kind}: {e}") from None


def read_classes_txt(folder: Path) -> list[str] | None:
    f = folder / "classes.txt"
    return [line.strip() for line in f.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if f.is_file() else None


def to_text_label(df: pd.DataFrame, data: Data, origin: str) -> pd.DataFrame:
    """Map a source frame to the pipeline's two columns: `text` (str) and `label` (0..K-1)."""
    missing = [c for c in [*data.text_columns, data.label_column] if c not in df.columns]
    if missing:
        raise DataError(f"{origin}: missing column(s) {missing}; it has {list(df.columns)}. "
                        "Set data.text_columns / data.label_column to match.")
    if len(df) == 0:
        raise DataError(f"{origin}: no rows")
    cols = list(data.text_columns)
    parts = df[cols].astype(object).where(df[cols].notna(), "").astype(str)
    text = parts.apply(lambda r: " ".join(s.strip() for s in r if s.strip()), axis=1)
    empty = np.flatnonzero(text.str.len().to_numpy() == 0)
    if len(empty):
        raise DataError(f"{origin}: {len(empty)} row(s) with empty text (first at row {empty[0]}); "
                        "drop or fill them in the source")
    labels = df[data.label_column]
    k = len(data.classes)
    if pd.api.types.is_integer_dtype(labels):
        bad = sorted(set(labels[(labels < 0) | (labels >= k)].tolist()))
        if bad:
            raise DataError(f"{origin}: labels {bad[:10]} outside 0..{k - 1} for data.classes {list(data.classes)}")
        label = labels.astype("int64")
    else:
        index = {name: i for i, name in enumerate(data.classes)}
        names = labels.astype(str).str.strip()
        bad = sorted(set(names[~names.isin(index)]))
        if bad:
            raise DataError(f"{origin}: labels {bad[:10]} are not in data.classes {list(data.classes)}")
        label = names.map(index).astype("int64")
    return pd.DataFrame({"text": text.to_numpy(), "label": label.to_numpy()})


def read_local(data: Data) -> tuple[dict[str, pd.DataFrame], dict]:
    files = local_files(data.source)
    for folder in {f.parent for f in files}:
        names = read_classes_txt(folder)
        if names is not None and names != list(data.classes):
            raise DataError(f"{folder / 'classes.txt'} lists {names} but data.classes is {list(data.classes)}; "
                            "make them agree")
    frames = {f.stem: to_text_label(read_file(f, data), data, str(f)) for f in files}
    info = {"kind": "local", "files": [{"path": str(f), "sha256": sha256(f)} for f in files]}
    return frames, info


def check_hub(source: str, revision: str | None) -> str:
    """Resolve the dataset's commit on the hub, failing within seconds when the hub is out of reach."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        return HfApi().dataset_info(source, revision=revision, timeout=10).sha
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise DataError(f"data.source {source!r} (revision {revision}): not found on the hub: {e}") from None
    except Exception as e:  # offline mode, DNS, refused or timed-out connection
        raise DataError(f"data.source {source!r}: the dataset hub cannot be reached "
                        f"({type(e).__name__}: {str(e)[:200]}). {OFFLINE_HINT}") from None


def read_hub(data: Data) -> tuple[dict[str, pd.DataFrame], dict]:
    sha = check_hub(data.source, data.revision)
    import datasets

    ds = datasets.load_dataset(data.source, revision=sha)
    frames = {}
    for split, d in ds.items():
        feature = d.features.get(data.label_column)
        names = getattr(feature, "names", None)
        if names is not None and list(names) != list(data.classes):
            raise DataError(f"{data.source}: label names {names} differ from data.classes {list(data.classes)}")
        frames[split] = to_text_label(d.to_pandas(), data, f"{data.source}[{split}]")
    return frames, {"kind": "hub", "revision": sha}


def fetch(data: Data) -> tuple[dict[str, pd.DataFrame], dict]:
    """Read `data.source` into {split: frame} plus a provenance record of where it came from."""
    frames, info = read_local(data) if is_local(data.source) else read_hub(data)
    if "train" not in frames:
        raise DataError(f"data.source {data.source!r}: no 'train' split (got {sorted(frames)}); "
                        "name the training file train.csv / train.parquet / train.jsonl")
    dropped = {}
    for split, df in frames.items():  # a repeated text would count twice, or land in two splits
        frames[split] = df.drop_duplicates("text", ignore_index=True)
        dropped[split] = len(df) - len(frames[split])
    held_out = set().union(*(set(df["text"]) for split, df in frames.items() if split != "train"))
    leaked = frames["train"]["text"].isin(held_out)  # never train on a row of another split
    frames["train"] = frames["train"][~leaked].reset_index(drop=True)
    return frames, {"source": data.source, **info, "duplicates_dropped": dropped,
                    "train_rows_also_in_other_splits_dropped": int(leaked.sum())}


def class_counts(df: pd.DataFrame, classes: list[str]) -> dict[str, int]:
    counts = df["label"].value_counts()
    return {name: int(counts.get(i, 0)) for i, name in enumerate(classes)}


# ---------------------------------------------------------------- sampling and splitting


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
    return frames
