"""The default vocabulary's policy: no word of a sensitive class, one word per concept, the
model's labels under their everyday form; words a person adds stay theirs; a library made
before the policy follows it at its next scan."""

from __future__ import annotations

import csv
import json

import pytest

from tagger import api
from tagger.library import DEFAULT, USER, Library
from tests.photo_factory import make_library
from tests.tagging import tag, tag_json
from trainer.assets import SENSITIVE, asset_path, default_words, excluded_words, retired_words
from trainer.checkpoint import Bundle


def listed(*parts: str) -> list[str]:
    return [line for line in asset_path(*parts).read_text().splitlines() if line.strip() and not line.startswith("#")]


def open_images_names() -> list[str]:
    with open(asset_path("open_images", "class-descriptions.csv"), newline="", encoding="utf-8") as handle:
        names = {row[0]: row[1] for row in csv.reader(handle) if len(row) >= 2}
    return [names[c] for c in listed("open_images", "classes-trainable.txt") if c in names]


def test_the_policy_files_are_consistent():
    excluded = excluded_words()
    shipped = listed("vocabulary", "photo-tags.txt")
    known = set(SENSITIVE) | {"not-visible"}
    assert all(c in known or c.startswith("folded:") for c in excluded.values())
    assert not set(shipped) & set(excluded)  # a word is allowed or excluded, never both
    assert all(c.removeprefix("folded:") in shipped for c in excluded.values() if c.startswith("folded:"))
    assert len(shipped) == len(set(shipped)) and all(w == w.lower().strip() for w in shipped)
    assert sum(c in SENSITIVE for c in excluded.values()) >= 60
    assert retired_words() <= set(excluded)  # every word that left the default says why


@pytest.mark.parametrize(
    "labels",
    [
        Bundle.load(asset_path("default")).seen_labels,
        listed("nus_wide", "TagList1k.txt") + listed("nus_wide", "Concepts81.txt"),
        open_images_names(),
    ],
    ids=["default-model", "nus-wide", "open-images"],
)
def test_no_default_vocabulary_holds_a_sensitive_word(labels):
    excluded = excluded_words()
    words = default_words(labels)
    assert not [w for w in words if excluded.get(w) in SENSITIVE]
    assert "dead" not in words and "muslim" not in words and "woman" not in words
    assert excluded["dead"] == "death" and excluded["muslim"] == "religion"


def test_a_label_that_is_a_form_of_a_shipped_word_is_that_word():
    words = default_words(["boats", "birds", "clouds", "f-16", "sunset"])
    assert {"boat", "bird", "cloud", "sunset"} <= set(words)
    assert not {"boats", "birds", "clouds"} & set(words)
    assert "f-16" not in words  # excluded: not a thing a tag names on its own
    assert len(words) == len(set(words))


@pytest.mark.slow
def test_a_persons_words_stay_and_a_library_before_the_policy_follows_it(tmp_path):
    from tests.test_library import as_version_4

    photos = make_library(tmp_path / "photos", 3)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "-q")
    with Library(db) as library:
        words = {w.word: w for w in library.words()}
        assert words["boat"].kind == "seen" and words["boat"].label == "boats"  # the model's label, folded
        assert words["boat"].origin == DEFAULT and len(words["bird"].classes) == 59
    added = tag(db, "vocab", "add", "woman", "Boats", "zeppelin", "Trees")
    assert "boats: already in the vocabulary as 'boat'" in added
    with Library(db) as library:
        trees = library.word_counts([words["tree"].id]).get(words["tree"].id, 0)
    assert f"trees: already in the vocabulary as 'tree' ({api.counted(trees, 'photo')})" in added and trees > 0
    tag(db, "scan", tmp_path / "photos", "-q", "--force")  # a word a person added stays theirs, whatever it is
    with Library(db) as library:
        assert {w.word: w.origin for w in library.words() if w.origin == USER} == {"woman": USER, "zeppelin": USER}
    # An older library: schema 4, no origins, two words an earlier default held (one now
    # sensitive, one a second form of a word), and one a person added.
    with Library(db) as library:
        assert library.get_meta("vocabulary_policy") == 1
        as_version_4(library)
        library.db.execute("DELETE FROM meta WHERE key = 'vocabulary_policy'")
        library.db.execute(
            "INSERT INTO words (word, kind, vector, added_at) SELECT 'dead', kind, vector, added_at FROM words "
            "WHERE word = 'sky' UNION ALL SELECT 'trees', kind, vector, added_at FROM words WHERE word = 'tree'"
        )
        library.db.execute("PRAGMA user_version = 4")
        library.db.conn.commit()
    rescan = tag_json(db, "scan", tmp_path / "photos", "-q")
    assert rescan["updated"] == 3  # read again: its ImageNet classes were never recorded
    with Library(db) as library:
        words = {w.word: w for w in library.words()}
        assert "dead" not in words and "trees" not in words  # retired default words go
        # A word no default ever held is a person's; one that an earlier default held
        # (woman: a Corel label) cannot be told from it in a library without origins.
        assert "zeppelin" in words and "woman" not in words and "tree" in words
        assert all(w.classes is not None for w in words.values())
        assert library.db.execute("SELECT min(read_version) FROM photos").fetchone() == (1,)
    shown = json.loads(tag(db, "show", photos[0], "--json"))
    assert shown["photo"]["read_version"] == 1
