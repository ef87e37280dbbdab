"""Teaching by example: a person's own tags (confirm, reject) kept through rescans, moves,
model changes and exports; words that learn from them; query terms; photos like this one."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from typer.testing import CliRunner

from tagger.cli import app
from tagger.learning import LEARN_CONFIRMED, LEARN_HALF, LEARN_REJECTED, learned_vector
from tagger.library import Library
from tagger.search import Term, combine, parse_query
from tests.photo_factory import make_library
from tests.tagging import tag, tag_json


def told_error(db, *args) -> str:
    """What a command that must fail with a told error (exit 2) says."""
    from typer.testing import CliRunner

    from tagger.cli import app

    told = CliRunner().invoke(app, [*map(str, args), "--db", str(db)])
    assert told.exit_code == 2, told.output
    return told.stderr


def test_query_terms_minus_plus_and_weights():
    assert parse_query("beach -people") == [Term("beach", 1.0), Term("people", -1.0)]
    quoted = parse_query('"polar  bear" -"hot dog" 2:"teddy bear" sky,"sea')  # the TUI's box, or quotes kept
    assert quoted == [Term("polar bear"), Term("hot dog", -1.0), Term("teddy bear", 2.0), Term("sky"), Term("sea")]
    assert parse_query(["snow + dog"]) == [Term("snow"), Term("dog")]
    assert parse_query(["2:beach", "sunset"]) == [Term("beach", 2.0), Term("sunset")]
    assert parse_query(["-polar bear", "t-shirt"], ["polar bear"]) == [Term("polar bear", -1.0), Term("t-shirt")]
    assert parse_query("dog -dog") == []  # a word wanted and left out cancels


def test_combine_is_a_weighted_geometric_mean_times_what_is_left_out():
    confidence = np.array([[0.8, 0.5, 0.1], [0.4, 0.9, 0.9]], np.float32)
    found = combine(confidence, [2.0, 1.0, -1.0])
    by_hand = [(0.8**2 * 0.5) ** (1 / 3) * 0.9, (0.4**2 * 0.9) ** (1 / 3) * 0.1]
    np.testing.assert_allclose(found, by_hand, rtol=1e-5)
    np.testing.assert_allclose(combine(confidence, [-1.0]), [0.2, 0.6], rtol=1e-6)  # only a term to leave out


def test_learned_vector_is_rocchio_on_the_best_matching_rows():
    base = np.array([1.0, 0.0, 0.0])
    confirmed = np.array([[[0.0, 1.0, 0.0], [0.6, 0.8, 0.0]], [[0.8, 0.0, 0.6], [0.0, 0.0, 1.0]]])  # best rows: 1, 0
    rejected = np.array([[[0.0, 0.0, -1.0], [0.6, 0.0, -0.8]]])  # best row: 1
    mean = np.array([0.7, 0.4, 0.3]) / np.linalg.norm([0.7, 0.4, 0.3])
    away = np.array([0.6, 0.0, -0.8])
    by_hand = base + LEARN_CONFIRMED * 2 / (2 + LEARN_HALF) * mean - LEARN_REJECTED * 1 / (1 + LEARN_HALF) * away
    np.testing.assert_allclose(learned_vector(base, confirmed, rejected), by_hand / np.linalg.norm(by_hand), atol=1e-6)
    np.testing.assert_allclose(learned_vector(base * 3, confirmed[:0], rejected[:0]), base)


def test_minus_leaves_out_and_weights_reorder_photos_with_known_keywords(tmp_path):
    photos = make_library(tmp_path / "photos", 3)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "-q")
    tag(db, "tag", photos[0], photos[1], "--add", "xqdog")
    tag(db, "tag", photos[1], "--add", "xqcat")
    assert tag(db, "search", "xqdog").split() == [str(photos[0]), str(photos[1])]
    assert tag(db, "search", "xqdog -xqcat").split() == [str(photos[0])]
    assert tag(db, "search", "xqdog", "-xqcat").split() == [str(photos[0])]  # unquoted: not an option
    # A word holding n or 0 (-n, -0 are options), anywhere among the options, with a value glued on or not.
    tag(db, "tag", photos[0], "--add", "xqnone0")
    for args in (["-xqnone0", "xqdog", "-n", "5"], ["-n5", "xqdog", "-xqnone0"], ["--limit=5", "-xqnone0", "xqdog"]):
        assert tag(db, "search", *args).split() == [str(photos[1])], args
    assert tag(db, "search", "xqdog", "-n", "1").split() == [str(photos[0])]
    assert "No such option: --nope" in CliRunner().invoke(app, ["search", "xqdog", "--nope", "--db", str(db)]).output


def test_like_finds_the_same_picture_first(tmp_path):
    photos = make_library(tmp_path / "photos", 4)
    shutil.copy(photos[2], tmp_path / "photos" / "copy.jpg")
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "-q")
    found = tag_json(db, "search", "--like", photos[2])
    assert found["hits"][0]["path"] == str(tmp_path / "photos" / "copy.jpg")
    assert str(photos[2]) not in [h["path"] for h in found["hits"]] and found["hits"][0]["score"] > 0.99
    told = told_error(db, "search", "--like", photos[2], "beach")
    assert "Search by words or by --like PHOTO" in told


@pytest.fixture
def tagged(tmp_path, candidates_model):
    """Three photos, every candidate tag shown; a person added 'my bike' to the first and
    rejected the second's best tag."""
    photos = make_library(tmp_path / "photos", 3)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "-q", "--model", candidates_model)
    best = tag_json(db, "show", photos[1])["tags"][0]["word"]
    tag(db, "tag", photos[0], "--add", "my bike")
    tag(db, "tag", photos[1], "--remove", best)
    return db, photos, best


