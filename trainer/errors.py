"""The errors a user can cause, importable without torch (an app can catch them cheaply)."""


class BackboneError(RuntimeError):
    """A backbone cannot be built as asked; the message says what to pass instead."""


class BundleError(RuntimeError):
    """A bundle is missing, broken or inconsistent; the message names the file and the fix."""
