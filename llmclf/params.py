"""Typed, validated `params.yaml`: the one loader every stage and tool goes through."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from .errors import UserError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PARAMS_FILE = Path("params.yaml")

PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


def _each_once(folders: list[str], what: str) -> list[str]:
    """Model folders of an ensemble: one named twice would weigh double in the mean."""
    if len({str(Path(f)) for f in folders}) != len(folders):
        raise ValueError(f"each {what} folder once")
    return folders


class ParamsError(UserError):
    """A params file that cannot be used; the message names the file and the key."""


class _Group(BaseModel):
    # strict: no silent "1e-4" -> float or "true" -> bool coercions; forbid: typos are errors;
    # no inf/NaN: `lr: .inf` would train a NaN adapter without a word.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Base(_Group):
    seed: NonNegInt = 42


class Data(_Group):
    source: str | list[str] = "fancyzhx/ag_news"  # hub dataset id, or a local folder / file / list of files
    revision: str | None = None  # hub revision (commit sha or tag) to pin
    text_columns: list[str] = Field(default=["text"], min_length=1)  # joined with a space
    label_column: str = "label"
    classes: list[Annotated[str, Field(min_length=1)]] = Field(
        default=["World", "Sports", "Business", "Sci/Tech"], min_length=2)

    @field_validator("classes")
    @classmethod
    def _unique(cls, classes: list[str]) -> list[str]:
        # two labels with one name: one class would vanish from the predictions
        repeated = sorted({c for c in classes if classes.count(c) > 1})
        if repeated:
            raise ValueError(f"names must be unique; {repeated} appear more than once")
        return classes


class Sample(_Group):
    mode: Literal["balanced", "stratified"] = "balanced"
    # balanced (the tutorial): this many rows of each class in each split
    train_per_class: PosInt = 2000
    test_per_class: PosInt = 500
    val_per_class: PosInt = 500
    allow_fewer: bool = False  # take what a short class has instead of failing
    # stratified: fractions of every class, so class ratios are kept
    train_fraction: Fraction = 0.8
    test_fraction: Fraction = 0.1
    val_fraction: Fraction = 0.1


class Model(_Group):
    name: str = "smollm2-135m-instruct"  # offline alias, hub id, local folder or .gguf file
    max_length: PosInt = 512
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    trust_remote_code: bool = False  # never run a model repo's own code unless turned on
    allow_pickle_weights: bool = False  # safetensors only: pickle (.bin) weights can run code on load
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"


class Quant(_Group):
    mode: Literal["nf4", "fp4", "int8", "none"] = "nf4"
    double_quant: bool = True


class Lora(_Group):
    r: PosInt = 16
    alpha: PosInt = 8
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.05
    target_modules: Literal["all-linear"] | list[str] = Field(
        default=["q_proj", "k_proj", "v_proj", "o_proj"], min_length=1)
    bias: Literal["none", "all", "lora_only"] = "none"


class Train(_Group):
    lr: PosFloat = 1e-4
    batch_size: PosInt = 8  # fixed: the effective batch, split over the processes; weak: each process's batch
    # with several processes: fixed keeps the effective batch and lr; weak grows both with the process count
    batch_scaling: Literal["fixed", "weak"] = "fixed"
    eval_batch_size: PosInt = 8
    epochs: PosFloat = 1.0
    weight_decay: Annotated[float, Field(ge=0)] = 0.01
    warmup_ratio: Fraction = 0.0
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    label_smoothing: Fraction = 0.0
    class_weights: Literal["auto", "none"] | list[PosFloat] = "auto"  # auto: the tutorial's formula
    gradient_checkpointing: bool = True
    # activations saved for backward wait in pinned host memory, not GPU memory (copied back for backward)
    offload_activations: bool = False
    # >0: a batch with more padded tokens (rows x longest row) runs as row chunks of at most this many,
    # gradients accumulated into the same update; the per-epoch validation pass is chunked alike
    max_batch_tokens: NonNegInt = 0
    group_by_length: bool = False
    # dequantize the 4-bit base once to the compute dtype and train LoRA on that: the frozen values the
    # 4-bit forward multiplies by, without dequantizing them twice a step (more memory: 16-bit weights)
    dense_base: bool = False
    # as prepare_model_for_kbit_training: the frozen 16-bit layers of a 4-bit base (embeddings, norms,
    # head) in float32; false keeps them, and so the residual stream, in the compute dtype
    float32_frozen: bool = True
    optimizer: Literal["adamw_torch", "adamw_torch_fused"] = "adamw_torch"  # fused: one kernel a step
    # the Trainer's check of every step's loss for nan/inf: a host-device sync each step
    nan_inf_filter: bool = True
    eval_each_epoch: bool = True  # evaluate + save every epoch and keep the best by balanced accuracy
    early_stopping_patience: NonNegInt = 0  # epochs without improvement; 0 = off
    logging_steps: PosInt = 10
    checkpoint_steps: NonNegInt = 200  # a resumable checkpoint every N steps (0: only each epoch's)
    num_processes: PosInt = 1  # >1: DDP, one process per GPU of one machine, under `accelerate launch`
    # training's own seed (head and LoRA init, dropout, batch order); base.seed samples the splits, so a
    # spread over train.seed varies training alone
    seed: NonNegInt = 42
    # distillation: teacher folders (`llmclf member save NAME --teacher`: models/teachers/NAME) whose mean
    # temperature-scaled probabilities on the training texts are soft labels; the loss is (1 - alpha) x the
    # true labels' cross-entropy + alpha x the soft labels', so one model learns what several predict
    teachers: list[Annotated[str, Field(min_length=1)]] = []
    distill_alpha: Fraction = 0.5

    _distinct_teachers = field_validator("teachers")(lambda cls, folders: _each_once(folders, "teacher"))


class Baseline(_Group):
    tfidf: bool = True  # TF-IDF + logistic regression fitted on the train split
    zero_shot: bool = True  # the causal LM prompted, each class name scored as the answer
    # {text}: the article (cut to model.max_length tokens); {classes}: the labels, comma-separated
    zero_shot_prompt: str = ("Classify the news article into one of these categories: {classes}.\n\n"
                             "Article: {text}\n\nCategory:")
    # the answer scored for each class, in data.classes order; None: data.classes
    zero_shot_labels: list[Annotated[str, Field(min_length=1)]] | None = None
    zero_shot_score: Literal["mean", "sum"] = "mean"  # of the answer's token log-probs; mean: length-normalised
    zero_shot_chat_template: bool = False  # wrap the prompt in the tokenizer's chat template, if it has one

    @field_validator("zero_shot_prompt")
    @classmethod
    def _has_text(cls, prompt: str) -> str:
        if "{text}" not in prompt:
            raise ValueError("must contain {text}, where the article goes")
        return prompt


class Inference(_Group):
    """How the baseline and evaluate stages, and `llmclf predict`, run a model over texts."""
    batch_size: PosInt = 32
    max_batch_tokens: NonNegInt = 0  # >0: batches of long texts hold fewer rows, at most this many padded tokens
    # predict with the 4-bit weights dequantized and LoRA merged: the same function, no per-layer
    # dequantization or LoRA branch on every batch
    dense: bool = True


class Evaluate(_Group):
    splits: list[Literal["test", "val", "official_test"]] = Field(
        default=["test", "official_test"], min_length=1)
    temperature_scaling: bool = True  # fit T on the val split's logits; predict divides logits by it
    # member folders (`llmclf member save NAME`: models/members/NAME) scored with the fine-tuned model as
    # an ensemble, the mean of their temperature-scaled probabilities; empty: no ensemble
    members: list[Annotated[str, Field(min_length=1)]] = []

    _distinct = field_validator("members")(lambda cls, folders: _each_once(folders, "member"))


class Params(_Group):
    base: Base = Base()
    data: Data = Data()
    sample: Sample = Sample()
    model: Model = Model()
    quant: Quant = Quant()
    lora: Lora = Lora()
    inference: Inference = Inference()
    baseline: Baseline = Baseline()
    train: Train = Train()
    evaluate: Evaluate = Evaluate()

    @model_validator(mode="after")
    def _one_value_per_class(self) -> "Params":
        k = len(self.data.classes)
        for key, values in [("train.class_weights", self.train.class_weights),
                            ("baseline.zero_shot_labels", self.baseline.zero_shot_labels)]:
            if isinstance(values, list) and len(values) != k:
                raise ValueError(f"{key}: {len(values)} values for the {k} data.classes; give one per class")
        return self


class _Loader(yaml.SafeLoader):
    """PyYAML (YAML 1.1) reads `1e-4` as a string; DVC (YAML 1.2) reads a float. Read as DVC does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def read_yaml_text(text: str, origin: str | Path = PARAMS_FILE) -> dict:
    try:
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        raise ParamsError(f"{origin}: not valid YAML: {e}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{origin}: expected a mapping of groups, got {type(raw).__name__}")
    return raw


