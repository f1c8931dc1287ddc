"""Typed, validated `params.yaml`: the one loader every stage and tool goes through. Every key is required:
params.yaml is the one place a value (and the comment that says what it does) is written; code that sets a
few keys starts from it (`defaults`)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from .errors import UserError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PARAMS_FILE = Path("params.yaml")
DEFAULTS = Path(__file__).resolve().parents[2] / PARAMS_FILE  # the project's own, wherever it is run from

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
    seed: NonNegInt


class Data(_Group):
    source: str | list[str]
    revision: str | None
    text_columns: list[str] = Field(min_length=1)
    label_column: str
    classes: list[Annotated[str, Field(min_length=1)]] = Field(min_length=2)

    @field_validator("classes")
    @classmethod
    def _unique(cls, classes: list[str]) -> list[str]:
        # two labels with one name: one class would vanish from the predictions
        repeated = sorted({c for c in classes if classes.count(c) > 1})
        if repeated:
            raise ValueError(f"names must be unique; {repeated} appear more than once")
        return classes


class Sample(_Group):
    mode: Literal["balanced", "stratified"]
    train_per_class: PosInt
    test_per_class: PosInt
    val_per_class: PosInt
    allow_fewer: bool
    train_fraction: Fraction
    test_fraction: Fraction
    val_fraction: Fraction


class Model(_Group):
    name: str
    max_length: PosInt
    dtype: Literal["auto", "bfloat16", "float16", "float32"]
    trust_remote_code: bool
    allow_pickle_weights: bool
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"]


class Quant(_Group):
    mode: Literal["nf4", "fp4", "int8", "none"]
    double_quant: bool


class Lora(_Group):
    r: PosInt
    alpha: PosInt
    dropout: Annotated[float, Field(ge=0, lt=1)]
    target_modules: Literal["all-linear"] | list[str] = Field(min_length=1)
    bias: Literal["none", "all", "lora_only"]


class Train(_Group):
    lr: PosFloat
    batch_size: PosInt
    batch_scaling: Literal["fixed", "weak"]
    eval_batch_size: PosInt
    epochs: PosFloat
    weight_decay: Annotated[float, Field(ge=0)]
    warmup_ratio: Fraction
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"]
    label_smoothing: Fraction
    class_weights: Literal["auto", "none"] | list[PosFloat]
    gradient_checkpointing: bool
    offload_activations: bool
    max_batch_tokens: NonNegInt
    group_by_length: bool
    dense_base: bool
    float32_frozen: bool
    optimizer: Literal["adamw_torch", "adamw_torch_fused"]
    nan_inf_filter: bool
    eval_each_epoch: bool
    early_stopping_patience: NonNegInt
    logging_steps: PosInt
    checkpoint_steps: NonNegInt
    num_processes: PosInt
    seed: NonNegInt
    teachers: list[Annotated[str, Field(min_length=1)]]
    distill_alpha: Fraction

    _distinct_teachers = field_validator("teachers")(lambda cls, folders: _each_once(folders, "teacher"))


class Baseline(_Group):
    tfidf: bool
    zero_shot: bool
    zero_shot_prompt: str
    zero_shot_labels: list[Annotated[str, Field(min_length=1)]] | None
    zero_shot_score: Literal["mean", "sum"]
    zero_shot_chat_template: bool

    @field_validator("zero_shot_prompt")
    @classmethod
    def _has_text(cls, prompt: str) -> str:
        if "{text}" not in prompt:
            raise ValueError("must contain {text}, where the article goes")
        return prompt


class Inference(_Group):
    """How the baseline and evaluate stages, and `llmclf predict`, run a model over texts."""
    batch_size: PosInt
    max_batch_tokens: NonNegInt
    dense: bool


class Evaluate(_Group):
    splits: list[Literal["test", "val", "official_test"]] = Field(min_length=1)
    temperature_scaling: bool
    members: list[Annotated[str, Field(min_length=1)]]

    _distinct = field_validator("members")(lambda cls, folders: _each_once(folders, "member"))


class Params(_Group):
    base: Base
    data: Data
    sample: Sample
    model: Model
    quant: Quant
    lora: Lora
    inference: Inference
    baseline: Baseline
    train: Train
    evaluate: Evaluate

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


def defaults() -> Params:
    """The project's params.yaml: the values of what a command is not told (`llmclf predict`'s inference
    settings for an adapter the evaluate stage has not scored)."""
    return load(DEFAULTS)


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
