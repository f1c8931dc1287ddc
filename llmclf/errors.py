"""The errors a user can fix: each message names the input and the fix, and prints without a traceback."""
import sys


class UserError(ValueError):
    """Bad params, data or model: shown as one `error:` line, exit status 2."""


class DataError(UserError):
    """Input data that cannot be used; the message names the input and the fix."""


class ModelError(UserError):
    """A base model that cannot be found or loaded; the message says what to do."""


def _excepthook(kind, err, tb, _default=sys.excepthook):
    if issubclass(kind, UserError):
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    _default(kind, err, tb)


def install() -> None:
    """Print an uncaught UserError as one line; entry points (stage scripts, the CLI) call it."""
    sys.excepthook = _excepthook
