"""File readers: local source files (CSV, the original AG News CSV, Parquet, JSONL) into text/label frames."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.params import Data

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}


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
    """The original AG News release: no header, every row `class index (1-based), title, description`
    (a description, not a number: a headerless `id,text,label` file is not taken for it)."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        first = next(csv.reader(f), [])
    return len(first) == 3 and first[0].strip().isdigit() and not first[2].strip().lstrip("-").isdigit()


def read_agnews_csv(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, header=None, encoding="utf-8-sig", names=["label", "title", "description"],
                     dtype={"title": str, "description": str}, keep_default_na=False)
    # as the hub's ag_news builder: text = title + " " + description, labels 1..4 -> 0..3
    text = (df["title"] + " " + df["description"]).str.strip()
    return pd.DataFrame({"text": text, "label": df["label"].astype("int64") - 1})


def text_head(path: Path, kind: str) -> bytes:
    """The first bytes of a file to be read as text; a binary one (Parquet, a model, an archive) is named as such."""
    with open(path, "rb") as f:
        head = f.read(8192)
    if b"\0" in head:
        raise DataError(f"{path}: not {kind} text (NUL bytes: a binary file, or text in UTF-16)"
                        + ("; it is Parquet: name it .parquet" if head.startswith(b"PAR1") else
                           "; give a UTF-8 text file"))
    return head


def read_json_rows(path: Path, head: bytes) -> pd.DataFrame:
    """JSON Lines (an object per line), or one JSON array of objects. Values stay as written: "007" stays "007"."""
    return pd.read_json(path, lines=not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["), dtype=False)


def read_file(path: Path, data: Data) -> pd.DataFrame:
    kind = SUFFIXES[path.suffix.lower()]
    head = b"" if kind == "parquet" else text_head(path, kind)
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind == "jsonl":
            return read_json_rows(path, head)
        if is_agnews_csv(path):
            return read_agnews_csv(path)
        # texts such as "NA" or "1.50" stay as written
        return pd.read_csv(path, dtype={c: str for c in data.text_columns}, keep_default_na=False)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); re-encode it as UTF-8") from None
    except (ValueError, pd.errors.ParserError, OSError) as e:
        raise DataError(f"{path}: cannot be read as {kind}: {e}") from None


def check_text(values: pd.Series, what: str) -> None:
    """Texts are strings, or numbers among strings (joined as written); a column of numbers alone (a Parquet
    integer column), lists or bytes would be read as their printed form without a word."""
    rows = np.flatnonzero(values.notna().to_numpy())
    text = values.iloc[rows].map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    number = values.iloc[rows].map(lambda v: isinstance(v, (int, float))).to_numpy(dtype=bool)
    odd = rows[~text & ~(number & text.any())]
    if len(odd):
        value = values.iloc[odd[0]]
        raise DataError(f"{what} holds {type(value).__name__} values, not text (first at row {odd[0]}: {value}); "
                        "store the texts as strings, or name the text column (data.text_columns, --text-column)")


def read_classes_txt(folder: Path) -> list[str] | None:
    f = folder / "classes.txt"
    return [line.strip() for line in f.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if f.is_file() else None


def to_text_label(df: pd.DataFrame, data: Data, origin: str) -> pd.DataFrame:
    """Map a source frame to the pipeline's two columns: `text` (str) and `label` (0..K-1)."""
    missing = [c for c in [*data.text_columns, data.label_column] if c not in df.columns]
    if missing:
        headerless = any(str(c).strip().lstrip("-").isdigit() for c in df.columns)
        raise DataError(f"{origin}: missing column(s) {missing}; it has {list(df.columns)}. "
                        + ("Its first row looks like data, not a header: add a header row naming the columns, or "
                           if headerless else "") + "set data.text_columns / data.label_column to match.")
    if len(df) == 0:
        raise DataError(f"{origin}: no rows")
    cols = list(data.text_columns)
    for c in cols:
        check_text(df[c], f"{origin}: column {c!r}")
    parts = df[cols].astype(object).where(df[cols].notna(), "").astype(str)
    text = parts.apply(lambda r: " ".join(s.strip() for s in r if s.strip()), axis=1)
    empty = np.flatnonzero(text.str.len().to_numpy() == 0)
    if len(empty):
        raise DataError(f"{origin}: {len(empty)} row(s) with empty text (first at row {empty[0]}); "
                        "drop or fill them in the source")
    labels = df[data.label_column]
    unlabelled = np.flatnonzero(labels.isna().to_numpy() | (labels.astype(str).str.strip() == "").to_numpy())
    if len(unlabelled):
        raise DataError(f"{origin}: {len(unlabelled)} row(s) without a label (first at row {unlabelled[0]}); "
                        "drop or fill them in the source")
    k = len(data.classes)
    kinds = labels.map(type)
    if not pd.api.types.is_integer_dtype(labels) and not (kinds == str).all():  # 0.0, True, or 0 beside "World"
        row = int(np.flatnonzero((kinds != str).to_numpy())[0])
        value = labels.iloc[row].item() if hasattr(labels.iloc[row], "item") else labels.iloc[row]  # numpy's: as written
        raise DataError(f"{origin}: label {value!r} at row {row} ({type(value).__name__}); "
                        f"labels are whole numbers 0..{k - 1} or the names in data.classes {list(data.classes)}, "
                        "one kind per column")
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
