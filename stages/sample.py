"""Stage 2, sample: the tutorial's seeded per-class sampling of the raw training rows."""
import _env  # noqa: F401  (first: the project's Python environment)
from llmclf import data, params
from llmclf.atomic import write_parquet

p = params.load()
raw = data.read_split("data/raw", "train")
sampled = data.sample_splits(raw, p.sample, p.data.classes, seed=p.base.seed)
write_parquet(sampled, "data/sampled.parquet")
print(sampled.groupby(["split", "label"]).size().unstack().to_string())
