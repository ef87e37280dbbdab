"""Word-vector stores: built once, memory-mapped, rebuilt when their source changes or they
are damaged, never half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np

from tests.helpers import ROOT
from trainer.embeddings import load_embeddings
from trainer.wordstore import SqliteIndex, file_identity, open_store

WORDS = ["red", "green", "blue", "green"]  # a repeated word: the first row wins
VECTORS = np.array([[3.0, 0, 0], [0, 2, 0], [1, 1, 0], [0, 0, 5]], np.float32)


def counting(words=WORDS, vectors=VECTORS):
    calls = []

    def build():
        calls.append(1)
        return words, vectors

    return build, calls


def test_built_once_then_mapped(tmp_path):
    build, calls = counting()
    open_store("s", "id-1", build, tmp_path)
    again, mapped = open_store("s", "id-1", build, tmp_path)
    assert len(calls) == 1 and isinstance(again, SqliteIndex) and isinstance(mapped, np.memmap)
    np.testing.assert_allclose(mapped, VECTORS / np.linalg.norm(VECTORS, axis=1, keepdims=True))
    assert [again.row(w) for w in ("red", "green", "blue", "mauve")] == [0, 1, 2, None]
    assert again.word(2) == "blue" and len(again) == 4
    assert sorted(again.spellings("g", 1, 10)) == [("green", 1), ("green", 3)]  # with their rows


def test_a_changed_source_or_a_damaged_store_is_rebuilt(tmp_path):
    build, calls = counting()
    open_store("s", "id-1", build, tmp_path)
    other, _ = counting(["red"], VECTORS[:1])
    index, vectors = open_store("s", "id-2", other, tmp_path)  # the source changed
    assert len(index) == 1 and vectors.shape == (1, 3)
    (tmp_path / "s.sqlite").write_bytes(b"not a database at all, not even close to one......")
    index, vectors = open_store("s", "id-2", build, tmp_path)
    assert len(calls) == 2 and len(index) == 4
    np.save(tmp_path / "s.npy", np.zeros((2, 3), np.float32))  # vectors that do not match the index
    index, vectors = open_store("s", "id-2", build, tmp_path)
    assert len(calls) == 3 and vectors.shape == (4, 3)


def test_a_cache_folder_that_cannot_be_made_serves_from_memory(tmp_path):
    (tmp_path / "file").write_text("x")
    build, _ = counting()
    index, vectors = open_store("s", "id", build, tmp_path / "file" / "cache")
    assert index.row("blue") == 2 and not isinstance(vectors, np.memmap)


def test_a_user_file_that_changes_is_read_again(tmp_path, monkeypatch):
    monkeypatch.setenv("EPSILON_TAG_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "mine.txt"
    source.write_text("red 1 0 0\ngreen 0 1 0\n")
    np.testing.assert_allclose(load_embeddings(source).vector("green"), [0, 1, 0])
    source.write_text("red 1 0 0\ngreen 0 0 1\nblue 0 1 0\n")
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    again = load_embeddings(source)
    np.testing.assert_allclose(again.vector("green"), [0, 0, 1])
    assert "blue" in again
    assert len(list((tmp_path / "cache" / "word-vectors").glob("file-*.npy"))) == 1


def test_a_kill_mid_build_leaves_no_half_store(tmp_path):
    build, _ = counting()
    open_store("s", "id-1", build, tmp_path)  # an older store, then a rebuild that dies
    program = [sys.executable, "-m", "tests.programs.wordstore_dies_between_renames", str(tmp_path)]
    died = subprocess.run(program, capture_output=True, text=True, cwd=ROOT)
    assert died.returncode == -signal.SIGKILL, died.stderr
    other, other_calls = counting(["a", "b"], np.eye(2, dtype=np.float32))
    index, vectors = open_store("s", "id-2", other, tmp_path)
    assert other_calls == [1] and [index.row("a"), index.row("b")] == [0, 1]  # rebuilt, not trusted
    np.testing.assert_allclose(vectors, np.eye(2))


def test_identity_names_each_file_size_and_time(tmp_path):
    a = tmp_path / "a"
    a.write_text("1")
    first = file_identity(a)
    a.write_text("12")
    assert file_identity(a) != first
