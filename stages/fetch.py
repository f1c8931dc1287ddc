"""Stage 1, fetch: read `data.source` (hub dataset or local files) into data/raw/<split>.parquet."""
import _env  # noqa: F401  (first: the project's Python environment)
from llmclf.core import errors, params
from llmclf.core.atomic import atomic_path, write_json
from llmclf.core.runlog import phase, write_log
from llmclf.data import sources
from llmclf.data.splits import class_counts

RAW = "data/raw"

phase("work")
errors.install("the fetch stage; `dvc repro` runs it again, `dvc checkout` restores its earlier outputs")
p = params.load()
frames, provenance = sources.fetch(p.data)
provenance["splits"] = {
    split: {"rows": len(df), "classes": class_counts(df, p.data.classes)} for split, df in frames.items()
}
with atomic_path(RAW, is_dir=True) as out:
    for split, df in frames.items():
        df.to_parquet(out / f"{split}.parquet", index=False)
    write_json(provenance, out / "provenance.json")
for split, info in provenance["splits"].items():
    print(f"fetch: {split}: {info['rows']} rows {info['classes']}")
write_log("fetch", {})
