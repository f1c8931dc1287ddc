"""The adapter folder: LoRA weights and head, what rebuilds their base (llmclf.json), and a model card."""
from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import ModelError
from ..core.hashing import sha256, weights_sha256
from ..core.params import Model, Quant
from . import basemodel
from .loading import load_classifier

ADAPTER_INFO = "llmclf.json"  # what the adapter needs to rebuild its base: model, quant, labels, pad
ADAPTER_WEIGHTS = "adapter_model.safetensors"  # PEFT's file: LoRA and the trained head


def save_adapter_info(folder: Path, model: Model, quant: Quant, classes: list[str], tok) -> None:
    """What rebuilds the base, and the sha256 of the adapter's weights and of the base's, which
    load_adapter checks: a corrupted adapter or another base is an error, not other predictions."""
    info = {"model": model.model_dump(), "quant": quant.model_dump(), "classes": list(classes),
            "pad_token": tok.pad_token, "pad_token_id": tok.pad_token_id,
            "adapter_sha256": sha256(folder / ADAPTER_WEIGHTS),
            "base_sha256": weights_sha256(basemodel.resolve(model.name))}
    (folder / ADAPTER_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def read_info(folder: str | Path) -> dict:
    """What the adapter was trained with (llmclf.json): model params (max_length included), quant, classes,
    pad, and the sha256 of its weights and of its base's."""
    info_file = Path(folder) / ADAPTER_INFO
    if not info_file.is_file():
        raise ModelError(f"{folder}: not a trained adapter folder (missing {ADAPTER_INFO}); run `dvc repro train` first")
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
        for key in ("adapter_sha256", "base_sha256"):
            if not isinstance(info[key], str):
                raise ValueError(f"{key} {info[key]!r} is not a checksum")
    except (ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{info_file}: not the record training writes ({type(e).__name__}: {e}); "
                         "restore the adapter (`dvc checkout models/adapter`) or retrain it") from None
    return info


def read_checked_info(folder: str | Path) -> dict:
    """read_info, once the adapter's weights are found to be those it was trained to (their sha256)."""
    info = read_info(folder)
    weights = Path(folder) / ADAPTER_WEIGHTS
    if not weights.is_file() or sha256(weights) != info["adapter_sha256"]:
        raise ModelError(f"{weights}: {'missing' if not weights.is_file() else 'changed since training'} "
                         f"(sha256 recorded in {ADAPTER_INFO}); restore the adapter "
                         f"(`dvc checkout {folder}`) or retrain it")
    return info


def load_adapter(folder: str | Path, base: str | None = None):
    """Rebuild base + trained adapter (head included) from an adapter folder, for inference.
    `base` overrides the model.name recorded at training (e.g. the same model in another folder).
    The adapter's weights and the base's must be those it was trained with (sha256 in llmclf.json)."""
    from peft import PeftModel

    folder = Path(folder)
    info = read_checked_info(folder)
    model_params = Model(**(info["model"] | ({"name": base} if base else {})))
    if weights_sha256(basemodel.resolve(model_params.name)) != info["base_sha256"]:
        raise ModelError(f"{folder}: trained on other base weights than those of {model_params.name!r} "
                         f"(trained on {info['model']['name']!r}); give that base with --base, or retrain")
    model, tok = load_classifier(model_params, Quant(**info["quant"]), info["classes"])
    if tok.pad_token_id != info["pad_token_id"]:
        raise ModelError(f"{folder}: trained with pad id {info['pad_token_id']}, "
                         f"but the base tokenizer pads with {tok.pad_token_id}")
    model = PeftModel.from_pretrained(model, folder)
    model.eval()
    return model, tok, info["classes"]


def save_adapter(model, tok, folder: Path, p, train_metrics: dict) -> None:
    """Adapter weights (LoRA + the trained head), tokenizer, what rebuilds the base, and a model card."""
    import yaml

    for config in model.peft_config.values():  # the base as the user names it, never the cache folder it
        config.base_model_name_or_path = p.model.name  # resolved to on the machine that trained
        config.peft_version = None  # peft's own version: a patch release would change the saved bytes
        if isinstance(config.target_modules, set):  # all-linear, expanded: a set's order differs between
            config.target_modules = sorted(config.target_modules)  # processes, the saved file must not
    # no embeddings are trained: without this, peft would look the base name up on the hub to compare
    # vocabularies (a network request, and a warning on a host without network)
    model.save_pretrained(folder, save_embedding_layers=False)
    tok.save_pretrained(folder)
    save_adapter_info(folder, p.model, p.quant, p.data.classes, tok)
    recipe = {k: getattr(p, k).model_dump() for k in ("model", "quant", "lora", "train")}
    card = [
        "---", "library_name: peft", "pipeline_tag: text-classification", "tags: [llmclf, qlora, lora]", "---",
        f"# {p.model.name}: LoRA sequence classifier", "",
        f"Labels: {', '.join(f'{i} = {c}' for i, c in enumerate(p.data.classes))}. "
        f"Pad token: `{tok.pad_token}` (id {tok.pad_token_id}).", "",
        f"Base model: `{p.model.name}` (`model.name`: an llmclf alias, a hub id or a folder). Load with "
        "`llmclf.model.adapter.load_adapter(folder)` (or `llmclf predict --adapter folder`), which rebuilds the base "
        "as trained (quantization, labels, pad token) on any machine that can resolve that name.", "",
        "## Validation metrics", "", "| metric | value |", "|---|---|",
        # scores only, no timings: the same run gives the same bytes
        *[f"| {k} | {v} |" for k, v in train_metrics.items() if k.startswith(("val_", "train_loss"))], "",
        "## Recipe (params.yaml)", "", "```yaml", yaml.safe_dump(recipe, sort_keys=False).rstrip(), "```", "",
    ]
    (folder / "README.md").write_text("\n".join(card), encoding="utf-8")
