"""Files beside the library that make reading it fast: the S side file (every photo's
semantic vectors in one fixed-width file), the floors file (every photo's k-th best stored
tag score) and the summary (counts over the whole library).

A search scores every photo, and reading 100,000 S blobs out of SQLite row by row costs
more than the scoring. So the vectors table is also kept as one file that readers map:
a 4096-byte header (what it holds and which state of the table it is a snapshot of), the
photo ids (int64, sorted) and their S (count x rows x d_w, float16).

SQLite stays the source of truth. Every transaction that writes or deletes vectors bumps
a generation counter in the library; a side file is used only when its header names that
very generation, else it is rebuilt from SQLite into a temporary file and renamed into
place. A kill at any moment therefore leaves either a valid snapshot or a stale one that
is never read.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"epsilon-tag S\n"
HEADER = 4096
_CHUNK = 8192  # rows read from SQLite and written at a time: memory stays flat


def _layout(count: int, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Offsets of the ids and of S, and the file's size."""
    ids_at = HEADER
    s_at = ids_at + -(-count * 8 // 64) * 64  # S starts on a 64-byte boundary
    return ids_at, s_at, s_at + count * int(np.prod(shape)) * 2


def write(path: Path, generation: str, shape: tuple[int, ...], count: int, rows: Iterable[tuple[int, bytes]]) -> None:
    """Write ``count`` (photo id, S blob) rows, sorted by id, as the snapshot of ``generation``."""
    ids_at, s_at, size = _layout(count, shape)
    row_bytes = int(np.prod(shape)) * 2
    _remove_leftovers(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            header = json.dumps({"generation": generation, "count": count, "shape": list(shape)}).encode()
            handle.write(MAGIC + header + b"\n")
            handle.truncate(size)
            fd, written = handle.fileno(), 0
            batch: list[tuple[int, bytes]] = []
            iterator = iter(rows)
            while True:
                batch = [row for _, row in zip(range(_CHUNK), iterator)]
                if not batch:
                    break
                if written + len(batch) > count:
                    raise OSError("the vectors table changed while its snapshot was written")
                ids = np.fromiter((r[0] for r in batch), dtype=np.int64, count=len(batch))
                blobs = b"".join(r[1] for r in batch)
                if len(blobs) != len(batch) * row_bytes:
                    raise ValueError("a stored S does not have the library's shape")
                os.pwrite(fd, ids.tobytes(), ids_at + written * 8)
                os.pwrite(fd, blobs, s_at + written * row_bytes)
                written += len(batch)
            if written != count:
                raise OSError("the vectors table changed while its snapshot was written")
            os.fsync(fd)  # on disk before its name says it is the snapshot: a power cut cannot leave holes
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_leftovers(path: Path) -> None:
    """Half-written snapshots of writers that were killed (their process is gone); a live
    writer's file is left alone."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            pid = int(stale.name.rsplit(".", 2)[-2])
            os.kill(pid, 0)
        except ProcessLookupError:
            stale.unlink(missing_ok=True)
        except (ValueError, PermissionError, OSError):
            pass  # not ours to judge: another user's process, or a name we did not write


def _header(path: Path, magic: bytes, generation: str) -> dict | None:
    """A side file's header, if the file is one of its kind and the snapshot of ``generation``."""
    with open(path, "rb") as handle:
        head = handle.read(HEADER)
    if not head.startswith(magic):
        return None
    info = json.loads(head[len(magic) :].split(b"\n", 1)[0])
    return info if isinstance(info, dict) and info.get("generation") == generation else None


def read(path: Path, generation: str, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """(photo ids, S) memory-mapped from the side file, or None unless it is the snapshot
    of ``generation`` with this shape."""
    try:
        info = _header(path, MAGIC, generation)
        if info is None or tuple(info.get("shape", ())) != tuple(shape):
            return None
        count = int(info["count"])
        ids_at, s_at, size = _layout(count, shape)
        if path.stat().st_size != size:
            return None
        if count == 0:
            return np.zeros(0, np.int64), np.zeros((0, *shape), np.float16)
        ids = np.memmap(path, dtype=np.int64, mode="r", offset=ids_at, shape=(count,))
        semantic = np.memmap(path, dtype=np.float16, mode="r", offset=s_at, shape=(count, *shape))
        return ids, semantic
    except (OSError, ValueError, KeyError):
        return None


FLOORS_MAGIC = b"epsilon-tag floors\n"


def write_floors(path: Path, generation: str, ids: np.ndarray, floors: np.ndarray) -> None:
    """Every photo's tag floor (ids sorted, float32) as of ``generation``: what a `vocab
    add` compares a new word with, read in milliseconds instead of a second at a million
    photos. Best effort: a file that cannot be written is read from SQLite next time."""
    _remove_leftovers(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            header = json.dumps({"generation": generation, "count": len(ids)}).encode()
            handle.write((FLOORS_MAGIC + header + b"\n").ljust(HEADER, b"\0"))
            handle.write(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
            handle.write(np.ascontiguousarray(floors, dtype=np.float32).tobytes())
            handle.flush()
            os.fsync(handle.fileno())  # its data on disk before its name says it is a snapshot
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def read_floors(path: Path, generation: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(photo ids, floors) memory-mapped, or None unless the file is the snapshot of ``generation``."""
    try:
        info = _header(path, FLOORS_MAGIC, generation)
        count = int(info["count"]) if info is not None else -1
        if info is None or path.stat().st_size != HEADER + count * 12:
            return None
        if count == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        ids = np.memmap(path, dtype=np.int64, mode="r", offset=HEADER, shape=(count,))
        return ids, np.memmap(path, dtype=np.float32, mode="r", offset=HEADER + count * 8, shape=(count,))
    except (OSError, ValueError, KeyError):
        return None


def _seal(generation: str, values: dict) -> str:
    """A digest of the summary's body: a file edited by hand (or by another tool) no longer
    matches it and is computed again, instead of handing odd types to every caller."""
    # CRC-32: catches an edit, not an adversary, and hashlib would load OpenSSL (4 MiB) into `stats`.
    body = json.dumps({"generation": generation, "values": values}, sort_keys=True)
    return f"{zlib.crc32(body.encode()):08x}"


def _read_sealed(path: Path, generation: str) -> dict:
    """The summary's values for ``generation``, or {} if it is of another, unreadable or edited."""
    try:
        data = json.loads(path.read_text())
        if (
            isinstance(data, dict)
            and data.get("generation") == generation
            and isinstance(data.get("values"), dict)
            and data.get("seal") == _seal(generation, data["values"])
        ):
            return data["values"]
    except (OSError, ValueError):
        pass
    return {}


def read_summary(path: Path, generation: str, name: str) -> Any:
    """A remembered value of the summary file, or None unless it is of ``generation``."""
    return _read_sealed(path, generation).get(name)


def write_summary(path: Path, generation: str, name: str, value: Any) -> None:
    """Remember ``value`` for ``generation``, beside what is already there for it. Best
    effort: a summary that cannot be written is computed again next time."""
    # As JSON gives it back (keys as strings), so that the seal reads the same on both sides.
    values = json.loads(json.dumps({**_read_sealed(path, generation), name: value}))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        seal = _seal(generation, values)
        tmp.write_text(json.dumps({"generation": generation, "values": values, "seal": seal}))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
