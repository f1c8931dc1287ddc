"""llmclf.core.params.load (typed, strict params.yaml) and llmclf.cli.presets.apply (presets merged into it)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from llmclf.cli import presets
from llmclf.core import params
from llmclf.core.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "params.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def over_repo(text: str, origin: str = "params.yaml") -> params.Params:
    """The repo's params.yaml with the keys of `text` (YAML, nested as params.yaml) set, parsed as `origin`."""
    raw = params.read_yaml(REPO / "params.yaml")
    presets.merge(raw, params.read_yaml_text(text))
    return params.parse(raw, origin)


def set_key(text: str, key: str, value: str) -> str:
    """Set the first `key:` line of a params.yaml text to `value`, keeping its trailing comment."""
    new, n = re.subn(rf"^(\s+{re.escape(key)}:)[ \t]*[^#\n]*?(\s*(#.*)?)$", rf"\g<1> {value}\g<2>", text,
                     count=1, flags=re.M)
    assert n == 1, f"no `{key}:` line in params.yaml"
    return new


# ---------------------------------------------------------------- the repo's file


def test_repo_params_yaml_loads_with_typed_values():
    path = REPO / "params.yaml"
    p = params.load(path)
    assert isinstance(p, params.Params)
    # whatever the file currently says for train.lr, it is read as a float of that value
    written = re.search(r"^\s+lr:\s*([^\s#]+)", path.read_text(encoding="utf-8"), re.M).group(1)
    assert isinstance(p.train.lr, float)
    assert p.train.lr == float(written)
    assert p.data.classes == ["World", "Sports", "Business", "Sci/Tech"]
    assert isinstance(p.sample.train_per_class, int) and p.sample.train_per_class > 0


def test_repo_params_yaml_with_lr_1e_4_reads_a_float(tmp_path):
    # the scaffold's `train.lr: 1e-4`: PyYAML (YAML 1.1) alone reads a string, DVC (YAML 1.2) a float
    text = set_key((REPO / "params.yaml").read_text(encoding="utf-8"), "lr", "1e-4")
    path = write(tmp_path, text)
    assert yaml.safe_load(text)["train"]["lr"] == "1e-4"
    p = params.load(path)
    assert type(p.train.lr) is float
    assert p.train.lr == 1e-4


@pytest.mark.parametrize("spelled, value", [
    ("1e-4", 1e-4), ("1E-4", 1e-4), ("1.0e-4", 1e-4), ("+1e-4", 1e-4), (".5e-3", 5e-4), ("2e+1", 20.0),
    ("3e2", 300.0), ("0.0004", 4e-4),
])
def test_exponent_floats_resolve_as_yaml_1_2(tmp_path, spelled, value):
    p = params.load(write(tmp_path, set_key((REPO / "params.yaml").read_text(encoding="utf-8"), "lr", spelled)))
    assert type(p.train.lr) is float
    assert p.train.lr == value


def test_a_missing_key_or_group_is_an_error_naming_it(tmp_path):
    """The schema holds no defaults: a params.yaml without a key does not run on a value it does not show."""
    text = (REPO / "params.yaml").read_text(encoding="utf-8")
    without = re.sub(r"(?m)^  optimizer:.*\n", "", text)
    without = re.sub(r"(?m)^quant:\n(  .*\n)+", "", without)
    path = write(tmp_path, without)
    with pytest.raises(params.ParamsError) as e:
        params.load(path)
    assert str(e.value) == f"{path}: invalid params\n  quant: Field required\n  train.optimizer: Field required"


def schema_keys() -> set[str]:
    return {f"{group}.{key}" for group, field in params.Params.model_fields.items()
            for key in field.annotation.model_fields}


