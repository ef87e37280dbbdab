"""The hubness correction and the tag rule: equal to a reference computation in the library,
stable when words come and go, the same in search as in tags, and what show/export print."""

from __future__ import annotations

import numpy as np
import pytest

from tagger.search import search
from tagger.vocabulary import REFRESH_FACTOR, WordSource, add_words, needs_refresh, remove_words, renormalise, scores
from tests.tagging import synthetic_library, tag
from tests.test_vocabulary import WORDS, glove, tags_table
from trainer.errors import InputError
from trainer.tagrule import TagRule

RULE = {"strength": 0.5, "min_score": 0.3, "max_tags": 5}
# The same with a word's 0.9 quantile over the library for its level instead of its mean
# (a higher level: lower corrected scores, so a lower threshold).
RULES = [RULE, {**RULE, "quantile": 0.9, "min_score": 0.1}]


def level(raw, quantile):
    """A word's level by hand: the mean, or the quantile by linear interpolation between
    the sorted scores (position quantile x (N - 1))."""
    if quantile is None:
        return raw.astype(np.float64).mean(axis=0)
    ordered = np.sort(raw.astype(np.float64), axis=0)
    at = quantile * (len(ordered) - 1)
    low = int(np.floor(at))
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (at - low) * (ordered[high] - ordered[low])


def reference(library):
    """Every photo's tags recomputed from its S by hand: raw cosines, minus half of each
    word's level over the library's photos, the 5 best, kept from the rule's threshold on."""
    stored = library.semantic_vectors()
    words = library.words()
    raw = scores(stored.semantic, np.stack([w.vector for w in words]))
    means = level(raw, library.tag_rule.quantile)
    corrected = raw - 0.5 * means
    tags = {}
    for photo_id, row in zip(stored.ids, corrected):
        best = np.argsort(-row, kind="stable")[:5]
        tags[int(photo_id)] = [(words[j].word, float(row[j])) for j in best]
    return {w.word: m for w, m in zip(words, means)}, tags


def stored_tags(library, every=True):
    return {
        int(pid): [(t["word"], t["score"]) for t in library.photo_tags(int(pid), every=every)]
        for pid in library.semantic_vectors().ids
    }


def assert_tags_equal(got, expected):
    assert got.keys() == expected.keys()
    for photo_id in got:
        assert [w for w, _ in got[photo_id]] == [w for w, _ in expected[photo_id]], photo_id
        np.testing.assert_allclose([s for _, s in got[photo_id]], [s for _, s in expected[photo_id]], atol=2e-6)


@pytest.mark.parametrize("rule", RULES, ids=["mean", "quantile"])
def test_stored_levels_and_tags_equal_a_reference_computation(tmp_path, rule):
    library = synthetic_library(tmp_path / "lib.db", 200, glove(WORDS), k=5, rule=rule)
    means, expected = reference(library)
    for word in library.words():
        assert word.mean == pytest.approx(means[word.word], abs=1e-6)
    assert_tags_equal(stored_tags(library), expected)
    # People see the kept ones: the threshold and above.
    kept = {pid: [(w, s) for w, s in tags if s >= rule["min_score"]] for pid, tags in expected.items()}
    assert 0 < sum(map(len, kept.values())) < sum(map(len, expected.values()))
    assert_tags_equal(stored_tags(library, every=False), kept)
    counts = library.word_counts()
    ids = {w.word: w.id for w in library.words()}
    for word in WORDS:
        assert counts.get(ids[word], 0) == sum(word in [w for w, _ in tags] for tags in kept.values())


def test_the_correction_takes_the_hub_off_every_photo(tmp_path):
    # A hub: every photo's S leans towards one direction, and a word along it ranks first
    # everywhere on raw cosines, whatever the photo shows.
    hub = np.random.default_rng(5).standard_normal(50)
    hub /= np.linalg.norm(hub)
    library = synthetic_library(tmp_path / "lib.db", 300, glove(WORDS), k=5, rule={"strength": 0.0}, common=2.5 * hub)
    add_words(library, ["hub"], WordSource(table={"hub": hub}))
    raw_top = [tags[0][0] for tags in stored_tags(library).values()]
    library.set_meta(tag_rule={"strength": 1.0})
    renormalise(library, force=True)
    corrected_top = [tags[0][0] for tags in stored_tags(library).values()]
    assert raw_top.count("hub") > 0.9 * len(raw_top)
    assert corrected_top.count("hub") < 0.25 * len(corrected_top)


