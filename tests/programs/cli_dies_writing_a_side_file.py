"""epsilon-tag (argv) that SIGKILLs itself at the KILL_AT-th write of a side file."""

from __future__ import annotations

import os
import signal
import sys

from tagger import cli, sidefile

calls, original = [0], os.pwrite


def pwrite(fd: int, data: bytes, offset: int) -> int:
    calls[0] += os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp")  # the side file's writes only
    if calls[0] == int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return original(fd, data, offset)


sidefile.os.pwrite = pwrite  # type: ignore[assignment]
sys.argv = ["epsilon-tag", *sys.argv[1:]]
cli.main()