def test_params_yaml_and_the_schema_list_the_same_keys_and_only_params_yaml_has_values():
    """Every key the schema types is in params.yaml and params.yaml has no other (so `dvc exp show` shows
    each and `dvc exp run -S key=value` sets each without Hydra's `+`), and the schema holds no default."""
    raw = params.read_yaml(REPO / "params.yaml")
    in_yaml = {f"{group}.{key}" for group, keys in raw.items() for key in keys}
    assert sorted(schema_keys() - in_yaml) == [] and sorted(in_yaml - schema_keys()) == []
    defaulted = [f"{group}.{key}" for group, field in params.Params.model_fields.items()
                 for key, f in field.annotation.model_fields.items() if not f.is_required()]
    assert [g for g, f in params.Params.model_fields.items() if not f.is_required()] == [] and defaulted == []
    assert params.defaults() == params.load(REPO / "params.yaml")


def test_every_key_of_params_yaml_says_what_it_does():
    """A comment on the key's line, or a comment line right above it."""
    lines = (REPO / "params.yaml").read_text(encoding="utf-8").splitlines()
    bare = [line.split(":")[0].strip() for above, line in zip(["", *lines], lines)
            if re.match(r"^  \w+:", line) and not re.search(r"\s#\s", line) and not above.lstrip().startswith("#")]
    assert bare == []


# ---------------------------------------------------------------- bad files

BAD = [
    # id, file text, dotted key the message must name, extra text the message must contain
    ("unknown-key", "train:\n  lrr: 0.0001\n", "train.lrr", "unknown key"),
    ("unknown-group", "trian:\n  lr: 0.0001\n", "trian", "unknown key"),
    ("group-not-mapping", "train: 5\n", "train", "(got 5)"),
    ("batch-size-string", 'train:\n  batch_size: "8"\n', "train.batch_size", "'8'"),
    ("batch-size-float", "train:\n  batch_size: 8.5\n", "train.batch_size", "8.5"),
    ("bool-string", 'train:\n  gradient_checkpointing: "yes"\n', "train.gradient_checkpointing", "'yes'"),
    ("negative-count", "sample:\n  train_per_class: -1\n", "sample.train_per_class", "-1"),
    ("zero-count", "sample:\n  train_per_class: 0\n", "sample.train_per_class", "greater than 0"),
    ("zero-val-count", "sample:\n  val_per_class: 0\n", "sample.val_per_class", "greater than 0"),
    ("quoted-lr", 'train:\n  lr: "1e-4"\n', "train.lr", "'1e-4'"),
    ("negative-lr", "train:\n  lr: -1e-4\n", "train.lr", "greater than 0"),
    ("lora-r-zero", "lora:\n  r: 0\n", "lora.r", "greater than 0"),
    ("quant-mode", "quant:\n  mode: int4\n", "quant.mode", "'int4'"),
    ("max-length-zero", "model:\n  max_length: 0\n", "model.max_length", "greater than 0"),
    ("fraction-over-1", "sample:\n  train_fraction: 1.5\n", "sample.train_fraction", "1.5"),
    ("sample-mode", "sample:\n  mode: random\n", "sample.mode", "'random'"),
    ("negative-seed", "base:\n  seed: -3\n", "base.seed", "-3"),
    ("one-class", "data:\n  classes: [only]\n", "data.classes", "['only']"),
    ("evaluate-split", "evaluate:\n  splits: [train]\n", "evaluate.splits.0", "'train'"),
    ("prompt-without-text", "baseline:\n  zero_shot_prompt: 'Topic of {classes}?'\n", "baseline.zero_shot_prompt",
     "must contain {text}"),
    ("zero-shot-score", "baseline:\n  zero_shot_score: max\n", "baseline.zero_shot_score", "'max'"),
    ("temperature-scaling-string", 'evaluate:\n  temperature_scaling: "no"\n', "evaluate.temperature_scaling", "'no'"),
    # inf and NaN: each would train or score without a word and give NaN weights or metrics
    ("lr-inf", "train:\n  lr: .inf\n", "train.lr", "finite number"),
    ("lr-nan", "train:\n  lr: .nan\n", "train.lr", "finite number"),
    ("epochs-inf", "train:\n  epochs: .inf\n", "train.epochs", "finite number"),
    ("weight-decay-minus-inf", "train:\n  weight_decay: -.inf\n", "train.weight_decay", "finite number"),
    ("class-weight-nan", "train:\n  class_weights: [1, .nan, 1, 1]\n", "train.class_weights.1", "finite number"),
    ("duplicate-class", "data:\n  classes: [a, b, a]\n", "data.classes", "['a'] appear more than once"),
    ("empty-class-name", "data:\n  classes: [a, '']\n", "data.classes.1", "at least 1 character"),
    ("class-weights-length", "train:\n  class_weights: [1.0, 2.0, 3.0]\n", "train.class_weights",
     "3 values for the 4 data.classes"),
    ("zero-shot-labels-length", "baseline:\n  zero_shot_labels: [a, b]\n", "baseline.zero_shot_labels",
     "2 values for the 4 data.classes"),
]