def shown(db, photo) -> list[str]:
    return [t["word"] for t in tag_json(db, "show", photo)["tags"]]


def test_own_tags_are_shown_found_and_a_rejected_tag_is_neither(tagged):
    db, photos, best = tagged
    assert tag_json(db, "show", photos[0])["own"] == ["my bike"]
    assert tag(db, "search", "my bike").split()[0] == str(photos[0])
    assert best not in shown(db, photos[1])
    assert str(photos[1]) not in tag(db, "search", best, "--min-score", "0.001").split()
    with Library(db) as library:
        confirmed, rejected = library.feedback(best)
        assert not len(confirmed) and list(rejected) == [library.photo_by_path(str(photos[1]))["id"]]


def test_own_tags_survive_a_forced_rescan_a_move_and_a_model_change(tagged, other_shape):
    db, photos, best = tagged
    tag(db, "scan", "-q", "--force")
    moved = photos[0].with_name("renamed.jpg")
    photos[0].rename(moved)
    assert tag_json(db, "scan", "-q")["moved"] == 1
    assert tag_json(db, "show", moved)["own"] == ["my bike"] and best not in shown(db, photos[1])
    tag(db, "scan", "-q", "--model", other_shape)
    assert tag_json(db, "show", moved)["own"] == ["my bike"]
    with Library(db) as library:
        assert len(library.feedback(best)[1]) == 1


