"""Stage 4, baseline: what fine-tuning has to beat, scored on the test splits. The tutorial's baseline
(the untrained model with a fresh classification head), TF-IDF + logistic regression trained on the
same rows, and the causal LM prompted zero-shot."""
import _env  # first: the project's Python environment, and this stage's GPUs before torch loads
from llmclf.core import gpus, params
from llmclf.core.atomic import together
from llmclf.core.runlog import phase, write_log
from llmclf.data import splits
from llmclf.evaluate import baselines, inference, metrics
from llmclf.evaluate.outputs import write_baselines
from llmclf.model.loading import load_causal_lm, load_classifier

SPLITS_DIR = "data/splits"

phase("data")
p = params.load()
classes, max_length = p.data.classes, p.model.max_length
frames = splits.read_eval_splits(SPLITS_DIR, p.evaluate.splits)
runs = {}

phase("model load")
model, tok = load_classifier(p.model, p.quant, classes, seed=p.base.seed)
phase("scoring")
predict = inference.classifier(model, tok, p.inference, max_length)
runs["untrained_head"] = inference.predict_splits(predict, frames, warm_up=p.inference.batch_size)
del model, predict  # one model in memory at a time

if p.baseline.tfidf:
    phase("tfidf")
    predict, c = baselines.tfidf_logreg(splits.read_split(SPLITS_DIR, "train"), splits.read_split(SPLITS_DIR, "val"))
    print(f"tfidf_logreg: C = {c}, the best on val")
    runs["tfidf_logreg"] = inference.predict_splits(predict, frames)

if p.baseline.zero_shot:
    phase("zero-shot model load")
    lm, tok = load_causal_lm(p.model, p.quant)
    phase("zero-shot scoring")
    predict = baselines.zero_shot(lm, tok, classes, p.baseline, p.inference, max_length)
    runs["zero_shot"] = inference.predict_splits(predict, frames, warm_up=p.inference.batch_size)

phase("metrics")
results = {}
for name, (logits, _) in runs.items():
    results[name] = metrics.evaluate(frames, logits, classes)
    metrics.print_summary(results[name], name=f"{name}: ")
phase("writes")
with together():  # both or neither: a full disk midway leaves each as it was
    write_baselines(results, {name: ev.scores for name, ev in results.items()}, "metrics/baseline.json",
                    "metrics/baseline")
write_log("baseline", {"examples_per_s": {name: speed for name, (_, speed) in runs.items()}} | gpus.peak_gpu_memory())
_env.finish()
