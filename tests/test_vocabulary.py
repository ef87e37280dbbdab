"""The vocabulary: scores follow the model's rule; adding and removing words re-scores the
library from stored vectors and gives exactly what tagging from scratch would."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from tagger.vocabulary import (
    Vocabulary,
    VocabularyError,
    WordSource,
    add_words,
    remove_words,
    retag,
    scores,
    top_tags,
)
from tests.helpers import ROOT
from tests.tagging import synthetic_library, tag
from trainer.embeddings import UnknownWordError, load_embeddings
from trainer.model import score
from trainer.tagrule import TagRule

WORDS = "sky water tree dog cat boat car beach snow city mountain flower bird horse road bridge".split()


def glove(words):
    vectors = load_embeddings()
    return [(w, vectors.vector(w)) for w in words]


def tags_table(library):
    photos = [r[0] for r in library.db.execute("SELECT id FROM photos")]
    return sorted((p, w, rank, round(s, 5)) for p, tags in library.tags_of(photos).items() for w, s, rank in tags)


def test_scores_are_the_models_rule():
    rng = np.random.default_rng(0)
    semantic = rng.standard_normal((37, 8, 50)).astype(np.float16)
    vectors = rng.standard_normal((11, 50)).astype(np.float32) * 3  # not unit: both must normalise
    expected = score(torch.from_numpy(semantic.astype(np.float32)), torch.from_numpy(vectors)).numpy()
    np.testing.assert_allclose(scores(semantic, vectors), expected, rtol=1e-5, atol=1e-5)
    # By hand for one photo and one word: the best of the M rows.
    w = vectors[3] / np.linalg.norm(vectors[3])
    assert scores(semantic[:1], vectors[3:4])[0, 0] == pytest.approx(max(semantic[0].astype(np.float32) @ w), abs=1e-5)


def test_top_tags_are_the_k_best_in_order():
    rng = np.random.default_rng(1)
    semantic = rng.standard_normal((5, 4, 50)).astype(np.float32)
    vectors = rng.standard_normal((30, 50)).astype(np.float32)
    ids = np.arange(100, 130)
    vocabulary = Vocabulary(
        ids, [f"w{i}" for i in ids], vectors, np.zeros(30, np.float32), [None] * 30, [np.zeros(0)] * 30, [[]] * 30
    )
    all_scores = scores(semantic, vectors)
    # The plain rule (no calibration): the confidence is the sigmoid of the raw score, every stored tag shown.
    for row, tags in zip(all_scores, top_tags(semantic, None, vocabulary, 7)):
        best = np.argsort(-row)[:7]
        assert [t[0] for t in tags] == list(ids[best])
        assert [t[1] for t in tags] == pytest.approx(list(1 / (1 + np.exp(-row[best]))))
        assert all(t[2] for t in tags)


def test_adding_and_removing_words_equals_tagging_from_scratch(tmp_path):
    library = synthetic_library(tmp_path / "lib.db", 300, glove(WORDS[:10]), k=5)
    source = WordSource.of_library(library)
    counts = add_words(library, ["boat", "road", "polar bear"], source)
    incremental = tags_table(library)
    retag(library)
    assert tags_table(library) == incremental
    ids = {w.word: w.id for w in library.words()}
    for word, count in counts.items():
        carrying = library.db.execute("SELECT count(*) FROM tags WHERE word_id = ?", [ids[word]]).fetchone()[0]
        assert count == carrying > 0
    taken = remove_words(library, ["boat", "sky"])
    assert taken["boat"] == counts["boat"]
    after_remove = tags_table(library)
    retag(library)
    assert tags_table(library) == after_remove
    assert "boat" not in {w.word for w in library.words()}
    # Every photo still has its 5 best tags.
    assert library.db.execute("SELECT count(*) FROM tags").fetchone()[0] == 300 * 5


def test_a_tag_pushed_out_below_the_threshold_is_never_shown_and_a_retag_clears_it(tmp_path):
    from tests.tagging import assert_tags_consistent

    rule = {"strength": 0.5, "min_score": 0.1, "max_tags": 5}
    library = synthetic_library(tmp_path / "lib.db", 300, glove(WORDS[:10]), k=5, rule=rule)

    def rows_per_photo(lib):
        return dict(lib.db.execute("SELECT photo_id, count(*) FROM tags GROUP BY photo_id").fetchall())

    def shown(lib):  # what people see: each photo's kept tags, and the counts per word
        return {p: [t["word"] for t in lib.photo_tags(p)] for p in rows_per_photo(lib)}, lib.word_counts()

    counts = add_words(library, ["boat", "road", "polar bear"], WordSource.of_library(library))
    beyond = library.db.execute(
        "SELECT t.score, t.shown FROM tags t WHERE (SELECT count(*) FROM tags u WHERE u.photo_id = t.photo_id "
        "AND (u.score > t.score OR (u.score = t.score AND u.word_id < t.word_id))) >= 5"
    ).fetchall()
    # Some photos keep a pushed-out candidate, and every such row is below the threshold, not shown.
    threshold = TagRule.from_dict(rule).threshold
    assert max(rows_per_photo(library).values()) > 5 and beyond
    assert all(s < threshold and not on for s, on in beyond)
    assert all(len(library.photo_tags(p, every=True)) == 5 for p in rows_per_photo(library))
    assert_tags_consistent(library)
    incremental = shown(library)
    ids = {w.word: w.id for w in library.words()}
    assert {w: incremental[1].get(ids[w], 0) for w in counts} == counts
    retag(library)  # a re-tag writes each photo's candidates afresh: the leftovers go
    assert max(rows_per_photo(library).values()) == 5
    assert shown(library) == incremental


def test_unknown_words_change_nothing_and_name_spellings(tmp_path):
    library = synthetic_library(tmp_path / "lib.db", 20, glove(WORDS[:5]))
    before = tags_table(library), [w.word for w in library.words()]
    with pytest.raises(UnknownWordError, match=r"Did you mean: .*zeppelin"):
        add_words(library, ["boat", "zepelin"], WordSource.of_library(library))
    assert (tags_table(library), [w.word for w in library.words()]) == before
    with pytest.raises(VocabularyError, match=r"not in the vocabulary.*Did you mean: water"):
        remove_words(library, ["watr"])
    from tagger.library import Library

    with Library(tmp_path / "empty.db") as empty, pytest.raises(VocabularyError, match="scan FOLDER"):
        add_words(empty, ["boat"], WordSource())  # before any scan: nothing to score, no model


def test_vocab_commands_end_to_end(tmp_path):
    from tests.photo_factory import make_library

    make_library(tmp_path / "photos", 6)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "-q")
    listed = {row.split(None, 2)[2] for row in tag(db, "vocab", "list").splitlines()}  # words may be phrases
    assert {"water", "sky", "boat"} <= listed and "zeppelin" not in listed
    added = tag(db, "vocab", "add", "zeppelin", "Red  Panda")
    count = int(added.splitlines()[0].split(": ")[1].split()[0])
    rows = {
        r.split()[-1]: (int(r.split()[0]), r.split()[1])
        for r in tag(db, "vocab", "list", "--kind", "zero-shot").splitlines()
    }
    assert rows["zeppelin"] == (count, "zero-shot") and "red panda" in tag(db, "vocab", "list", "--sort", "name")
    assert "water" in tag(db, "vocab", "list", "--kind", "seen")  # a word the default model trained on
    assert "airship" in tag(db, "vocab", "similar", "blimp", "-n", "5")
    # GloVe's own neighbours of zeppelin are rock bands; the shipped photo words' (their
    # sentence vectors, trainer.candidates) put airship first, and no encoder is loaded.
    assert tag(db, "vocab", "similar", "Zeppelin", "-n", "3").splitlines()[0].split()[1] == "airship"
    program = (
        "import sys; from tagger import api; from tagger.library import Library\n"
        f"with Library({str(db)!r}) as library: print([w for w, _ in api.similar(library, 'teddy bear', 3)])\n"
        "print(sorted(m for m in ('torch', 'trainer.sentence') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split("\n")[:2] == ["['bear', 'stuffed toy', 'gummy bear']", "[]"]
    assert tag(db, "vocab", "add", "zepelin", code=2) == ""
    tag(db, "vocab", "remove", "zeppelin")
    assert "zeppelin" not in tag(db, "vocab", "list")
    with_vocab = tag(db, "vocab", "list")
    assert len(with_vocab.splitlines()) == len(listed) + 1  # red panda stays


def test_a_word_added_folds_siblings_as_a_retag_does(tmp_path):
    """`vocab add` decides its photos' shown tags in SQL; with a rule that shows one of
    sibling words (boat and car under vehicle) that decision must fold them exactly as
    tagging from scratch does, and the fold must have something to do."""
    from tagger.vocabulary import Vocabulary, top_tags
    from tests.tagging import assert_tags_consistent
    from trainer.tagrule import FEATURES

    words = "vehicle boat car animal dog cat horse bird".split()
    rule = {
        "weights": {f: (12.0 if f == "score" else 0.0) for f in FEATURES},
        "bias": -3.0,
        "threshold": 0.5,
        "fallback": None,
        "max_tags": 6,
        "quantile": None,
        "siblings": "one",
    }
    library = synthetic_library(tmp_path / "lib.db", 300, glove(words), k=6, rule=rule)
    assert_tags_consistent(library)
    add_words(library, ["truck", "ship", "sheep"], WordSource.of_library(library))
    assert_tags_consistent(library)
    stored = library.semantic_vectors()
    vocabulary = Vocabulary.of_library(library)
    every = TagRule.from_dict({**rule, "siblings": "all"})
    folded = top_tags(stored.semantic, None, vocabulary, 6, library.tag_rule)
    unfolded = top_tags(stored.semantic, None, vocabulary, 6, every)
    assert sum(on for tags in folded for _, _, on in tags) < sum(on for tags in unfolded for _, _, on in tags)
