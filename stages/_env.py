"""Imported first by each stage script. `dvc` may run a stage with a `python` that lacks the project's
packages (`.venv/bin/dvc exp run ...` without activating the virtual environment): then the stage runs
again under the project's .venv, or, where there is none, stops with one line that says what to do.
Then the error handler is installed: Ctrl-C while the stage imports torch and its kin is one line too."""
import os
import sys
from importlib.util import find_spec
from pathlib import Path

if find_spec("llmclf") is None or find_spec("torch") is None:
    venv = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "python"
    if venv.is_file() and Path(sys.executable).absolute() != venv:
        os.execv(venv, [str(venv), *sys.argv])
    print(f"error: {sys.executable} lacks the project's packages (llmclf, torch): activate its virtual "
          "environment (`. .venv/bin/activate`, created by `make setup`) and run the command again", file=sys.stderr)
    sys.exit(2)

from llmclf import errors  # noqa: E402

errors.install(f"the {Path(sys.argv[0]).stem} stage while it started; its earlier outputs are unchanged, "
               "`dvc repro` runs it again")
