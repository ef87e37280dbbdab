"""epsilon-tag: the photo tagging app (scan, search, vocabulary, TUI) over trainer's model."""

import os

# The tagger spreads its own scoring over the cores (tagger.vocabulary.scores: a thread per
# chunk of photos). OpenBLAS threads inside those threads fight over 2 cores: scoring a
# million photos for one word took 0.6 s with one BLAS thread, 0.9 to 2.4 s (by chunk size)
# with OpenBLAS's own. Set before NumPy loads it; a user's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def __getattr__(name: str) -> str:
    # The version is read from the installed metadata only when asked for: importlib.metadata
    # costs 50 ms, which every `search` would otherwise pay.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("epsilon-tag")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0.0.0+source"
    raise AttributeError(name)
