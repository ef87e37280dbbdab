"""Opening a photo in the system's own viewer, and saying what went wrong when it cannot:
the viewer program is missing (a server, a container, a minimal desktop without xdg-utils)
or the photo itself is gone. Both surface as the same "[Errno 2] No such file" from the OS,
and only one of them is about the photo."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys

# What to install where the viewer program is missing, by program.
INSTALL = {"xdg-open": "install xdg-utils"}


class NoViewer(FileNotFoundError):
    """The program that opens files in their viewer is not installed; ``filename`` names it."""


def viewer_command(path: str) -> list[str]:
    """The command that opens ``path`` in its viewer (macOS open, xdg-open elsewhere)."""
    return ["open", path] if sys.platform == "darwin" else ["xdg-open", path]


def open_in_viewer(path: str) -> None:
    """The system's own viewer for a file (macOS open, Windows start, xdg-open elsewhere).

    Raises NoViewer when the viewer program is not installed, OSError when it cannot start."""
    if sys.platform.startswith("win"):
        os.startfile(path)  # type: ignore[attr-defined]
        return
    command = viewer_command(path)
    # Looked up first: Popen's own error for a missing program reads like a missing photo.
    if shutil.which(command[0]) is None:
        raise NoViewer(errno.ENOENT, "not installed", command[0])
    subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def photo_gone(path: str) -> str:
    return f"{path} is not there now: moved, deleted, or on a disk that is not mounted (r rescans the library)"


def cannot_open(path: str, exc: OSError) -> str:
    """Why ``path`` did not open, from the error the opener raised: the photo gone, the viewer
    program missing (named), or the OS's own reason."""
    if not os.path.exists(path):
        return photo_gone(path)
    program = os.fsdecode(exc.filename) if isinstance(exc, FileNotFoundError) and exc.filename else None
    if program is not None and program != path:  # a file is missing, and it is not the photo: the program
        hint = INSTALL.get(os.path.basename(program), f"install {program}")
        return f"No program to open photos with: {program} is not installed ({hint}, or open {path} yourself)"
    return f"Cannot open {path}: {exc.strerror or exc}"
