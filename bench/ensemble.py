"""Score an ensemble: the mean of several classifiers' class probabilities, from `llmclf predict`
JSONL files of the same rows, against a split's labels; each member alone beside it.

    llmclf predict val.csv --adapter A --no-calibration -o a-val.jsonl      # each member, each split
    python bench/ensemble.py data/splits/val.parquet a-val.jsonl b-val.jsonl [--out scores.json]

Choose members on val; score the chosen ensemble once on the official test rows.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd


def probabilities(path: Path) -> tuple[list[str], np.ndarray]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    classes = list(rows[0]["probs"])
    return classes, np.array([[r["probs"][c] for c in classes] for r in rows])


def score(labels: np.ndarray, members: dict[str, np.ndarray]) -> dict[str, float]:
    """Accuracy of each member and of their mean probabilities."""
    out = {name: float((p.argmax(1) == labels).mean()) for name, p in members.items()}
    out["mean"] = float((np.mean(list(members.values()), axis=0).argmax(1) == labels).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("split", type=Path, help="Parquet split with a label column (class ids)")
    ap.add_argument("members", type=Path, nargs="+", help="llmclf predict JSONL files, rows in the split's order")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    labels = pd.read_parquet(args.split)["label"].to_numpy()
    members, classes = {}, None
    for path in args.members:
        names, p = probabilities(path)
        if len(p) != len(labels):
            raise SystemExit(f"error: {path}: {len(p)} rows, the split has {len(labels)}")
        if classes not in (None, names):
            raise SystemExit(f"error: {path}: classes {names}, the first member's are {classes}")
        classes, members[path.stem] = names, p
    result = score(labels, members)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