@pytest.mark.parametrize("text, key, detail", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_value_names_file_and_key(tmp_path, text, key, detail):
    path = str(tmp_path / "params.yaml")
    with pytest.raises(params.ParamsError) as e:
        over_repo(text, path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: invalid params")
    rest = msg.replace(path, "")
    assert re.search(rf"(?m)^\s+{re.escape(key)}: ", rest), msg
    assert detail in rest, msg
    assert isinstance(e.value, UserError)


@pytest.mark.parametrize("text", [
    "train:\n  lr: 0.0001\n  batch_size: 8\n  gradient_checkpointing: true\n",
    "sample:\n  train_per_class: 1\n",
    "lora:\n  r: 1\n",
    "quant:\n  mode: none\n",
    "model:\n  max_length: 1\n",
    "baseline:\n  zero_shot_prompt: '{text}'\n  zero_shot_score: sum\n",
])
def test_good_neighbours_of_the_bad_values_load(text):
    # the controls for the cases above: the same keys with valid values are accepted
    assert isinstance(over_repo(text), params.Params)


def test_every_bad_key_is_listed():
    with pytest.raises(params.ParamsError) as e:
        over_repo("train:\n  lrr: 1\n  batch_size: '8'\nlora:\n  r: 0\n", "x")
    keys = re.findall(r"(?m)^\s+(\S+): ", str(e.value).removeprefix("x"))
    assert sorted(keys) == ["lora.r", "train.batch_size", "train.lrr"]


@pytest.mark.parametrize("text, detail", [
    ("train:\n  lr: [1e-4\n", "not valid YAML"),
    ("train:\n\tlr: 1\n", "not valid YAML"),
    ("- base\n- train\n", "expected a mapping of groups, got list"),
    ("just a string\n", "expected a mapping of groups, got str"),
], ids=["unclosed-list", "tab-indent", "top-level-list", "top-level-scalar"])
def test_unreadable_file_names_the_file(tmp_path, text, detail):
    path = write(tmp_path, text)
    with pytest.raises(params.ParamsError) as e:
        params.load(path)
    assert str(e.value).startswith(f"{path}: {detail}")


def test_missing_file(tmp_path):
    path = tmp_path / "nope" / "params.yaml"
    with pytest.raises(params.ParamsError) as e:
        params.load(path)
    assert str(e.value) == f"{path}: file not found"


# ---------------------------------------------------------------- presets


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A tmp copy of params.yaml and presets/, as cwd."""
    shutil.copytree(REPO / "presets", tmp_path / "presets")
    shutil.copy2(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def comments(text: str) -> list[str]:
    return [line[line.index("#"):] for line in text.splitlines() if "#" in line]


def dot_entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_params_yaml_is_the_cpu_main_job():
    """`make repro` runs params.yaml as committed: the project's own AG News copy, the CPU-sized recipe."""
    p = params.load(REPO / "params.yaml")
    assert p.data.source == "data/ag_news" and (REPO / p.data.source / "train.csv").is_file()
    assert (p.sample.train_per_class, p.sample.val_per_class, p.sample.test_per_class) == (500, 50, 250)
    assert type(p.train.lr) is float and p.train.lr == 4e-4
    assert p.train.gradient_checkpointing is False and p.evaluate.splits == ["test"]


def test_apply_tutorial_keeps_comments(project):
    target = Path("params.yaml")
    before = target.read_text(encoding="utf-8")
    assert presets.apply(["tutorial"], target) == ["tutorial"]
    after = target.read_text(encoding="utf-8")
    assert after != before
    # every comment of the original file survives, in order
    assert comments(after) == comments(before)
    assert after.startswith("# The main job:")

    p = params.load(target)
    tutorial = params.read_yaml(Path("presets/tutorial.yaml"))
    assert (p.sample.train_per_class, p.sample.test_per_class, p.sample.val_per_class) == tuple(
        tutorial["sample"][k] for k in ("train_per_class", "test_per_class", "val_per_class")) == (2000, 500, 500)
    assert type(p.train.lr) is float and p.train.lr == 1e-4 == tutorial["train"]["lr"]
    assert p.train.gradient_checkpointing is True and p.train.group_by_length is False
    assert p.evaluate.splits == ["test", "official_test"]
    # keys the preset does not mention keep their values
    assert p.data.source == "data/ag_news" and p.lora.r == 16 and p.quant.mode == "nf4" and p.base.seed == 42
    assert p.data.revision is None
    assert re.search(r"(?m)^  revision: null\b", after)  # null stays spelled out
    assert dot_entries(project) == []


def test_apply_accurate_then_overrides(project):
    """presets/accurate.yaml (extends tutorial) is the chosen run of
    offline/plans/accuracy.yaml: the very params it ran with."""
    run = yaml.safe_load((REPO / "bench/results/accuracy/smol-4011-r64-final/params.yaml").read_text())
    run["data"]["source"] = "data/ag_news"  # the run read the same files from a folder beside the project
    # recorded before the inference group held evaluate's batch_size, max_batch_tokens and dense_inference
    moved = {"batch_size": "batch_size", "max_batch_tokens": "max_batch_tokens", "dense_inference": "dense"}
    run["inference"] = {new: run["evaluate"].pop(old) for old, new in moved.items()}
    # added since, at the values that train and score as the run did (its training seed was base.seed's 42)
    run["train"] |= {"batch_scaling": "fixed", "seed": 42, "dense_base": False, "float32_frozen": True,
                     "optimizer": "adamw_torch", "nan_inf_filter": True, "teachers": [], "distill_alpha": 0.5}
    run["evaluate"]["members"] = []
    assert presets.compose(["accurate"], root=REPO) == run
    presets.apply(["accurate"], Path("params.yaml"), ["lora.r=8", "evaluate.splits=[val]"])
    p = params.load("params.yaml")
    assert (p.sample.train_per_class, p.lora.target_modules, p.lora.alpha) == (4011, "all-linear", 128)
    assert (p.train.lr, p.train.epochs, p.train.warmup_ratio, p.train.lr_scheduler) == (3e-4, 2, 0.05, "cosine")
    assert p.train.batch_size == 32 and p.train.gradient_checkpointing is False
    assert p.lora.r == 8 and p.evaluate.splits == ["val"]  # overrides come last
    with pytest.raises(UserError, match="group.key=value"):
        presets.apply([], Path("params.yaml"), ["lora.r"])


def test_preset_as_experiment_overrides(project, monkeypatch):
    """`llmclf preset gpu --exp ...`: dvc exp run with one -S per key of the preset and what it extends."""
    calls = []
    monkeypatch.setattr(presets.subprocess, "run", lambda cmd: calls.append(cmd) or SimpleNamespace(returncode=0))
    before = Path("params.yaml").read_bytes()
    with pytest.raises(SystemExit) as e:
        presets.main(["gpu", "--exp", "-n", "gpu-run", "-S", "lora.r=32"])
    assert e.value.code == 0 and Path("params.yaml").read_bytes() == before
    cmd = calls[0]
    assert cmd[:3] == ["dvc", "exp", "run"] and cmd[-4:] == ["-n", "gpu-run", "-S", "lora.r=32"]
    sets = dict(a.split("=", 1) for a in cmd[4:-4:2])
    assert sets["sample.train_per_class"] == "2000" and sets["train.batch_size"] == "256"  # tutorial, then gpu
    assert sets["evaluate.splits"] == "[test, official_test]"
    assert sets["train.dense_base"] == "true"  # every key is in params.yaml: none needs Hydra's `+`
    raw = params.read_yaml(Path("params.yaml"))
    for key, value in sets.items():
        presets.override(raw, f"{key}={value}")  # each -S reads back as the preset's value
    assert params.parse(raw, "x").train.lr == 2e-3


def test_preset_extends_in_a_circle(project):
    (project / "presets" / "a.yaml").write_text("extends: b\n", encoding="utf-8")
    (project / "presets" / "b.yaml").write_text("extends: a\n", encoding="utf-8")
    with pytest.raises(UserError, match="circle: a -> b -> a"):
        presets.load("a")


@pytest.mark.parametrize("names", [["nope"], ["gpu", "nope"]])
def test_unknown_preset_changes_nothing(project, names):
    target = Path("params.yaml")
    before = target.read_bytes()
    with pytest.raises(UserError) as e:
        presets.apply(names, target)
    msg = str(e.value)
    assert "'nope'" in msg
    known = ", ".join(sorted(f.stem for f in Path("presets").glob("*.yaml")))
    assert "tutorial" in known and msg.endswith(f"presets: {known}")
    assert target.read_bytes() == before
    assert dot_entries(project) == []


def test_preset_with_bad_value_changes_nothing(project):
    (project / "presets" / "bad.yaml").write_text("sample:\n  train_per_class: -5\n", encoding="utf-8")
    target = Path("params.yaml")
    before = target.read_bytes()
    with pytest.raises(params.ParamsError) as e:
        presets.apply(["gpu", "bad"], target)
    msg = str(e.value)
    assert "sample.train_per_class" in msg and "-5" in msg
    assert msg.startswith("params.yaml")
    assert target.read_bytes() == before
    assert dot_entries(project) == []


def test_preset_with_unknown_key_changes_nothing(project):
    (project / "presets" / "typo.yaml").write_text("train:\n  lrr: 1e-3\n", encoding="utf-8")
    target = Path("params.yaml")
    before = target.read_bytes()
    with pytest.raises(params.ParamsError, match=r"train\.lrr: unknown key"):
        presets.apply(["typo"], target)
    assert target.read_bytes() == before


def test_mpnet_preset_is_its_plans_chosen_run():
    """presets/mpnet.yaml is offline/plans/mpnet.yaml's mpnet-3ep, the run val chose (docs/accuracy.md)."""
    plan = params.read_yaml(REPO / "offline/plans/mpnet.yaml")
    assert (presets.compose(["mpnet"], root=REPO)
            == presets.compose(plan["presets"], plan["experiments"]["mpnet-3ep"], root=REPO))


@pytest.mark.parametrize("plan", sorted(p.name for p in (REPO / "offline/plans").glob("*.yaml")))
def test_every_experiment_of_a_plan_is_valid_params(plan):
    """A typo in a plan would otherwise show on the GPU host, after the bundle has travelled."""
    raw = params.read_yaml(REPO / "offline/plans" / plan)
    assert raw["experiments"]
    for name, overrides in raw["experiments"].items():
        composed = presets.compose(raw.get("presets", []), [*raw.get("set", []), *overrides], root=REPO)
        params.parse(composed)  # raises ParamsError naming the key
