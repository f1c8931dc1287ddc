"""Stage 4, baseline: the untrained model with a fresh classification head, scored on the test splits."""
from llmclf import inference, modeling, params
from llmclf.outputs import write_evaluation

p = params.load()
model, tok = modeling.load_classifier(p.model, p.quant, p.data.classes, seed=p.base.seed)
model = modeling.dense_for_inference(model) if p.evaluate.dense_inference else model.eval()
scores, preds, reports = inference.evaluate_splits(model, tok, p.data.classes, p.evaluate.splits,
                                                   p.evaluate.batch_size, p.model.max_length)
write_evaluation(scores | modeling.peak_gpu_memory(), preds, reports, "metrics/baseline.json", "metrics/baseline")
