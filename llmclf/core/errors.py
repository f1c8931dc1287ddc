"""The errors a user can fix: each message names the input and the fix, and prints without a traceback."""
import errno
import os
import re
import signal
import sys
from contextlib import contextmanager

ERROR_FILE = "LLMCLF_ERROR_FILE"  # set for the workers of a multi-process run: where their message goes
_stopped = "the command; run it again"  # what an interrupt or a resource error stopped, how to resume: install()

# a full disk, a read-only file system or denied access: what the user can free or change, by errno
_FIXES = {
    errno.ENOSPC: "free space on its disk",
    errno.EDQUOT: "free space within your disk quota",
    errno.EFBIG: "raise the file-size limit (ulimit -f)",
    errno.EROFS: "remount its file system read-write, or work in a writable copy",
    errno.EACCES: "give your user access to it (ls -ld, chmod, chown), or work in a copy you own",
    errno.EPERM: "give your user access to it (ls -ld, chmod, chown), or work in a copy you own",
}
# the same errors as libraries pass them on in another exception's text: shutil.Error ("[Errno 28] ...: 'src' ->
# 'dst'"), safetensors ("... (os error 30) at path \"p\""), torch ("strerror: Read-only file system")
_WRAPPED = re.compile(r"\[Errno (?P<code>\d+)\][^'\"]*(?:'[^']*' -> )?'(?P<path>[^']*)'|"
                      r"os error (?P<os>\d+)\)(?: at path \"(?P<at>[^\"]*)\")?")
_BY_TEXT = {os.strerror(c): c for c in _FIXES}
_NAMED = re.compile("|".join(map(re.escape, _BY_TEXT)))  # the text alone, where the error says no more


class UserError(ValueError):
    """Bad params, data or model: shown as one `error:` line, exit status 2."""


class DataError(UserError):
    """Input data that cannot be used; the message names the input and the fix."""


class ModelError(UserError):
    """A base model that cannot be found or loaded; the message says what to do."""


class ResourceError(UserError):
    """A full disk, a read-only file system or denied access: the path, the cause, the fix."""

    def __init__(self, path, code: int):
        super().__init__(f"{path}: {os.strerror(code)}; {_FIXES[code]}")


def resource_error(err: BaseException, path=None, temp=None) -> ResourceError | None:
    """The ResourceError behind `err` or the exceptions it was raised from; None where there is none. It names
    the path the error names, or `path` where that is none or lies in `temp` (`path`'s temporary sibling)."""
    while err is not None:
        wrapped, named_only = _WRAPPED.search(str(err)), _NAMED.search(str(err))
        code, named = (err.errno, err.filename2 or err.filename) if isinstance(err, OSError) and err.errno else \
            (int(wrapped["code"] or wrapped["os"]), wrapped["path"] or wrapped["at"]) if wrapped else \
            (_BY_TEXT[named_only[0]], None) if named_only else (None, None)
        if code in _FIXES:
            if named is None or temp is not None and os.path.abspath(named).startswith(os.path.abspath(temp)):
                named = path
            return ResourceError(named or os.getcwd(), code)
        err = err.__cause__ or err.__context__
    return None


@contextmanager
def writing(path, temp=None):
    """Within: an error of a full disk, a read-only file system or denied access is one line naming its path,
    `path` for one in `temp` (see resource_error)."""
    try:
        yield
    except UserError:
        raise
    except Exception as e:
        found = resource_error(e, path, temp)
        if found is None:
            raise
        raise found from None


def _excepthook(kind, err, tb, _default=sys.excepthook):
    if issubclass(kind, Exception) and not issubclass(kind, UserError):  # a file no `writing` named: the error's
        err = resource_error(err) or err
    if isinstance(err, UserError):
        resource = isinstance(err, ResourceError)  # stopped midway, as an interrupt: a progress bar may be cut short
        _report(f"error: {err}" + (f" (stopped {_stopped})" if resource else ""), own_line=resource)
        sys.exit(2)
    if issubclass(kind, KeyboardInterrupt):  # Ctrl-C, or SIGTERM turned into one below
        _ignore_interrupts()
        signum = err.args[0] if err.args else signal.SIGINT
        if ERROR_FILE not in os.environ:  # a worker's interrupt: its launcher says it once
            # on a line of its own, not after the progress bar it cut short
            print(f"\nerror: interrupted ({signal.Signals(signum).name}): {_stopped}", file=sys.stderr)
        sys.exit(128 + signum)
    _default(kind, err, tb)


def _report(line: str, own_line: bool = False) -> None:
    """To stderr (`own_line`: on a line of its own, not after a progress bar); in a worker of a multi-process run,
    to the launcher's file, which shows the first one (the others fail alike, or are stopped because of it)."""
    path = os.environ.get(ERROR_FILE)
    if path is None:
        print("\n" * own_line + line, file=sys.stderr)
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


def install(stopped: str = _stopped) -> None:
    """Print a UserError, or a full disk, read-only file system or denied access, as one line, exit status 2;
    an interrupt (Ctrl-C, SIGTERM) as one line. Both say `stopped`: what stopped and how to resume it."""
    global _stopped
    _stopped = stopped
    sys.excepthook = _excepthook
    signal.signal(signal.SIGTERM, _terminate)
    # Python leaves SIGINT ignored when its launcher ignored it (a shell's background job, a detached
    # queue worker): then `dvc queue kill` or kill -INT could not stop a stage cleanly
    signal.signal(signal.SIGINT, signal.default_int_handler)
