"""Running epsilon-tag in tests: in-process through typer's runner, or as the installed script."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from tagger.cli import app
from tests.helpers import entry_point


def tag(db: Path, *args, code: int = 0) -> str:
    """Run ``epsilon-tag ARGS --db DB`` in this process; returns stdout, checks the exit code."""
    result = CliRunner().invoke(app, [*map(str, args), "--db", str(db)], catch_exceptions=False)
    assert result.exit_code == code, f"exit {result.exit_code}: {result.output}"
    return result.stdout


def tag_json(db: Path, *args):
    return json.loads(tag(db, *args, "--json"))


def run_script(*args, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """The installed ``epsilon-tag`` console script in a child process."""
    return subprocess.run(
        [entry_point("epsilon-tag"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def copy_library(db: Path, folder: Path) -> Path:
    """A copy of a library file as ``folder/lib.db`` (SQLite's backup: consistent even mid-WAL),
    for a test that writes to a library a module's fixture scanned once."""
    import sqlite3
    from contextlib import closing

    copy = folder / "lib.db"
    with closing(sqlite3.connect(db)) as source, closing(sqlite3.connect(copy)) as target:
        source.backup(target)
    return copy


def synthetic_library(
    path: Path,
    photos: int,
    words,
    *,
    m: int = 8,
    d: int = 50,
    k: int = 10,
    seed: int = 0,
    batch: int = 5000,
    rule: dict | None = None,
    common=None,
):
    """A library of ``photos`` fake photos with random unit semantic vectors, tagged
    against ``words`` (a list of (word, unit vector)), written through the library API;
    with ``rule`` (a model's tagging section) the library's word levels are then computed
    and every photo re-tagged by it, as a scan does. ``common`` (a d-vector) is added to
    every row before normalising: a direction all photos share, as hub words exploit."""
    import numpy as np

    from tagger.library import DEFAULT, Library, NewWord, PhotoRecord
    from tagger.vocabulary import Vocabulary, top_tags

    rng = np.random.default_rng(seed)
    library = Library(path)
    library.set_meta(
        model_id="synthetic",
        semantic_shape=[m, d],
        embeddings="glove-6b-50d",
        seen_words=[],
        tags_per_photo=k,
        tag_rule=rule,
    )
    library.add_words([NewWord(w, "zero-shot", v, None, np.zeros(0, np.int16), DEFAULT) for w, v in words])
    vocabulary = Vocabulary.of_library(library)
    for start in range(0, photos, batch):
        semantic = rng.standard_normal((min(batch, photos - start), m, d)).astype(np.float32)
        if common is not None:
            semantic += np.asarray(common, dtype=np.float32)
        semantic /= np.linalg.norm(semantic, axis=-1, keepdims=True)
        semantic = semantic.astype(np.float16)
        tags = top_tags(semantic, None, vocabulary, k, library.tag_rule)
        library.save_batch(
            [
                PhotoRecord(
                    f"/photos/{start + i:07d}.jpg",
                    1000 + i,
                    1,
                    f"h{start + i}",
                    4000,
                    3000,
                    {"taken_at": f"20{10 + (start + i) % 15}-06-01T12:00:00"},
                    s,
                    t,
                )
                for i, (s, t) in enumerate(zip(semantic, tags))
            ],
            [],
            "synthetic",
        )
    if rule is not None:
        from tagger.vocabulary import renormalise

        renormalise(library, force=True)
    return library


def assert_tags_consistent(library) -> None:
    """The library's invariant: every present photo's first ``tags_per_photo`` stored tags are the
    most confident words of the current vocabulary recomputed from its S and classes (with
    the stored word levels and tag rule), each shown as the rule decides, and any row after
    them is not shown."""
    import numpy as np

    from tagger.vocabulary import Vocabulary, top_tags

    stored = library.semantic_vectors()
    k = library.tags_per_photo
    expected = top_tags(stored.semantic, stored.classes, Vocabulary.of_library(library), k, library.tag_rule)
    got = library.tags_of(stored.ids)
    for photo_id, want in zip(stored.ids.tolist(), expected):
        have, beyond = got[photo_id][:k], got[photo_id][k:]
        assert not any(shown for _, _, shown in beyond), f"photo {photo_id}: {beyond} would be shown"
        assert [w for w, _, _ in have] == [w for w, _, _ in want], f"photo {photo_id}: {have} != {want}"
        np.testing.assert_allclose([s for _, s, _ in have], [s for _, s, _ in want], atol=1e-5)
        assert [bool(on) for _, _, on in have] == [on for _, _, on in want], f"photo {photo_id}: shown flags differ"