@pytest.mark.parametrize("rule", RULES, ids=["mean", "quantile"])
def test_adding_then_removing_a_word_leaves_everything_as_it_was(tmp_path, rule):
    library = synthetic_library(tmp_path / "lib.db", 150, glove(WORDS[:10]), k=5, rule=rule)
    before_tags, before_means = tags_table(library), {w.word: w.mean for w in library.words()}
    assert "road" not in before_means
    counts = add_words(library, ["road", "polar bear"], WordSource.of_library(library))
    means, expected = reference(library)
    assert_tags_equal(stored_tags(library), expected)  # incremental add = from scratch
    after = {w.word: w.mean for w in library.words()}
    assert {w: after[w] for w in before_means} == before_means  # other words' means untouched
    assert after["road"] == pytest.approx(means["road"], abs=1e-6)
    assert counts["road"] == sum("road" in [w for w, s in t if s >= rule["min_score"]] for t in expected.values()) > 0
    remove_words(library, ["road", "polar bear"])
    assert tags_table(library) == before_tags


@pytest.mark.parametrize("rule", RULES, ids=["mean", "quantile"])
def test_search_scores_are_tag_scores(tmp_path, rule):
    library = synthetic_library(tmp_path / "lib.db", 120, glove(WORDS), k=5, rule=rule)
    means, expected = reference(library)
    hits = search(library, "boat", limit=None)
    by_path = {library.photos([h.photo_id])[h.photo_id]["path"]: h.score for h in hits}
    tagged = {pid: dict(tags) for pid, tags in expected.items()}
    for hit in hits:
        if "boat" in tagged[hit.photo_id]:
            assert hit.score == pytest.approx(tagged[hit.photo_id]["boat"], abs=2e-6)
    assert len(by_path) == 120
    # A word outside the vocabulary: its level is taken over the library's photos at once.
    stored = library.semantic_vectors()
    raw = scores(stored.semantic, glove(["zeppelin"])[0][1][None])
    expected_zero_shot = dict(zip(stored.ids.tolist(), raw[:, 0] - 0.5 * level(raw, rule.get("quantile"))[0]))
    for hit in search(library, "zeppelin", limit=None):
        assert hit.score == pytest.approx(expected_zero_shot[hit.photo_id], abs=2e-6)
    # Dates narrow the photos, not the level: the same photo scores the same.
    dated = {h.photo_id: h.score for h in search(library, "zeppelin", limit=None, after="2015", before="2016")}
    assert dated and all(s == pytest.approx(expected_zero_shot[p], abs=2e-6) for p, s in dated.items())


def test_means_are_refreshed_as_the_library_grows_not_every_batch():
    assert needs_refresh(32, None) and needs_refresh(32, 0)
    assert not needs_refresh(0, None)
    assert not needs_refresh(1000, 900) and needs_refresh(int(900 * REFRESH_FACTOR), 900)
    assert needs_refresh(700, 900)  # shrunk by a quarter (pruned)
    # Re-tagging at every refresh stays linear: from 32 photos to a million, about 5 N photos re-tagged in all.
    total, last, n = 0, None, 0
    while n < 1_000_000:
        n += 32
        if needs_refresh(n, last):
            total, last = total + n, n
    assert total < 5.5 * n


def test_kept_tags_rule():
    rule = TagRule(0.0, 0.5, 2)
    corrected = np.array([[0.9, 0.6, 0.55, 0.1], [0.4, 0.3, 0.2, 0.1]])
    np.testing.assert_array_equal(rule.kept(corrected), [[True, True, False, False], [False, False, False, False]])
    assert TagRule.from_dict(None) == TagRule() and TagRule.from_dict(rule.to_dict()) == rule
    np.testing.assert_allclose(
        TagRule(0.5).correct(corrected, np.array([0.2, 0.0, 0.0, 1.0])), corrected - np.array([0.1, 0.0, 0.0, 0.5])
    )


