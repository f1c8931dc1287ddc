"""What a stage measured about its own run: seconds, speeds, peak GPU memory. They differ from run to run
and machine to machine, so they stay out of the versioned metrics (which a rerun reproduces byte for
byte) and go to logs/<stage>.json, git-ignored, for benchmarks and for the user's eye."""
from __future__ import annotations

import json
from pathlib import Path

from .atomic import write_json

LOGS = Path("logs")


def write_log(stage: str, values: dict) -> None:
    write_json(values, LOGS / f"{stage}.json")
    print(f"{stage}: {values}")


def read_log(stage: str, root: Path = Path(".")) -> dict:
    return json.loads((root / LOGS / f"{stage}.json").read_text(encoding="utf-8"))
