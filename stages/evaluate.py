"""Stage 6, evaluate: base + trained adapter from disk, scored on the test splits, against the baseline."""
from pathlib import Path

import pandas as pd

from llmclf import inference, metrics, modeling, params
from llmclf.outputs import write_evaluation

p = params.load()
model, tok, classes = modeling.load_adapter("models/adapter")
if p.evaluate.dense_inference:
    model = modeling.dense_for_inference(model)
scores, preds, reports = inference.evaluate_splits(model, tok, classes, p.evaluate.splits,
                                                   p.evaluate.batch_size, p.model.max_length)


def confusion_pngs(out: Path) -> None:
    for split, df in preds.items():
        runs = {"baseline": pd.read_csv(f"metrics/baseline/{split}.csv")} \
            if Path(f"metrics/baseline/{split}.csv").is_file() else {}
        metrics.confusion_figure(runs | {"fine-tuned": df}, classes, out / f"confusion_{split}.png")


write_evaluation(scores | modeling.peak_gpu_memory(), preds, reports, "metrics/eval.json", "metrics/eval",
                 extra=confusion_pngs)
