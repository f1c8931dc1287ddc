"""Stage 2, sample: the tutorial's seeded per-class sampling of the raw training rows."""
import _env  # noqa: F401  (first: the project's Python environment)
from llmclf.core import errors, params
from llmclf.core.atomic import write_parquet
from llmclf.core.runlog import phase, write_log
from llmclf.data import splits

phase("work")
errors.install("the sample stage; `dvc repro` runs it again, `dvc checkout` restores its earlier outputs")
p = params.load()
raw = splits.read_split("data/raw", "train")
sampled = splits.sample_splits(raw, p.sample, p.data.classes, seed=p.base.seed)
write_parquet(sampled, "data/sampled.parquet")
print(sampled.groupby(["split", "label"]).size().unstack().to_string())
write_log("sample", {})
