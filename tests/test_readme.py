"""README.md is the front door: short, its links resolve, and the main job's timing is its committed run's."""
from __future__ import annotations

import json
import re

from conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def load(path: str) -> dict:
    return json.loads((REPO / path).read_text(encoding="utf-8"))


def test_readme_is_short_and_its_links_resolve():
    assert len(README.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    assert links
    assert [link for link in links if not link.startswith("http") and not (REPO / link).exists()] == []


def test_the_main_job_reproduced_the_committed_run():
    """The Results section's timing and "byte for byte" (its tables: bench/tables.py, tests/test_results.py)."""
    job = load("bench/results/main-job-cpu.json")
    assert job["git_status"] == "" and job["metrics_diff"].strip() == ""  # reproduced, byte for byte
    assert f"{job['wall_seconds'] / 60:.0f} min" in README and job["commit"]
