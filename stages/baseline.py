"""Stage 4, baseline: what fine-tuning has to beat, scored on the test splits. The tutorial's baseline
(the untrained model with a fresh classification head), TF-IDF + logistic regression trained on the
same rows, and the causal LM prompted zero-shot."""
import _env  # noqa: F401  (first: the project's Python environment)
from llmclf import baselines, data, inference, metrics, modeling, params
from llmclf.outputs import write_baselines

SPLITS_DIR = "data/splits"

p = params.load()
classes, batch_size, max_length = p.data.classes, p.evaluate.batch_size, p.model.max_length
max_tokens = p.evaluate.max_batch_tokens
frames = data.read_eval_splits(SPLITS_DIR, p.evaluate.splits)
runs = {}


def dense(model):
    return modeling.dense_for_inference(model) if p.evaluate.dense_inference else model.eval()


model, tok = modeling.load_classifier(p.model, p.quant, classes, seed=p.base.seed)
predict = inference.classifier(dense(model), tok, batch_size, max_length, max_tokens)
runs["untrained_head"] = inference.predict_splits(predict, frames, warm_up=batch_size)
del model, predict  # one model in memory at a time

if p.baseline.tfidf:
    predict, c = baselines.tfidf_logreg(data.read_split(SPLITS_DIR, "train"), data.read_split(SPLITS_DIR, "val"))
    print(f"tfidf_logreg: C = {c}, the best on val")
    runs["tfidf_logreg"] = inference.predict_splits(predict, frames)

if p.baseline.zero_shot:
    lm, tok = modeling.load_causal_lm(p.model, p.quant)
    predict = baselines.zero_shot(dense(lm), tok, classes, p.baseline, batch_size, max_length, max_tokens)
    runs["zero_shot"] = inference.predict_splits(predict, frames, warm_up=batch_size)

results = {name: metrics.evaluate(frames, logits, classes, speed, name=f"{name}: ")
           for name, (logits, speed) in runs.items()}
scores = {name: ev.scores for name, ev in results.items()} | modeling.peak_gpu_memory()
write_baselines(results, scores, "metrics/baseline.json", "metrics/baseline")
