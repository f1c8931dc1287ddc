"""Data sources: `data.source` (hub dataset or local files) read into {split: frame} with its provenance."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..core.errors import DataError
from ..core.hashing import sha256
from ..core.params import Data
from .readers import local_files, read_classes_txt, read_file, to_text_label

OFFLINE_HINT = ("Point data.source at local files instead, e.g. `dvc exp run -S data.source=data/ag_news` "
                "(the AG News copy in the project).")


def is_local(source: str | list[str]) -> bool:
    if isinstance(source, list):
        return True
    return Path(source).exists() or source.startswith((".", "/", "~"))


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


def hub_revision(source: str, revision: str | None) -> str:
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
    sha = hub_revision(data.source, data.revision)
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
