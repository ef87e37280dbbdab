"""The errors a user can cause, importable without torch (an app can catch them cheaply).

Every one of them is a ``UserError``: the CLIs and the TUI show its message in one line
and exit 2. Anything else that escapes is a bug, shown with its traceback.
"""

import importlib
from types import ModuleType


class UserError(Exception):
    """A person can fix this: the message says what happened and what to do."""


class InputError(UserError, ValueError):
    """An option, argument or config value that cannot be used as given."""


class BackboneError(UserError, RuntimeError):
    """A backbone cannot be built as asked; the message says what to pass instead."""


class BundleError(UserError, RuntimeError):
    """A bundle is missing, broken or inconsistent; the message names the file and the fix."""


class TrainingDiverged(UserError, RuntimeError):
    """A training run's loss stopped being a finite number; the message says what to change."""


class MissingExtra(UserError, ImportError):
    """A package of an extra is not installed (the app's install leaves them out)."""


class MissingFile(UserError, FileNotFoundError):
    """A file a person named, or one a dependency ships, is not there; the message says what to give."""


def optional(module: str, purpose: str, extra: str = "train") -> ModuleType:
    """Import a package of an extra (``train``, ``minilm``), or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(
            f"{purpose} needs {module.split('.')[0]}, which epsilon-tag's app install leaves out: "
            f"pip install 'epsilon-tag[{extra}]'"
        ) from exc