def test_a_words_level_is_its_mean_or_its_quantile():
    raw = np.array([[0.1, 0.5], [0.3, 0.5], [0.2, 0.9], [0.6, 0.1], [0.4, 0.2]], np.float32)
    np.testing.assert_allclose(TagRule(0.5).levels(raw), [0.32, 0.44], rtol=1e-6)
    # 0.9 x (5 - 1) = 3.6: 60% of the way from the 4th to the 5th sorted score.
    np.testing.assert_allclose(TagRule(0.5, quantile=0.9).levels(raw), [0.4 + 0.6 * 0.2, 0.5 + 0.6 * 0.4], rtol=1e-6)
    np.testing.assert_allclose(TagRule(0.5, quantile=0.9).levels(raw), level(raw, 0.9), rtol=1e-6)
    assert TagRule(0.5, quantile=0.9).levels(np.zeros((0, 2), np.float32)).tolist() == [0.0, 0.0]
    # A rule without a quantile (an older bundle's) means the mean; a quantile round-trips.
    assert TagRule.from_dict({"strength": 0.75, "min_score": 0.35}).quantile is None
    assert TagRule.from_dict(TagRule(0.75, 0.2, 10, 0.9).to_dict()) == TagRule(0.75, 0.2, 10, 0.9)
    with pytest.raises(InputError, match="quantile lies between 0 and 1"):
        TagRule.from_dict({"strength": 0.75, "quantile": 90})


def test_show_and_export_carry_the_kept_tags(tmp_path):
    from tagger.library import Library
    from tagger.xmp import read_keywords, sidecar_path
    from tests.photo_factory import make_library

    make_library(tmp_path / "photos", 4)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "-q")
    with Library(db) as library:
        library.set_meta(tag_rule={"strength": 0.5, "max_tags": 10})
        renormalise(library, force=True)
        photo = library.photo_by_path(str(next((tmp_path / "photos").rglob("*.jpg")).resolve()))
        every = library.photo_tags(photo["id"], every=True)
        threshold = (every[3]["score"] + every[4]["score"]) / 2  # this photo keeps its 4 best
        library.set_meta(tag_rule={"strength": 0.5, "min_score": threshold, "max_tags": 10})
    kept = [t for t in every if t["score"] >= threshold]
    assert len(kept) == 4 and len(every) == 10
    shown = tag(db, "show", photo["path"], "--json")
    import json

    assert [t["word"] for t in json.loads(shown)["tags"]] == [t["word"] for t in kept]
    assert len(json.loads(tag(db, "show", photo["path"], "--all", "--json"))["tags"]) == 10
    tag(db, "export", "--xmp")
    assert read_keywords(sidecar_path(photo["path"])) == [t["word"] for t in kept]
    tag(db, "export", "--xmp", "--top", "2", "--min-score", "-1")
    assert read_keywords(sidecar_path(photo["path"])) == [t["word"] for t in every[:2]]


def test_kept_tags_are_scored_against_annotated_cells_only():
    from trainer.calibrate import kept_prf

    kept = np.array([[True, False], [True, True]])
    labels = np.array([[1, -1], [-1, 0]])  # (1, 1) is not annotated: neither right nor wrong
    assert kept_prf(kept, labels) == pytest.approx((0.5, 1.0, 2 / 3))
    assert kept_prf(np.zeros((2, 2), bool), labels) == (0.0, 0.0, 0.0)


def test_calibration_chooses_the_weakest_correction_that_removes_a_hub():
    """Word 0 scores 0.81 on every photo and is never right; each photo's one true word
    scores 0.6, the others 0.1. Worked by hand: the word means are 0.81 and
    (0.6 + 2 x 0.1) / 3; strength 0.25 leaves the hub (0.6075) above the true words
    (0.533); strength 0.5 puts it at 0.405 under them (0.467), so the lowest threshold that
    keeps only true words is 0.41, and stronger corrections only tie."""
    from trainer.calibrate import ValidationSet, choose_rule

    n = 30
    raw = np.full((n, 4), 0.1, np.float32)
    raw[:, 0] = 0.81
    labels = -np.ones((n, 4), np.int8)
    for i in range(n):
        raw[i, 1 + i % 3], labels[i, 1 + i % 3] = 0.6, 1
    rule, per_correction, _ = choose_rule([ValidationSet("toy", raw, labels)], max_tags=3)
    assert rule == TagRule(0.5, 0.41, 3)  # a hub high everywhere: the mean prices it, ties go to the mean
    by_strength = {row["strength"]: row["f1"] for row in per_correction if row["quantile"] is None}
    assert by_strength[0.0] == pytest.approx(2 * 0.5 / 1.5) and by_strength[0.5] == 1.0 == by_strength[1.0]