def read_yaml(path: Path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    return read_yaml_text(text, path)


def parse(raw: dict, origin: str | Path = PARAMS_FILE) -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            # without pydantic's tags of union members ("list[constrained-float]"): the key as written
            key = ".".join(str(p) for p in err["loc"] if "[" not in str(p))
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            if not key:  # a check across groups: its message names the keys
                lines.append(f"  {msg}")
                continue
            got = "" if err["type"] == "missing" else f" (got {err['input']!r})"
            lines.append(f"  {key}: {msg}{got}")
        raise ParamsError(f"{origin}: invalid params\n" + "\n".join(lines)) from None


def load(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate a params file; any problem is one ParamsError naming file and key."""
    return parse(read_yaml(Path(path)), path)


def stage_params(stage: str, dvc_yaml: str | Path = "dvc.yaml") -> list[str]:
    """The params keys (`group` or `group.key`) that dvc.yaml lists for `stage`."""
    return list(read_yaml(Path(dvc_yaml))["stages"][stage]["params"])


def values(p: Params, keys: list[str]) -> dict:
    """The values of `keys` (as dvc.yaml lists them) in `p`, nested by group."""
    include: dict = {}
    for key in keys:
        group, _, name = key.partition(".")
        if name:
            include.setdefault(group, set()).add(name)
        else:
            include[group] = True
    return p.model_dump(include=include)
