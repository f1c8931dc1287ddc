"""dvc.yaml and the module graph against the code. Each stage's deps are its script and exactly the llmclf
modules it imports, directly or through others: a change to a module reruns the stages that run it, and only those."""
import ast
from pathlib import Path

import pytest
import yaml

from modgraph import module_closure, module_file, modules

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_are_its_script_and_the_modules_it_imports(stage):
    script = STAGES[stage]["cmd"].split()[-1]
    code_deps = {d for d in STAGES[stage]["deps"] if d.endswith(".py")}
    reached = module_closure(REPO / script)
    expected = {script} | {module_file(m).relative_to(REPO).as_posix() for m in reached}
    assert code_deps == expected, f"{stage}: missing {sorted(expected - code_deps)}, extra {sorted(code_deps - expected)}"


def params_read(tree: ast.AST, name: str) -> set[str]:
    """What code reads of the Params called `name`: `group.key`, or `group` where it uses a group whole
    (passes it on, dumps it); and, where it passes the Params itself to a function, what that reads."""
    from llmclf.core import params

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
            [func] = [f for path in sorted((REPO / "llmclf").rglob("*.py"))
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
    from llmclf.core import params

    keys = params.stage_params("train", REPO / "dvc.yaml")
    assert keys == STAGES["train"]["params"]
    assert set(params.values(params.defaults(), keys)) == {k.split(".")[0] for k in keys}


def test_modules_import_one_way():
    """No llmclf module imports itself back through others: the layers of docs/architecture.md hold."""
    for name in modules():
        reached = module_closure(module_file(name))
        assert name not in reached, f"{name} imports itself back through {sorted(reached)}"

def test_importing_llmclf_leaves_the_excepthook_alone():
    import subprocess
    import sys

    code = "import sys; hook = sys.excepthook; import llmclf.cli, llmclf.core.params; print(sys.excepthook is hook)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "True\n"