def test_own_tags_go_to_sidecars_and_come_back_once(tagged):
    db, photos, _ = tagged
    tag(db, "export", "--xmp")
    ns = {"rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "dc": "http://purl.org/dc/elements/1.1/"}
    sidecar = ET.parse(str(photos[0]) + ".xmp").getroot()
    assert "my bike" in [li.text for li in sidecar.iterfind(".//dc:subject/rdf:Bag/rdf:li", ns)]
    tag(db, "scan", "-q")
    assert tag_json(db, "show", photos[0])["own"] == ["my bike"]


def test_a_persons_keyword_keeps_its_case_and_is_one_keyword_in_any_case(tagged):
    db, photos, _ = tagged
    tag(db, "tag", photos[2], "--add", "Grandma  Kowalski", "--add", "Birds")
    assert tag_json(db, "show", photos[2])["own"] == ["Grandma Kowalski", "bird"]  # a vocabulary word as it is held
    with Library(db) as library:
        assert len(library.feedback("grandma kowalski")[0]) == 1  # it teaches the word, whatever the case
    tag(db, "export", "--xmp")
    ns = {"rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "dc": "http://purl.org/dc/elements/1.1/"}
    sidecar = ET.parse(str(photos[2]) + ".xmp").getroot()
    assert "Grandma Kowalski" in [li.text for li in sidecar.iterfind(".//dc:subject/rdf:Bag/rdf:li", ns)]
    tag(db, "tag", photos[2], "--remove", "grandma kowalski")  # taken back, though written otherwise
    tag(db, "scan", "-q")  # the sidecar written by the export does not bring it back
    assert tag_json(db, "show", photos[2])["own"] == ["bird"]
    with Library(db) as library:
        assert not len(library.feedback("grandma kowalski")[0])


def test_a_confirmed_word_counts_and_lists_its_photo_whatever_the_model_shows(tagged):
    db, photos, _ = tagged
    model = [t["word"] for t in tag_json(db, "show", photos[2], "--all")["tags"]]
    word = next(w["word"] for w in tag_json(db, "vocab", "list") if w["word"] not in model)  # not a candidate there
    counted = {w["word"]: w["count"] for w in tag_json(db, "vocab", "list")}[word]
    said = tag(db, "tag", photos[2], "--add", word)
    assert f"{word}: 1 photo confirmed, 0 rejected; " in said
    assert {w["word"]: w["count"] for w in tag_json(db, "vocab", "list")}[word] == counted + 1
    with Library(db) as library:
        word_id = next(w.id for w in library.words() if w.word == word)
        ids, scores = library.word_photos(word_id)
        assert ids[0] == library.photo_by_path(str(photos[2]))["id"] and scores[0] == 1.0  # first, as search has it


def test_a_new_library_takes_back_what_a_person_confirmed_from_the_sidecars(tagged, tmp_path):
    """The library file lost (or another one made): an export kept what the person said."""
    db, photos, _ = tagged
    tag(db, "tag", photos[2], "--add", "Grandma Kowalski")
    tag(db, "export", "--xmp")
    fresh = tmp_path / "fresh.db"
    tag(fresh, "scan", photos[0].parent, "-q")
    assert tag_json(fresh, "show", photos[0])["own"] == ["my bike"]
    assert tag_json(fresh, "show", photos[2])["own"] == ["Grandma Kowalski"]
    with Library(fresh) as library:
        assert [len(library.feedback(w)[0]) for w in ("my bike", "grandma kowalski")] == [1, 1]
    assert tag(fresh, "search", "my bike").split()[0] == str(photos[0])
    # In the library that knows them, what the person takes back stays taken back.
    tag(db, "tag", photos[0], "--remove", "my bike")
    tag(db, "scan", "-q", "--force")
    assert tag_json(db, "show", photos[0])["own"] == []


def test_a_word_learns_from_its_examples_and_unlearns_in_one_command(tagged):
    db, photos, _ = tagged
    with Library(db) as library:
        learned = next(w.vector for w in library.words() if w.word == "my bike")
    tag(db, "vocab", "unlearn", "my bike")
    with Library(db) as library:
        base = next(w.vector for w in library.words() if w.word == "my bike")
        assert library.word_base("my bike") is None and len(library.feedback("my bike")[0]) == 1
    assert not np.allclose(learned, base)  # the example had moved it
    assert tag_json(db, "show", photos[0])["own"] == ["my bike"]  # the person's tag stays
    assert "there is nothing to undo" in told_error(db, "vocab", "unlearn", "my bike")


def test_one_rejection_hides_the_tag_on_its_photo_only(tmp_path, candidates_model):
    photos = make_library(tmp_path / "photos", 4)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "-q", "--model", candidates_model)
    word = tag_json(db, "show", photos[0])["tags"][0]["word"]
    showing = [p for p in photos if word in shown(db, p)]
    tag(db, "tag", photos[0], "--remove", word)
    assert word not in shown(db, photos[0])
    assert [p for p in photos if word in shown(db, p)] == [p for p in showing if p != photos[0]]


def test_examples_move_a_vocabulary_word_from_its_own_vector_and_unlearn_restores_it(tagged):
    db, photos, best = tagged
    word = "sky" if best == "water" else "water"  # a word no example has moved yet

    def state(word: str) -> tuple[np.ndarray, dict[str, int]]:
        with Library(db) as library:
            ids = {str(p): library.photo_by_path(str(p))["id"] for p in photos}
            return next(w.vector for w in library.words() if w.word == word), ids

    original, ids = state(word)
    tag(db, "tag", photos[2], "--add", word)
    tag(db, "tag", photos[1], "--add", word)  # learned again from the word's own vector, not from the moved one
    with Library(db) as library:
        stored = library.semantic_vectors(ids=[ids[str(photos[1])], ids[str(photos[2])]])
        by_hand = learned_vector(original, np.asarray(stored.semantic, np.float32), np.zeros((0, 9, 50)))
    np.testing.assert_allclose(state(word)[0], by_hand, atol=1e-6)
    tag(db, "vocab", "unlearn", word)
    np.testing.assert_allclose(state(word)[0], original, atol=1e-7)


def test_a_query_of_only_words_to_leave_out_is_refused(tmp_path):
    make_library(tmp_path / "photos", 2)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "-q")
    assert "a -word only leaves photos out" in told_error(db, "search", "-water")


def test_what_the_user_sees_around_a_search_and_a_photo(tagged):
    db, photos, _ = tagged
    from typer.testing import CliRunner

    from tagger.cli import app

    cut = CliRunner().invoke(app, ["search", "my bike", "--min-score", "0", "-n", "1", "--db", str(db)])
    assert cut.exit_code == 0 and "1 of 3 matches: -n 3 lists them all." in cut.stderr
    assert "No such file" in told_error(db, "show", photos[0].with_name("nowhere.jpg"))
    tag(db, "tag", photos[1], "--add", "water")  # a word the model may show too: listed once, as the person's
    view = tag_json(db, "show", photos[1])
    assert "water" in view["own"] and "water" not in [t["word"] for t in view["tags"]]


def test_a_word_both_added_and_removed_is_refused_and_changes_nothing(tagged):
    db, photos, _ = tagged
    before = tag_json(db, "show", photos[2])
    refused = CliRunner().invoke(app, ["tag", str(photos[2]), "-a", "Boat", "-r", "boat", "--db", str(db)])
    assert refused.exit_code == 2 and "'boat': both added and removed; say one of them." in refused.output
    assert tag_json(db, "show", photos[2]) == before
