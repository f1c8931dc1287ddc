"""Named presets (presets/<name>.yaml, nested like params.yaml; `extends: other` applies another
first), as an experiment or as an edit of params.yaml:

    llmclf preset gpu --exp -n gpu-run     # dvc exp run -S key=value for each key of the preset
    llmclf preset gpu --exp --queue        # queued: `dvc queue start` runs it
    llmclf preset gpu                      # edit params.yaml in place: review with git diff, commit

The edit keeps comments and order in params.yaml (ruamel round-trip, as `dvc exp run -S` does) and
is validated before it replaces the file, so a bad preset changes nothing."""
from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

import yaml

from ..core import errors, params
from ..core.atomic import write_text
from ..core.errors import UserError

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


def load(name: str, root: Path = Path("."), seen: tuple[str, ...] = ()) -> dict:
    """A preset's keys, with those of the preset it `extends` (and so on) underneath."""
    path = root / PRESETS / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (root / PRESETS).glob("*.yaml"))
        raise UserError(f"no preset {name!r} ({path}); presets: {', '.join(known)}")
    if name in seen:
        raise UserError(f"{path}: `extends` goes round in a circle: {' -> '.join([*seen, name])}")
    own = params.read_yaml(path)
    base = own.pop("extends", None)
    if base is None:
        return own
    doc = load(base, root, (*seen, name))
    merge(doc, own)
    return doc


def leaves(doc: dict, where: str = "") -> list[str]:
    """`group.key=value` for each value of a nested mapping, values in YAML flow style (`-S` syntax)."""
    out = []
    for key, value in doc.items():
        if isinstance(value, dict):
            out += leaves(value, f"{where}{key}.")
        else:
            flow = yaml.safe_dump(value, default_flow_style=True, width=1 << 16).strip()
            out.append(f"{where}{key}={flow.removesuffix('...').strip()}")
    return out


def exp_overrides(names: list[str], overrides: list[str] = ()) -> list[str]:
    """The presets' values, then `overrides`, as `dvc exp run -S` items (params.yaml lists every key: no
    Hydra `+` is needed); checked against params.py first."""
    compose(names, overrides)
    doc: dict = {}
    for name in names:
        merge(doc, load(name))
    return [*leaves(doc), *overrides]


def compose(names: list[str], overrides: list[str] = (), root: Path = Path(".")) -> dict:
    """root's params.yaml + presets + `group.key=value` overrides, validated, as a plain dict (PyYAML
    only: comments are not kept; for tools, and for machines without ruamel)."""
    raw = params.read_yaml(root / params.PARAMS_FILE)
    for name in names:
        merge(raw, load(name, root))
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
        merge(doc, load(name))
    for item in overrides:
        override(doc, item)
    out = io.StringIO()
    yaml.dump(doc, out)
    params.parse(params.read_yaml_text(out.getvalue()), f"{target} + presets {names} + {list(overrides)}")
    write_text(out.getvalue(), target)
    return names


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="llmclf preset", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="+", help=f"presets, applied in order ({PRESETS}/NAME.yaml)")
    ap.add_argument("--exp", nargs=argparse.REMAINDER, metavar="DVC_ARGS",
                    help="run `dvc exp run` with the presets as -S overrides instead of editing params.yaml; "
                         "what follows goes to dvc (-n NAME, --queue, more -S)")
    errors.install()
    args = ap.parse_args(argv)
    if args.exp is None:
        apply(args.names)
        print(f"{params.PARAMS_FILE}: applied presets {', '.join(args.names)} (git diff shows the change)")
        return
    items = exp_overrides(args.names)  # validated before dvc starts
    cmd = ["dvc", "exp", "run", *[a for item in items for a in ("-S", item)], *args.exp]
    print(" ".join(cmd), flush=True)
    sys.exit(subprocess.run(cmd).returncode)


if __name__ == "__main__":
    main()
