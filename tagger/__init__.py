"""epsilon-tag: the photo tagging app (scan, search, vocabulary, TUI) over trainer's model."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("epsilon-tag")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
