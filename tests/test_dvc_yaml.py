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


def params_read(tree: ast.AST, name: str) -> set[str]:
    """What code reads of the Params called `name`: `group.key`, or `group` where it uses a group whole
    (passes it on, dumps it); and, where it passes the Params itself to a function, what that reads."""
    from llmclf import params

    fields = {g: set(f.annotation.model_fields) for g, f in params.Params.model_fields.items()}
    keyed, reads = set(), set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and isinstance(node.value.value, ast.Name) and node.value.value.id == name
                and node.attr in fields.get(node.value.attr, ())):
            keyed.add(id(node.value))
            reads.add(f"{node.value.attr}.{node.attr}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == name \
                and id(node) not in keyed:
            reads.add(node.attr)
        if isinstance(node, (ast.DictComp, ast.ListComp, ast.SetComp, ast.GeneratorExp)):  # getattr(p, k) for k in (...)
            named = {ast.unparse(c.args[1]) for c in ast.walk(node) if isinstance(c, ast.Call)
                     and ast.unparse(c.func) == "getattr" and ast.unparse(c.args[0]) == name}
            reads |= {c.value for g in node.generators if ast.unparse(g.target) in named
                      for c in ast.walk(g.iter) if isinstance(c, ast.Constant)}
        if isinstance(node, ast.Call) and any(isinstance(a, ast.Name) and a.id == name for a in node.args):
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            # params.values(p, the keys dvc.yaml lists): the checkpoint stamp; getattr: the groups above
            if callee in ("values", "getattr"):
                continue
            position = next(i for i, a in enumerate(node.args) if isinstance(a, ast.Name) and a.id == name)
            [func] = [f for path in sorted((REPO / "llmclf").glob("*.py"))
                      for f in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                      if isinstance(f, ast.FunctionDef) and f.name == callee]
            reads |= params_read(func, func.args.args[position].arg)
    return reads


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_param_a_stage_reads_is_a_param_dvc_yaml_lists_for_it(stage):
    """A param read but not listed would change the stage's output without DVC rerunning it."""
    listed = set(STAGES[stage]["params"])
    reads = params_read(ast.parse((REPO / STAGES[stage]["cmd"].split()[-1]).read_text(encoding="utf-8")), "p")
    assert reads and sorted(r for r in reads if r not in listed and r.split(".")[0] not in listed) == []


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
