"""Write a stage's evaluation outputs: metrics JSON, per-row predictions and text reports."""
from __future__ import annotations

from .atomic import atomic_path, write_json


def write_evaluation(scores: dict, preds: dict, reports: dict, metrics_file: str, folder: str, extra=None) -> None:
    with atomic_path(folder, is_dir=True) as out:
        for split, df in preds.items():
            df.to_csv(out / f"{split}.csv", index=False)
        (out / "report.txt").write_text("".join(f"== {s} ==\n{r}\n" for s, r in reports.items()), encoding="utf-8")
        if extra is not None:
            extra(out)
    write_json(scores, metrics_file)
