"""docs/architecture.md against the code: every module sits in a package of its layer table; imports point
one way (a module imports its own package and earlier layers only, lazy imports included); the table's
`imports from` column and the layout tree are what the code has; importing llmclf, a package or any
module changes no global state; and the stage scripts claim their GPUs before torch loads."""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys

from conftest import REPO
from modgraph import PACKAGE, imported_modules, module_file, modules, package_of

DOC = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")


def layer_table() -> dict[str, tuple[int, set[str]]]:
    """The doc's layers: package -> (its layer, the packages it imports from)."""
    rows = re.findall(r"^\| (\d+) \| `(\w+)/` \|[^|\n]*\| ([^|\n]*) \|$", DOC, re.M)
    assert rows, "docs/architecture.md: no layer table (| layer | package | serves | imports from |)"
    return {package: (int(layer), set(re.findall(r"`(\w+)/`", imports))) for layer, package, imports in rows}


def package_imports() -> dict[str, set[str]]:
    """Each package and the other packages its modules import."""
    found: dict[str, set[str]] = {}
    for name in modules():
        if name == "llmclf":
            continue
        mine = package_of(name)
        found.setdefault(mine, set()).update(
            package_of(t) for t in imported_modules(module_file(name)) if package_of(t) != mine)
    return found


def test_every_module_is_in_a_package_of_the_layer_table():
    layers = layer_table()
    assert [name for name in modules() if name != "llmclf" and package_of(name) not in layers] == []


def test_no_module_imports_a_later_layer():
    layers = layer_table()
    later = []
    for name in modules():
        if name == "llmclf":
            continue
        mine = package_of(name)
        for target in sorted(imported_modules(module_file(name))):
            theirs = package_of(target)
            if theirs != mine and layers.get(theirs, (99,))[0] >= layers.get(mine, (-1,))[0]:
                later.append(f"{name} imports {target}")
    assert later == []


def test_the_layer_table_names_what_each_package_imports():
    assert package_imports() == {package: imports for package, (_, imports) in layer_table().items()}


def tree_files() -> set[str]:
    """The files the doc's layout tree lists, relative to llmclf/."""
    block = DOC.split("\n## Layout", 1)[1].split("```", 2)[1]
    files, folders = set(), {}
    for line in block.splitlines():
        m = re.match(r"^( *)(\S+)", line)
        if not m or m.group(2) == "llmclf/":
            continue
        depth = len(m.group(1)) // 2
        if m.group(2).endswith("/"):
            folders[depth] = m.group(2)
        else:
            files.add("".join(folders[d] for d in range(1, depth)) + m.group(2))
    return files


def docstring_only(path) -> bool:
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def test_the_layout_tree_lists_every_module():
    """Every module is in the tree, and nothing else; a package's __init__.py only where it holds code."""
    on_disk = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if not docstring_only(p)}
    assert tree_files() == on_disk


STATE = r"""
import hashlib, importlib, json, logging, os, random, signal, sys, warnings

import numpy
import torch


def state():
    loggers = {n: l for n, l in logging.Logger.manager.loggerDict.items() if isinstance(l, logging.Logger)}
    loggers["<root>"] = logging.getLogger()
    return {
        "warnings filters": [repr(f) for f in warnings.filters],
        "loggers": {n: [l.level, l.disabled, l.propagate, [repr(f) for f in l.filters], [repr(h) for h in l.handlers]]
                    for n, l in loggers.items()},
        "environment": dict(os.environ),
        "sys.excepthook": repr(sys.excepthook),
        "signal handlers": [repr(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)],
        "sys.path": list(sys.path),
        "working directory": os.getcwd(),
        "torch settings": [torch.get_num_threads(), str(torch.get_default_dtype()),
                           torch.get_float32_matmul_precision(), torch.is_grad_enabled(),
                           torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
                           torch.backends.cuda.matmul.allow_tf32],
        "numpy settings": [repr(numpy.geterr()), repr(numpy.get_printoptions())],
        "random states": [hashlib.sha256(repr(random.getstate()).encode()).hexdigest(),
                          hashlib.sha256(numpy.random.get_state()[1].tobytes()).hexdigest(),
                          hashlib.sha256(torch.random.get_rng_state().numpy().tobytes()).hexdigest()],
    }


def changes(before, after):
    found = []
    for key in before:
        if key == "loggers":
            for name, value in after[key].items():
                if before[key].get(name, [0, False, True, [], []]) != value:
                    found.append(f"logger {name or 'root'!r}: {before[key].get(name)} -> {value}")
        elif before[key] != after[key]:
            found.append(key)
    return found


PRELOAD, NAMES = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for statement in PRELOAD:  # the libraries' own effects on import are theirs, not the package's
    exec(statement, {})
report = {}
for name in NAMES:
    before = state()
    importlib.import_module(name)
    if found := changes(before, state()):
        report[name] = found
print(json.dumps(report))
"""


def preload() -> list[str]:
    """The package's module-level imports of other libraries, as statements."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                out += [f"import {a.name}" for a in node.names if a.name.split(".")[0] != "llmclf"]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                if node.module.split(".")[0] not in ("llmclf", "__future__"):
                    out.append(ast.unparse(node))
    return sorted(set(out))


def test_importing_llmclf_changes_no_global_state():
    """No warnings filter, logger setting, environment variable, signal handler, excepthook, torch or numpy
    setting or random state changes on importing llmclf, any package or any module: entry points set
    what a process needs (docs/architecture.md)."""
    names = ["llmclf", *sorted((m for m in modules() if m != "llmclf" and not m.endswith("__main__")),
                               key=lambda m: (m.count("."), m))]
    done = subprocess.run([sys.executable, "-c", STATE, json.dumps(preload()), json.dumps(names)], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {}


def test_core_imports_no_torch():
    """stages/_env.py claims GPUs through core before torch loads: CUDA reads CUDA_VISIBLE_DEVICES once."""
    code = ("import sys\nfrom llmclf.core import errors, gpus, params, stagelock\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_model_stage_claims_its_gpus_before_torch_loads(tmp_path):
    """A stage that runs a model imports _env first, which claims its GPUs, then lets torch load."""
    code = ("import sys\nsys.argv = ['stages/evaluate.py']\nsys.path.insert(0, 'stages')\n"
            "from llmclf.core import gpus\n"
            "claim, gpus.gpu_count = gpus.claim, lambda: 2\n"
            "gpus.claim = lambda n=1: print('torch' in sys.modules, flush=True) or claim(n)\n"
            "import _env, os\n"
            "print(os.environ['CUDA_VISIBLE_DEVICES'], 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "LOCAL_RANK")}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env | {"LLMCLF_GPU_LOCKS": str(tmp_path)},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["False", "0", "True"]


def test_stage_scripts_import_in_order():
    """No stage needs an import after other code: `# noqa: E402` nowhere in stages/ but _env.py, whose job
    is to check the interpreter before anything of the project is imported."""
    assert [p.name for p in sorted((REPO / "stages").glob("*.py"))
            if "E402" in p.read_text(encoding="utf-8") and p.name != "_env.py"] == []
