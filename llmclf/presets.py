"""Apply named presets (presets/<name>.yaml, nested like params.yaml) onto params.yaml.

    python -m llmclf.presets local cpu

Comments and order in params.yaml are kept (ruamel round-trip, as `dvc exp run -S` does); the
result is validated before it replaces the file, so a bad preset changes nothing."""
from __future__ import annotations

import io
import sys
from pathlib import Path

from . import params
from .atomic import write_text
from .errors import UserError

PRESETS = Path("presets")


def merge(into: dict, update: dict, where: str = "") -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value, f"{where}{key}.")
        else:
            into[key] = value


def override(doc: dict, item: str) -> None:
    """Set one `group.key=value` (value read as YAML, as `dvc exp run -S` does) in a params mapping."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise UserError(f"override {item!r}: expected group.key=value")
    *groups, last = key.split(".")
    node = doc
    for g in groups:
        node = node.setdefault(g, {})
    node[last] = params.read_yaml_text(f"v: {value}", f"override {item!r}")["v"]


def _preset(name: str, root: Path = Path(".")) -> Path:
    path = root / PRESETS / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (root / PRESETS).glob("*.yaml"))
        raise UserError(f"no preset {name!r} ({path}); presets: {', '.join(known)}")
    return path


def compose(names: list[str], overrides: list[str] = (), root: Path = Path(".")) -> dict:
    """root's params.yaml + presets + `group.key=value` overrides, validated, as a plain dict (PyYAML
    only: comments are not kept; for tools, and for machines without ruamel)."""
    raw = params.read_yaml(root / params.PARAMS_FILE)
    for name in names:
        merge(raw, params.read_yaml(_preset(name, root)))
    for item in overrides:
        override(raw, item)
    params.parse(raw, f"{root / params.PARAMS_FILE} + presets {names} + {list(overrides)}")
    return raw


def apply(names: list[str], target: Path = params.PARAMS_FILE, overrides: list[str] = ()) -> list[str]:
    from ruamel.yaml import YAML  # here, not at the top: merge() is also used where only PyYAML is

    yaml = YAML()
    yaml.representer.add_representer(  # keep `null` spelled out, as the file has it
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    doc = yaml.load(target.read_text(encoding="utf-8"))
    for name in names:
        merge(doc, params.read_yaml(_preset(name)))
    for item in overrides:
        override(doc, item)
    out = io.StringIO()
    yaml.dump(doc, out)
    params.parse(params.read_yaml_text(out.getvalue()), f"{target} + presets {names} + {list(overrides)}")
    write_text(out.getvalue(), target)
    return names


if __name__ == "__main__":
    applied = apply(sys.argv[1:])
    print(f"params.yaml: applied presets {', '.join(applied) or '(none)'}")
