"""Child processes for the tests that need one (a kill at a chosen point, a writer beside
other processes), forked from the test's own process.

A fresh interpreter spends 5-8 CPU-seconds importing torch and timm again, which the test
process has already done: started that way, these children were a third of the suite's
time. What the tests check is what only a separate process gives (a real signal, memory of
its own, SQLite's locks between processes), so a fork serves; the installed console
scripts' own start-up is checked by the tests that run them. A fork inherits the test's
state: start the child before patching anything in the test process."""

from __future__ import annotations

import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path


def _run(program: str, argv: list[str], env: dict[str, str], out: str, err: str, start_method: str) -> None:
    # A spawned child starts its own processes (DataLoader workers) the way it was started;
    # a process of its own would start them the platform's way.
    multiprocessing.set_start_method(start_method, force=True)
    os.environ.clear()
    os.environ.update(env)
    # pytest's capture has replaced sys.stdout and sys.stderr in the test process: the
    # child writes to its own files, as a process with redirected output would.
    for fd, path, name in ((1, out, "stdout"), (2, err, "stderr")):
        handle = os.open(path, os.O_WRONLY)
        os.dup2(handle, fd)
        os.close(handle)
        setattr(sys, name, open(fd, "w", encoding="utf-8", closefd=False))  # noqa: SIM115  # for the process's life
    sys.argv = argv
    if program.endswith(".py"):
        runpy.run_path(program, run_name="__main__")
    else:
        runpy.run_module(program, run_name="__main__", alter_sys=True)


def _context() -> multiprocessing.context.BaseContext:
    import torch

    # A fork is safe while this process has never run an OpenMP team (one thread, as under
    # pytest-xdist, see conftest.py): otherwise the child would wait forever on threads it
    # does not have. Then the child is a fresh interpreter.
    return multiprocessing.get_context("fork" if torch.get_num_threads() == 1 else "spawn")


class Child:
    """``python -m PROGRAM ARGS`` (a module of tests.programs; or a script, by its path) in a
    forked process (see _context), its output captured, with the current environment plus
    ``env``."""

    def __init__(self, program: str, args, env: dict | None = None):
        self.args = [program, *map(str, args)]
        self._files = [tempfile.mkstemp(prefix="child-", suffix=f".{name}") for name in ("out", "err")]
        for handle, _ in self._files:
            os.close(handle)
        full = {**os.environ, **{k: str(v) for k, v in (env or {}).items()}}
        paths = [path for _, path in self._files]
        self._process = _context().Process(
            target=_run, args=(program, self.args, full, *paths, multiprocessing.get_start_method()), daemon=False
        )
        self._process.start()

    def wait(self, timeout: float = 300) -> subprocess.CompletedProcess:
        """Its exit status as subprocess gives it (-N for signal N), stdout and stderr."""
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
            raise subprocess.TimeoutExpired(self.args, timeout)
        out, err = (Path(path).read_text(errors="replace") for _, path in self._files)
        for _, path in self._files:
            os.unlink(path)
        return subprocess.CompletedProcess(self.args, self._process.exitcode, out, err)


def run(program: str, args, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``program`` in a forked child to its end (see Child)."""
    return Child(program, args, env).wait(timeout)
