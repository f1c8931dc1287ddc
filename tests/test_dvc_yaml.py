"""dvc.yaml and the module graph against the code. Each stage's deps are its script and exactly the llmclf
modules it imports, directly or through others: a change to a module reruns the stages that run it, and only those."""
import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def imported_modules(path: Path) -> set[str]:
    """The llmclf modules a file imports anywhere in it (lazy imports included), by name."""
    found = set()
    package = path.parent.name == "llmclf"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("llmclf.")}
        elif isinstance(node, ast.ImportFrom):
            inside = node.level == 1 and package
            if node.module == "llmclf" or (inside and node.module is None):
                found |= {a.name for a in node.names}  # `from llmclf import x`: x is a module
            elif node.module and node.module.startswith("llmclf."):
                found.add(node.module.split(".")[1])
            elif inside:
                found.add(node.module.split(".")[0])
    return found


def module_closure(script: Path) -> set[str]:
    todo, seen = imported_modules(script), set()
    while todo:
        name = todo.pop()
        seen.add(name)
        todo |= imported_modules(REPO / "llmclf" / f"{name}.py") - seen
    return seen


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_are_its_script_and_the_modules_it_imports(stage):
    script = STAGES[stage]["cmd"].split()[-1]
    code_deps = {d for d in STAGES[stage]["deps"] if d.endswith(".py")}
    expected = {script} | {f"llmclf/{m}.py" for m in module_closure(REPO / script)}
    assert code_deps == expected, f"{stage}: missing {sorted(expected - code_deps)}, extra {sorted(code_deps - expected)}"


def test_train_checkpoint_stamp_covers_the_params_dvc_yaml_lists():
    from llmclf import params

    keys = params.stage_params("train", REPO / "dvc.yaml")
    assert keys == STAGES["train"]["params"]
    assert set(params.values(params.defaults(), keys)) == {k.split(".")[0] for k in keys}


def test_modules_import_one_way():
    """No llmclf module imports itself back through others: the picture in docs/architecture.md holds."""
    for path in sorted((REPO / "llmclf").glob("*.py")):
        reached = module_closure(path)
        assert path.stem not in reached, f"{path.stem} imports itself back through {sorted(reached)}"


def test_importing_llmclf_leaves_the_excepthook_alone():
    import subprocess
    import sys

    code = "import sys; hook = sys.excepthook; import llmclf.cli, llmclf.params; print(sys.excepthook is hook)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "True\n"
