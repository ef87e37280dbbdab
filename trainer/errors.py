"""The errors a user can cause, importable without torch (an app can catch them cheaply)."""


class BackboneError(RuntimeError):
    """A backbone cannot be built as asked; the message says what to pass instead."""


class BundleError(RuntimeError):
    """A bundle is missing, broken or inconsistent; the message names the file and the fix."""


class MissingExtra(ImportError):
    """A training-only package is not installed (the app's install leaves them out)."""


def optional(module: str, purpose: str):
    """Import a package of the ``train`` extra, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(
            f"{purpose} needs {module.split('.')[0]}, which epsilon-tag's app install leaves out: "
            f"pip install 'epsilon-tag[train]'"
        ) from exc
