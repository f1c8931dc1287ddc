"""The errors a user can fix: each message names the input and the fix, and prints without a traceback."""
import os
import signal
import sys

ERROR_FILE = "LLMCLF_ERROR_FILE"  # set for the workers of a multi-process run: where their message goes
_interrupted = "the command; run it again"  # what an interrupt stopped and how to resume, set by install()


class UserError(ValueError):
    """Bad params, data or model: shown as one `error:` line, exit status 2."""


class DataError(UserError):
    """Input data that cannot be used; the message names the input and the fix."""


class ModelError(UserError):
    """A base model that cannot be found or loaded; the message says what to do."""


def _excepthook(kind, err, tb, _default=sys.excepthook):
    if issubclass(kind, UserError):
        _report(f"error: {err}")
        sys.exit(2)
    if issubclass(kind, KeyboardInterrupt):  # Ctrl-C, or SIGTERM turned into one below
        _ignore_interrupts()
        signum = err.args[0] if err.args else signal.SIGINT
        if ERROR_FILE not in os.environ:  # a worker's interrupt: its launcher says it once
            # on a line of its own, not after the progress bar it cut short
            print(f"\nerror: interrupted ({signal.Signals(signum).name}): {_interrupted}", file=sys.stderr)
        sys.exit(128 + signum)
    _default(kind, err, tb)


def _report(line: str) -> None:
    """To stderr; in a worker of a multi-process run, to the launcher's file, which shows the first one
    (the others fail alike, or are stopped because of it)."""
    path = os.environ.get(ERROR_FILE)
    if path is None:
        print(line, file=sys.stderr)
        return
    try:
        with open(path, "x", encoding="utf-8") as f:
            f.write(line)
    except FileExistsError:
        pass


def _terminate(signum, frame):
    _ignore_interrupts()
    raise KeyboardInterrupt(signum)


def _ignore_interrupts() -> None:
    """Once interrupted, the process is on its way out: another signal while it unwinds or runs its exit
    clean-up must not raise there (a traceback from inside a finalizer)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def install(interrupted: str = _interrupted) -> None:
    """Print a UserError as one line, exit status 2; an interrupt (Ctrl-C, SIGTERM) as one line saying
    `interrupted`: what stopped and how to resume it."""
    global _interrupted
    _interrupted = interrupted
    sys.excepthook = _excepthook
    signal.signal(signal.SIGTERM, _terminate)
    # Python leaves SIGINT ignored when its launcher ignored it (a shell's background job, a detached
    # queue worker): then `dvc queue kill` or kill -INT could not stop a stage cleanly
    signal.signal(signal.SIGINT, signal.default_int_handler)
