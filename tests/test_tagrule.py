"""The tag rule: confidences and shown tags equal a reference computation in the library,
stay so when words come and go, are the same in search as in tags, reach show and export;
the pieces (evidence, ImageNet mass, implications, the shown decision, old rules) by hand;
and calibration against independent references."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from tagger.search import rank, search
from tagger.vocabulary import REFRESH_FACTOR, WordSource, add_words, needs_refresh, remove_words, renormalise, scores
from tests.tagging import synthetic_library, tag
from tests.test_vocabulary import WORDS, glove, tags_table
from trainer.errors import InputError
from trainer.tagrule import (
    FEATURES,
    SeenWords,
    TagRule,
    Words,
    class_mass,
    describe,
    implied,
    implies_matrix,
    top_classes,
)
from trainer.wordnet import implications

# Rules as bundles write them: an older epsilon-tag's (strength and threshold on corrected
# scores, the level a mean or a quantile), and this one's (weights of the evidence).
LEGACY = {"strength": 0.5, "min_score": 0.3, "max_tags": 5}
RULES = [
    LEGACY,
    {**LEGACY, "quantile": 0.9, "min_score": 0.1},
    TagRule((4.0, 3.0, 0.0, 0.0, 0.0, 0.0), -1.0, 0.55, 0.4, 5, 0.9).to_dict(),
]
IDS = ["legacy-mean", "legacy-quantile", "calibrated"]


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
    """Every photo's tags recomputed from its S by hand: raw cosines, each word's level over
    the library's photos, the rule's logistic of score and score less level (no seen words,
    no ImageNet classes in a synthetic library), the 5 best, shown from the threshold on."""
    rule = library.tag_rule
    stored = library.semantic_vectors()
    words = library.words()
    raw = scores(stored.semantic, np.stack([w.vector for w in words])).astype(np.float64)
    levels = level(raw, rule.quantile)
    w0, w1 = rule.weights[0], rule.weights[1]
    confidence = 1 / (1 + np.exp(-(w0 * raw + w1 * (raw - levels) + rule.bias)))
    tags = {}
    for photo_id, row in zip(stored.ids, confidence):
        best = np.argsort(-row, kind="stable")[:5]
        shown = [rule.threshold is None or row[j] >= rule.threshold for j in best]
        if rule.fallback is not None and not any(shown) and row[best[0]] >= rule.fallback:
            shown[0] = True
        tags[int(photo_id)] = [(words[j].word, float(row[j]), on) for j, on in zip(best, shown)]
    return {w.word: m for w, m in zip(words, levels)}, tags


def stored_tags(library, every=True):
    return {
        int(pid): [(t["word"], t["score"]) for t in library.photo_tags(int(pid), every=every)]
        for pid in library.semantic_vectors().ids
    }


def assert_tags_equal(got, expected):
    assert got.keys() == expected.keys()
    for photo_id in got:
        assert [w for w, *_ in got[photo_id]] == [w for w, *_ in expected[photo_id]], photo_id
        np.testing.assert_allclose([t[1] for t in got[photo_id]], [t[1] for t in expected[photo_id]], atol=2e-6)


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_stored_levels_and_tags_equal_a_reference_computation(tmp_path, rule):
    library = synthetic_library(tmp_path / "lib.db", 200, glove(WORDS), k=5, rule=rule)
    levels, expected = reference(library)
    for word in library.words():
        assert word.mean == pytest.approx(levels[word.word], abs=1e-6)
    assert_tags_equal(stored_tags(library), expected)
    # People see the shown ones.
    shown = {pid: [(w, s) for w, s, on in tags if on] for pid, tags in expected.items()}
    assert 0 < sum(map(len, shown.values())) < sum(map(len, expected.values()))
    assert_tags_equal(stored_tags(library, every=False), shown)
    counts = library.word_counts()
    ids = {w.word: w.id for w in library.words()}
    for word in WORDS:
        assert counts.get(ids[word], 0) == sum(word in [w for w, _ in tags] for tags in shown.values())


def test_an_older_rule_is_the_same_decision_in_the_new_form():
    """A rule of strength 0.5 and threshold 0.3 keeps a tag where score - 0.5 x level >= 0.3.
    By hand: levels 0.2 and 0.6; corrected scores 0.7 - 0.1 = 0.6, 0.35 - 0.1 = 0.25,
    0.5 - 0.3 = 0.2, 0.65 - 0.3 = 0.35: the first and the last are kept, and the confidences
    order the four as the corrected scores do."""
    rule = TagRule.from_dict({"strength": 0.5, "min_score": 0.3})
    raw = np.array([[0.7, 0.5], [0.35, 0.65]], np.float32)
    words = Words(np.array([0.2, 0.6], np.float32), [None, None], [np.zeros(0), np.zeros(0)])
    confidence = rule.confidence(raw, words)
    corrected = raw - 0.5 * np.array([0.2, 0.6])
    assert (confidence >= rule.threshold).tolist() == (corrected >= 0.3).tolist() == [[True, False], [False, True]]
    assert np.argsort(confidence.ravel()).tolist() == np.argsort(corrected.ravel()).tolist()
    # No threshold in the old rule: every stored tag is shown.
    assert TagRule.from_dict({"strength": 0.75}).threshold is None
    assert TagRule.from_dict(None) == TagRule() and TagRule.from_dict(rule.to_dict()) == rule


def test_the_correction_by_a_words_level_takes_a_hub_off_every_photo(tmp_path):
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


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_adding_then_removing_a_word_leaves_everything_as_it_was(tmp_path, rule):
    library = synthetic_library(tmp_path / "lib.db", 150, glove(WORDS[:10]), k=5, rule=rule)
    before_tags, before_levels = tags_table(library), {w.word: w.mean for w in library.words()}
    assert "road" not in before_levels
    counts = add_words(library, ["road", "polar bear"], WordSource.of_library(library))
    levels, expected = reference(library)
    assert_tags_equal(stored_tags(library), expected)  # incremental add = from scratch
    after = {w.word: w.mean for w in library.words()}
    assert {w: after[w] for w in before_levels} == before_levels  # other words' levels untouched
    assert after["road"] == pytest.approx(levels["road"], abs=1e-6)
    assert counts["road"] == sum("road" in [w for w, _, on in t if on] for t in expected.values()) > 0
    remove_words(library, ["road", "polar bear"])
    assert tags_table(library) == before_tags


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_search_scores_are_tag_confidences(tmp_path, rule):
    library = synthetic_library(tmp_path / "lib.db", 120, glove(WORDS), k=5, rule=rule)
    _, expected = reference(library)
    hits = search(library, "boat", limit=None, min_score=0)
    tagged = {pid: {w: s for w, s, _ in tags} for pid, tags in expected.items()}
    for hit in hits:
        if "boat" in tagged[hit.photo_id]:
            assert hit.score == pytest.approx(tagged[hit.photo_id]["boat"], abs=2e-6)
    assert len(hits) == 120  # --min-score 0: every photo
    # A word outside the vocabulary: its level is taken over the library's photos at once.
    stored = library.semantic_vectors()
    raw = scores(stored.semantic, glove(["zeppelin"])[0][1][None]).astype(np.float64)
    parsed = library.tag_rule
    z = parsed.weights[0] * raw + parsed.weights[1] * (raw - level(raw, parsed.quantile)) + parsed.bias
    expected_zero_shot = dict(zip(stored.ids.tolist(), 1 / (1 + np.exp(-z[:, 0]))))
    for hit in search(library, "zeppelin", limit=None, min_score=0):
        assert hit.score == pytest.approx(expected_zero_shot[hit.photo_id], abs=2e-6)
    # Dates narrow the photos, not the level: the same photo scores the same.
    dated = search(library, "zeppelin", limit=None, after="2015", before="2016", min_score=0)
    assert dated and all(h.score == pytest.approx(expected_zero_shot[h.photo_id], abs=2e-6) for h in dated)
    # Without --min-score, only photos from the relevance floor up (the fallback, else the threshold).
    ranking = rank(library, "zeppelin")
    floor = parsed.fallback if parsed.fallback is not None else parsed.threshold
    assert ranking.floor == floor and ranking.best == pytest.approx(max(expected_zero_shot.values()), abs=2e-6)
    assert len(ranking) == sum(v >= floor for v in expected_zero_shot.values())


def test_a_word_no_photo_matches_well_finds_nothing_and_says_so(tmp_path):
    rule = TagRule((4.0, 3.0, 0.0, 0.0, 0.0, 0.0), -5.0, 0.55, 0.45, 5, 0.9).to_dict()
    library = synthetic_library(tmp_path / "lib.db", 60, glove(WORDS), k=5, rule=rule)
    library.close()
    db = tmp_path / "lib.db"
    found = json.loads(tag(db, "search", "zeppelin", "--json"))
    assert found["floor"] == 0.45 and found["best"] < 0.45 and found["matches"] == 0 and found["hits"] == []
    assert tag(db, "search", "zeppelin") == ""
    every = json.loads(tag(db, "search", "zeppelin", "--json", "--min-score", "0", "-n", "100"))
    assert every["matches"] == 60 and len(every["hits"]) == 60 and every["floor"] == 0.0


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


def test_the_shown_tags_rule():
    """At most 2 tags from 0.5; a photo with none there shows its best from 0.3."""
    rule = TagRule(threshold=0.5, fallback=0.3, max_tags=2)
    confidence = np.array([[0.9, 0.6, 0.55, 0.1], [0.4, 0.35, 0.2, 0.1], [0.25, 0.2, 0.1, 0.0]])
    np.testing.assert_array_equal(
        rule.kept(confidence),
        [[True, True, False, False], [True, False, False, False], [False, False, False, False]],
    )
    assert TagRule.from_dict(rule.to_dict()) == rule


def test_one_sibling_keeps_the_most_confident_kind_and_every_chain():
    """Under a shown general word, of the words that imply it and not each other only the
    most confident shows; a word above or below a kept one still shows (hummingbird under
    bird), and siblings with no shown word above them all show."""
    words = ("vehicle", "boat", "sailboat", "canoe", "animal", "bird", "hummingbird", "dog", "cat")
    implied_by = implications(words)
    at = {w: i for i, w in enumerate(words)}
    assert {words[j] for j in implied_by[at["vehicle"]]} == {"boat", "sailboat", "canoe"}
    assert {words[j] for j in implied_by[at["boat"]]} == {"canoe"}
    assert {words[j] for j in implied_by[at["animal"]]} == {"bird", "hummingbird", "dog", "cat"}
    one = TagRule(threshold=0.5, max_tags=10, siblings="one")
    confidence = np.array(
        [
            # vehicle boat sail canoe animal bird humm dog  cat
            [0.90, 0.80, 0.85, 0.70, 0.10, 0.10, 0.10, 0.10, 0.10],  # sailboat beats boat
            [0.10, 0.10, 0.10, 0.10, 0.95, 0.90, 0.80, 0.60, 0.70],  # bird and its chain; cat beats dog
            [0.10, 0.10, 0.85, 0.70, 0.10, 0.10, 0.10, 0.10, 0.10],  # no vehicle shown: both stay
        ]
    )
    implies = implies_matrix(implied_by)
    shown = [[words[j] for j in np.flatnonzero(row)] for row in one.kept(confidence, implies)]
    assert shown == [
        ["vehicle", "sailboat"],  # boat and canoe (below boat) share vehicle with sailboat
        ["animal", "bird", "hummingbird"],
        ["sailboat", "canoe"],
    ]
    every = replace(one, siblings="all")
    np.testing.assert_array_equal(every.kept(confidence, implies), confidence >= 0.5)
    np.testing.assert_array_equal(one.kept(confidence), confidence >= 0.5)  # no implications: nothing to fold
    assert TagRule.from_dict(one.to_dict()) == one
    assert TagRule.from_dict({k: v for k, v in one.to_dict().items() if k != "siblings"}).siblings == "all"
    assert "one of sibling words" in describe(one.to_dict())
    assert "sibling" not in describe(every.to_dict())
    with pytest.raises(InputError, match="siblings"):
        TagRule.from_dict({**one.to_dict(), "siblings": "some"})


def test_a_words_level_is_its_mean_or_its_quantile():
    raw = np.array([[0.1, 0.5], [0.3, 0.5], [0.2, 0.9], [0.6, 0.1], [0.4, 0.2]], np.float32)
    np.testing.assert_allclose(TagRule().levels(raw), [0.32, 0.44], rtol=1e-6)
    # 0.9 x (5 - 1) = 3.6: 60% of the way from the 4th to the 5th sorted score.
    np.testing.assert_allclose(TagRule(quantile=0.9).levels(raw), [0.4 + 0.6 * 0.2, 0.5 + 0.6 * 0.4], rtol=1e-6)
    np.testing.assert_allclose(TagRule(quantile=0.9).levels(raw), level(raw, 0.9), rtol=1e-6)
    assert TagRule(quantile=0.9).levels(np.zeros((0, 2), np.float32)).tolist() == [0.0, 0.0]
    # A rule without a quantile (an older bundle's) means the mean.
    assert TagRule.from_dict({"strength": 0.75, "min_score": 0.35}).quantile is None
    with pytest.raises(InputError, match="quantile lies between 0 and 1"):
        TagRule.from_dict({"strength": 0.75, "quantile": 90})


@pytest.mark.parametrize(
    "section, message",
    [
        ({"weights": {"score": 1.0}}, "weights name each of"),
        ({"weights": dict.fromkeys(FEATURES, "x")}, "weight of score must be a number"),
        ({"weights": dict.fromkeys(FEATURES, float("nan"))}, "must be a finite number"),
        ({"strength": 0.5, "min_score": 0.3, "max_tags": 2.7}, "max_tags is a whole number"),
        ({"strength": 0.5, "min_score": 0.3, "max_tags": 0}, "max_tags is a whole number"),
        ({"strength": -1.0, "min_score": 0.3}, "strength is a number >= 0"),
        ({"strength": 1e308, "min_score": 0.3}, r"strength \(1e\+308\) or min_score \(0.3\) is too large"),
        ({"weights": dict.fromkeys(FEATURES, 0.0), "threshold": 1.5}, "threshold is a confidence"),
        ({"weights": dict.fromkeys(FEATURES, 0.0), "seen": {"words": [1, 2]}}, "seen words must map"),
        ("not a section", "must be a JSON object"),
        ({"strength": 0.5, "min_score": 0.3, "max_tag": 4}, "keys no rule has: max_tag"),
        ({"weights": dict.fromkeys(FEATURES, 0.0), "strength": 0.5}, "mixes weights with an older rule"),
    ],
)
def test_a_bundles_tagging_section_is_checked_with_errors_that_name_the_field(section, message):
    with pytest.raises(InputError, match=message):
        TagRule.from_dict(section)  # type: ignore[arg-type]


def test_the_evidence_and_the_confidence_are_one_computation():
    """Two words on three photos, worked by hand: "dog", a seen label with ImageNet classes
    3 and 7; "sky", zero-shot without classes. Photo 2 recorded no classes."""
    seen = SeenWords(2.0, 1.0, -1.0, 0.9, {"dog": (0.25, 0.8)})
    rule = TagRule((1.5, 2.0, 0.5, 1.0, 0.7, 0.3), -2.0, 0.5, None, 10, 0.9, seen)
    raw = np.array([[0.6, 0.2], [0.1, 0.7], [0.4, 0.4]], np.float32)
    words = Words(np.array([0.3, 0.5], np.float32), ["dog", None], [np.array([3, 7]), np.zeros(0, int)])
    classes = np.array([[3, 7, 1], [1, 2, 4], [-1, -1, -1]])
    probs = np.array([[0.5, 0.2, 0.3], [0.6, 0.3, 0.1], [0.0, 0.0, 0.0]])
    mass = class_mass(classes, probs, words.classes, 10)
    np.testing.assert_allclose(mass, [[0.7, 0.0], [0.0, 0.0], [0.0, 0.0]], atol=1e-7)
    recorded = np.array([True, True, False])
    evidence = rule.evidence(raw, words, mass, recorded)
    # By hand for photo 0, "dog": P(labelled) = sigmoid(2 x 0.6 + 1 x (0.6 - 0.3) - 1 + 0.25),
    # divided by 0.9 for the true words that labels miss (labelled 0.9), then as log-odds.
    p = 1 / (1 + np.exp(-(1.2 + 0.3 - 1.0 + 0.25))) / 0.9
    np.testing.assert_allclose(
        evidence[0, 0], [0.6, 0.3, np.log(p / (1 - p)), 0.8, 1.0, np.log(0.7 / 0.3)], rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(evidence[0, 1], [0.2, -0.3, 0.0, 0.0, 0.0, 0.0], atol=1e-6)
    assert evidence[1, 0, 4] == 1.0 and evidence[1, 0, 5] < -9  # classes recorded, none of a dog's
    assert (evidence[2, :, 4:] == 0).all()  # nothing recorded: no ImageNet evidence at all
    expected = 1 / (1 + np.exp(-(evidence @ np.array(rule.weights) + rule.bias)))
    np.testing.assert_allclose(rule.confidence(raw, words, mass, recorded), expected, rtol=1e-5)


def test_top_classes_keep_the_best_probabilities():
    logits = np.log(np.array([[0.1, 0.6, 0.3] + [1e-9] * 17, [1.0] * 20]))
    record = top_classes(logits).astype(np.float32)
    assert record.shape == (2, 2, 16)
    assert record[0, 0, :3].tolist() == [1, 2, 0]
    np.testing.assert_allclose(record[0, 1, :3], [0.6, 0.3, 0.1], atol=1e-3)
    np.testing.assert_allclose(record[1, 1], np.full(16, 0.05), atol=1e-4)  # 20 equal classes


def test_a_word_is_lifted_by_the_confident_words_below_it():
    """bird (position 0) is implied by duck (1) and gull (2). Only a word at the threshold
    (0.5) lifts it: duck 0.8 makes bird 0.8 on photo 0; gull 0.45 on photo 1 does not."""
    confidence = np.array([[0.3, 0.8, 0.1], [0.2, 0.1, 0.45]], np.float32)
    lifted = implied(confidence, [[1, 2], [], []], threshold=0.5)
    np.testing.assert_allclose(lifted, [[0.8, 0.8, 0.1], [0.2, 0.1, 0.45]])
    np.testing.assert_allclose(implied(confidence, [[1, 2], [], []])[:, 0], [0.8, 0.45])  # no threshold: any


def test_show_and_export_carry_the_shown_tags(tmp_path):
    from tagger.library import Library
    from tagger.xmp import sidecar_path, subject_keywords
    from tests.photo_factory import make_library

    make_library(tmp_path / "photos", 4)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "-q")
    with Library(db) as library:
        rule = TagRule.from_dict({"strength": 0.5, "max_tags": 10})
        library.set_meta(tag_rule=rule.to_dict())
        renormalise(library, force=True)
        photo = library.photo_by_path(str(next((tmp_path / "photos").rglob("*.jpg")).resolve()))
        first = library.photo_tags(photo["id"], every=True)
        threshold = (first[3]["score"] + first[4]["score"]) / 2  # about its 4 best
        library.set_meta(tag_rule={**rule.to_dict(), "threshold": threshold})
        renormalise(library, force=True)
        every = library.photo_tags(photo["id"], every=True)
    kept = [t for t in every if t["score"] >= threshold]
    assert 0 < len(kept) < len(every) == 10
    shown = tag(db, "show", photo["path"], "--json")
    assert [t["word"] for t in json.loads(shown)["tags"]] == [t["word"] for t in kept]
    everything = json.loads(tag(db, "show", photo["path"], "--all", "--json"))["tags"]
    assert len(everything) == 10 and [t["word"] for t in everything if t["shown"]] == [t["word"] for t in kept]
    marked = [line for line in tag(db, "show", photo["path"], "--all").splitlines() if "not shown" in line]
    assert len(marked) == 10 - len(kept)
    tag(db, "export", "--xmp")
    assert subject_keywords(sidecar_path(photo["path"])) == [t["word"] for t in kept]
    tag(db, "export", "--xmp", "--top", "2", "--min-score", "0")
    assert subject_keywords(sidecar_path(photo["path"])) == [t["word"] for t in every[:2]]


# ---- calibration ------------------------------------------------------------------------


def test_shown_tags_are_scored_against_annotated_cells_only():
    from trainer.calibrate import figures

    kept = np.array([[True, False, True], [True, True, False]])  # the third column: an unlabelled vocabulary word
    labels = np.array([[1, -1], [-1, 0]])  # (1, 1) is not annotated: neither right nor wrong
    found = figures(kept, labels)
    assert (found["precision"], found["recall"]) == (0.5, 1.0) and found["f1"] == pytest.approx(2 / 3)
    assert found["shown_per_photo"] == 2.0 and found["photos_showing_nothing"] == 0
    assert figures(np.zeros((2, 3), bool), labels)["photos_showing_nothing"] == 2


def test_seen_labels_are_calibrated_with_shrunk_biases_and_their_average_precision():
    from sklearn.metrics import average_precision_score

    from trainer.calibrate import fit_seen

    rng = np.random.default_rng(0)
    n = 400
    truth = rng.random((n, 3)) < [0.3, 0.1, 0.5]
    raw = np.where(truth, 0.6, 0.3) + rng.normal(0, [0.05, 0.15, 0.05], (n, 3))
    labels = np.where(truth & (rng.random((n, 3)) < 0.7), 1, -1).astype(np.int8)  # 7 in 10 true words labelled
    labels[:50, 2] = 0  # not annotated: left out
    seen = fit_seen(raw.astype(np.float32), labels, ["a", "b", "c"])
    for j, name in enumerate("abc"):
        annotated = labels[:, j] != 0
        assert seen.words[name][1] == pytest.approx(
            average_precision_score(labels[annotated, j] > 0, raw[annotated, j])
        )
    assert seen.words["b"][1] < seen.words["a"][1]  # the noisier word is known less well
    # Labels name 7 in 10 of the true words: the mean probability of the labelled ones is below 1.
    assert 0.5 < seen.labelled < 1.0
    # Probabilities rise with the score.
    assert seen.probability("a", np.array([0.3]), 0.6)[0] < seen.probability("a", np.array([0.6]), 0.6)[0]


def _toy_tagged_set(seed=0, n=120):
    from trainer.calibrate import ValidationSet

    rng = np.random.default_rng(seed)
    truth = rng.random((n, 4)) < 0.3
    raw = (np.where(truth, 0.55, 0.3) + rng.normal(0, 0.1, (n, 6))[:, :4]).astype(np.float32)
    extra = rng.normal(0.3, 0.1, (n, 2)).astype(np.float32)  # two unlabelled vocabulary words
    return ValidationSet(
        "toy",
        ["w0", "w1", "w2", "w3", "u0", "u1"],
        np.hstack([raw, extra]),
        np.where(truth, 1, -1).astype(np.int8),
        [None] * 6,
        [np.zeros(0, int)] * 6,
        None,
        True,
    )


def test_the_confidence_model_is_a_logistic_regression_of_the_evidence():
    from sklearn.linear_model import LogisticRegression

    from trainer.calibrate import LEVEL_QUANTILE, fit_confidence

    toy = _toy_tagged_set()
    weights, bias = fit_confidence([toy], None)
    rule = TagRule(quantile=LEVEL_QUANTILE)
    evidence = rule.evidence(toy.raw[:, :4], Words(rule.levels(toy.raw)[:4], [None] * 4, [np.zeros(0)] * 4))
    x, y = evidence[..., :2].reshape(-1, 2), (toy.labels > 0).ravel()
    reference = LogisticRegression(C=1.0, max_iter=10_000).fit(x, y)
    # Score and score less level move together within a word, so the two weights trade off;
    # the probabilities they give are what must agree.
    ours = 1 / (1 + np.exp(-(x @ np.array(weights[:2]) + bias)))
    np.testing.assert_allclose(ours, reference.predict_proba(x)[:, 1], atol=0.01)
    assert weights[2:] == (0.0, 0.0, 0.0, 0.0)  # no seen labels, no ImageNet classes: no evidence there


def test_the_threshold_is_the_best_f_half_and_the_fallback_leaves_few_photos_empty():
    from dataclasses import replace

    from trainer.calibrate import EMPTY_SHARE, FALLBACKS, THRESHOLDS, choose_rule, figures

    toy = _toy_tagged_set(1)
    rule, report = choose_rule([toy], None, max_tags=3)
    base = replace(rule, threshold=None, fallback=None)
    confidence = toy.confidence(base)  # no implications among these words: the threshold does not matter here

    def shown(r):
        return figures(r.kept(confidence), toy.labels)

    best = max(THRESHOLDS, key=lambda t: (round(shown(replace(base, threshold=t))["f_half"], 6), -t))
    assert rule.threshold == best
    assert report["chosen"] == shown(rule) and len(report["threshold_grid"]) == len(THRESHOLDS)
    fits = [
        f
        for f in FALLBACKS
        if f <= best
        and shown(replace(base, threshold=best, fallback=f))["photos_showing_nothing"] <= EMPTY_SHARE * len(toy.raw)
    ]
    assert rule.fallback == (fits[0] if fits else None)


def test_calibration_counts_the_tags_a_library_shows_siblings_folded():
    """The threshold grid is made of what a library would show: with sibling words (boat and
    ship, both vehicles) only the more confident of the two counts."""
    from dataclasses import replace

    from trainer.calibrate import ValidationSet, choose_rule, figures

    rng = np.random.default_rng(3)
    n = 150
    vehicle = rng.random(n) < 0.5
    truth = np.stack([vehicle, vehicle & (rng.random(n) < 0.6), vehicle & (rng.random(n) < 0.4)], axis=1)
    raw = (np.where(truth, 0.6, 0.3) + rng.normal(0, 0.08, truth.shape)).astype(np.float32)
    raw[:, 1:] += 0.15 * vehicle[:, None]  # on any vehicle both kinds look likely: the siblings clash
    toy = ValidationSet(
        "vehicles",
        ["vehicle", "boat", "ship"],
        raw,
        np.where(truth, 1, -1).astype(np.int8),
        [None] * 3,
        [np.zeros(0, int)] * 3,
        None,
        True,
    )
    folded, report = choose_rule([toy], None, max_tags=3)
    assert folded.siblings == "one"
    assert report["chosen"] == figures(toy.kept(folded), toy.labels)
    every = replace(folded, siblings="all")
    assert (toy.kept(folded) <= toy.kept(every)).all()
    assert (toy.kept(folded)[:, 1:].sum(axis=1) <= 1).all()  # never both boat and ship
    assert (toy.kept(every)[:, 1:].sum(axis=1) == 2).any()
