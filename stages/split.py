"""Stage 3, split: write train/val/test (and the source's official test) with a summary and class weights."""
import _env  # noqa: F401  (first: the project's Python environment)
from pathlib import Path

import pandas as pd

from llmclf.core import errors, params
from llmclf.core.atomic import atomic_path, write_json
from llmclf.core.runlog import phase, write_log
from llmclf.data import splits

SPLITS_DIR = "data/splits"

phase("work")
errors.install("the split stage; `dvc repro` runs it again, `dvc checkout` restores its earlier outputs")
p = params.load()
sampled = pd.read_parquet("data/sampled.parquet")
frames = {s: sampled[sampled["split"] == s].drop(columns="split").reset_index(drop=True) for s in ("train", "val", "test")}
if Path("data/raw/test.parquet").is_file():  # keep the source's own test split for published-number comparisons
    frames["official_test"] = splits.read_split("data/raw", "test")

summary = {
    "splits": {s: {"rows": len(df), "classes": splits.class_counts(df, p.data.classes)} for s, df in frames.items()},
    "class_weights": splits.class_weights(frames["train"], len(p.data.classes)),
}
with atomic_path(SPLITS_DIR, is_dir=True) as out:
    for split, df in frames.items():
        df.to_parquet(out / f"{split}.parquet", index=False)
    write_json(summary, out / "summary.json")
for split, info in summary["splits"].items():
    print(f"split: {split}: {info['rows']} rows")
print("split: class weights", [round(w, 4) for w in summary["class_weights"]])
write_log("split", {})
