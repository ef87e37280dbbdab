"""epsilon-tag (argv) that SIGKILLs itself once the Library method KILL_IN has made its
writes, inside the transaction, before it commits."""

from __future__ import annotations

import os
import signal
import sys

from tagger import cli, library

target = getattr(library.Library, os.environ["KILL_IN"])


def dying(self: library.Library, *args: object, **kwargs: object) -> None:
    target(self, *args, **kwargs)  # its writes are made, inside the uncommitted transaction
    os.kill(os.getpid(), signal.SIGKILL)


setattr(library.Library, os.environ["KILL_IN"], dying)
sys.argv = ["epsilon-tag", *sys.argv[1:]]
cli.main()
