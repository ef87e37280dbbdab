"""epsilon-tag (argv) that, at the start of its 3rd batch commit, SIGKILLs itself (a crash)
or raises SIGINT (Ctrl-C): DIE_WITH names the signal."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

from tagger import cli, library

# Ctrl-C as in a terminal, even where the test runs in the background (SIGINT ignored).
signal.signal(signal.SIGINT, signal.default_int_handler)
calls, original = [0], library.Library.save_batch


def save_batch(self: library.Library, records: Sequence, failures: Sequence, model_id: str) -> None:
    if records:
        calls[0] += 1
        if calls[0] == 3:
            os.kill(os.getpid(), getattr(signal, os.environ["DIE_WITH"]))
    original(self, records, failures, model_id)


library.Library.save_batch = save_batch  # type: ignore[method-assign]
sys.argv = ["epsilon-tag", *sys.argv[1:]]
cli.main()