def test_the_keep_threshold_is_chosen_with_the_whole_vocabulary_ranked():
    """Worked by hand (max 2 tags, no hub, so every strength ties and the weakest, 0, wins).
    "labelled": words a, b, all labelled; each photo's true word 0.6, the other 0.2.
    "sparse": one labelled word c (0.5 where true, 0.3 where not) among 3 unlabelled
    vocabulary words at 0.4 on every photo. With c alone, a threshold must drop its 0.3s:
    the lowest that keeps only right tags is 0.31. Ranked with the vocabulary, a photo
    without c keeps two vocabulary words (0.4) before c (0.3) whatever the threshold, so
    only "labelled" still needs one: above 0.2, the lowest 0.21; c (0.5) stays above it."""
    from trainer.calibrate import ValidationSet, choose_rule

    n = 8
    truth = np.arange(n) % 2 == 0
    raw = np.where(truth[:, None], [0.6, 0.2], [0.2, 0.6]).astype(np.float32)
    labels = np.where(truth[:, None], [1, -1], [-1, 1]).astype(np.int8)
    full = ValidationSet("labelled", raw, labels)
    c = np.where(truth, 0.5, 0.3).astype(np.float32)[:, None]
    sparse = ValidationSet(
        "sparse", c, np.where(truth, 1, -1).astype(np.int8)[:, None], np.full((n, 3), 0.4, np.float32)
    )
    assert (full.share, sparse.share) == (1.0, 0.25)
    rule, per_strength, kept = choose_rule([full, sparse], max_tags=2)
    assert per_strength[0]["strength"] == 0.0 and per_strength[0]["min_score"] == pytest.approx(0.31)
    assert rule == TagRule(0.0, 0.21, 2)
    assert kept["sets"]["sparse"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "kept_per_photo": 2.0}
    assert kept["sets"]["labelled"]["kept_per_photo"] == 1.0 and kept["f1"] == 1.0
    # The vocabulary's words are corrected by their own means, as a library corrects them.
    corrected, padded = sparse.ranked(TagRule(0.5))
    np.testing.assert_allclose(corrected[:, 0], c[:, 0] - 0.5 * 0.4, rtol=1e-6)
    np.testing.assert_allclose(corrected[:, 1:], 0.4 - 0.5 * 0.4, rtol=1e-6)
    assert (padded[:, 1:] == 0).all() and (padded[:, 0] == sparse.labels[:, 0]).all()


def test_calibration_takes_a_quantile_level_where_a_hub_is_high_on_a_few_photos_only():
    """A hub high on a fifth of the photos, as ``snake`` is on reptiles and animals only.
    Worked by hand (1 tag per photo, 40 photos): photos 0-3 show "a" (0.6) and the hub
    scores 0.7 there; photos 4-39 show "b" (0.6), and the hub scores 0.5 on 4 of them.
    The hub's mean (0.12) is about a's (0.06), so no strength of the mean correction takes
    it off photos 0-3 (0.7 - 0.12 s > 0.6 - 0.06 s): the best is no correction, F1 0.9. Its
    0.9 quantile is 0.52 (position 35.1 of the sorted scores: 0.5 + 0.1 x 0.2) against a's
    0.06, and from strength 0.25 on every photo's best word is its true one."""
    from trainer.calibrate import ValidationSet, choose_rule

    raw = np.zeros((40, 3), np.float32)  # columns: hub, a, b
    labels = -np.ones((40, 3), np.int8)
    raw[:4, 0], raw[4:8, 0] = 0.7, 0.5
    raw[:4, 1], labels[:4, 1] = 0.6, 1
    raw[4:, 2], labels[4:, 2] = 0.6, 1
    rule, per_correction, _ = choose_rule([ValidationSet("toy", raw, labels)], max_tags=1)
    f1 = {(row["quantile"], row["strength"]): row["f1"] for row in per_correction}
    assert max(f for (q, _), f in f1.items() if q is None) == pytest.approx(0.9) == f1[(None, 0.0)]
    assert f1[(0.9, 0.25)] == 1.0 and f1[(0.75, 0.25)] < 1.0  # the 0.75 quantile of the hub is 0
    assert (rule.quantile, rule.strength, rule.max_tags) == (0.9, 0.25, 1)
