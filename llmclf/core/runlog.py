"""What a stage measured about its own run: seconds, speeds, peak GPU memory. They differ from run to run
and machine to machine, so they stay out of the versioned metrics (which a rerun reproduces byte for
byte) and go to logs/<stage>.json, git-ignored, for benchmarks and for the user's eye."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .atomic import write_json

LOGS = Path("logs")


def process_seconds() -> float | None:
    """Seconds since this process started (the interpreter's start-up included), by the kernel's own
    boot-time clock: psutil's create_time adds the boot time in whole seconds, up to a second off.
    None where there is no /proc (not Linux)."""
    try:
        stat = Path("/proc/self/stat").read_text()
    except OSError:
        return None
    started = int(stat.rpartition(")")[2].split()[19])  # field 22, starttime, in clock ticks since boot
    return time.clock_gettime(time.CLOCK_BOOTTIME) - started / os.sysconf("SC_CLK_TCK")


class Phases:
    """A stage's wall time split into phases, each running from its mark to the next. The first mark ends
    `start-up`: from the process's start (the interpreter and the imports) to that mark."""

    def __init__(self):
        self.marks: list[tuple[str, float]] = []

    def __call__(self, name: str, at: float | None = None) -> None:
        """Phase `name` starts now, or at `at` (a time.perf_counter() reading not before the last mark)."""
        now = time.perf_counter()
        if not self.marks and (since := process_seconds()) is not None:
            self.marks.append(("start-up", now - since))
        self.marks.append((name, now if at is None else at))

    def seconds(self) -> dict[str, float]:
        """Each phase's seconds up to now, in the order they first started; a name marked again adds up."""
        out: dict[str, float] = {}
        ends = [at for _, at in self.marks[1:]] + [time.perf_counter()]
        for (name, start), end in zip(self.marks, ends):
            out[name] = out.get(name, 0.0) + end - start
        return {name: round(s, 2) for name, s in out.items()}


phase = Phases()  # the stage's: phase("model load") ... write_log adds the split


def write_log(stage: str, values: dict) -> None:
    values = values | ({"phases": phase.seconds()} if phase.marks else {})
    write_json(values, LOGS / f"{stage}.json")
    print(f"{stage}: {values}")


def read_log(stage: str, root: Path = Path(".")) -> dict:
    return json.loads((root / LOGS / f"{stage}.json").read_text(encoding="utf-8"))
