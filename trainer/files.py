"""Small file helpers shared by the bundle and backbone loaders."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks so large weights never sit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def as_umask_allows(path: str | Path) -> None:
    """Give a file the mode a new file gets here (0644 under umask 022): safetensors writes
    its files 0600, and a bundle is for other users too (a shared model, a shipped one)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
