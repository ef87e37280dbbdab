"""How a photo's scores become the tags it shows: evidence, one calibrated confidence, a rule.

A raw score (max over the rows of S of <S_m, w>) is not a probability, and its scale
differs from word to word: ``snake`` scores high on half the animals, ``sky`` moderately on
every sky. So each (photo, word) gets a few pieces of evidence, all from what a library
stores:

- ``score``: the raw score; ``over_level``: the score minus the word's level over the
  library (its 0.9 quantile: a hub that scores high everywhere has a high level);
- ``seen`` / ``seen_ap``: for a word the model was trained on, the probability that it is
  true, calibrated per word on labelled photos the model never trained on (``SeenWords``),
  and how well the model separates that word there (its average precision: seen words
  are trusted where the model knows them);
- ``imagenet`` / ``imagenet_mass``: for a word with ImageNet classes below it in WordNet
  (bird: 59 classes, from goldfinch to ostrich), the backbone's own probability of those
  classes: the backbone was trained on 1.2 M labelled photos of them. A word of this kind
  whose classes the backbone sees nowhere is probably not there, which is what keeps ten
  sibling animals off a photo of pigeons.

A logistic model over them gives the confidence that the word is true (its weights are
chosen on fully tagged validation photos by trainer.calibrate). A word also holds
wherever a word below it holds (``implied``: duck -> bird -> animal, lake -> water). A
photo shows its words at or above ``threshold``, best first, at most ``max_tags``; a photo
with none there shows its best word when that reaches ``fallback``, so that almost no photo
shows nothing. With ``siblings`` "one", of the words that imply a word the photo shows and
not each other (boat, sailboat and ship under vehicle; parrot and albatross under bird) it
shows only the most confident: the model tells a boat from a car far better than a canoe
from a sailboat, and a list of guesses at the kind reads as wrong tags (a blind judge marked
most of them wrong). Every number ships in the model bundle's "tagging" section and the
tagger applies exactly this rule.

A rule written by an older epsilon-tag (``strength`` and ``min_score``: kept when
``score - strength * level >= min_score``) is the same decision in this form (``legacy``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError

SIBLINGS = ("all", "one")
FEATURES = ("score", "over_level", "seen", "seen_ap", "imagenet", "imagenet_mass")
# An old rule's decision ``score - strength * level >= min_score`` as a confidence: the same
# order and the same cut at 0.5, whatever the slope; this one keeps confidences readable.
_LEGACY_SLOPE = 10.0
# Seen-word and ImageNet probabilities enter as log-odds, clipped so that a 0 or a 1 stays finite.
_CLIP = 1e-4
# A bundle's tagging section: this rule's keys, an older rule's, and the records of how it was chosen.
_KEYS = frozenset({"weights", "bias", "threshold", "fallback", "max_tags", "quantile", "seen", "siblings"})
_LEGACY_KEYS = frozenset({"strength", "min_score"})
_RECORDS = frozenset({"chosen_on", "validation", "threshold_over_vocabulary"})
# A photo's best ImageNet classes kept as its ImageNet evidence: a 2 x CLASSES_KEPT float16
# record, class indices (exact in float16 below 2,048) over their probabilities, index -1
# where none was recorded. On the default model the 16 best hold most of a photo's probability.
CLASSES_KEPT = 16
NO_CLASSES = np.stack([np.full(CLASSES_KEPT, -1.0), np.zeros(CLASSES_KEPT)]).astype(np.float16)


def top_classes(logits: np.ndarray) -> np.ndarray:
    """N x 2 x CLASSES_KEPT records of each photo's best classes from its head's logits
    (N x classes): what a scan stores and what calibration reads, one way."""
    logits = np.asarray(logits, dtype=np.float32)
    k = min(CLASSES_KEPT, logits.shape[1])
    best = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = np.take_along_axis(shifted, best, axis=1) / shifted.sum(axis=1, keepdims=True)
    out = np.broadcast_to(NO_CLASSES, (len(logits), 2, CLASSES_KEPT)).copy()
    out[:, 0, :k], out[:, 1, :k] = best, probs
    return out.astype(np.float16)


def _finite(value: object, what: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, not {value!r} (the model bundle's tagging section)") from None
    if not math.isfinite(number):
        raise InputError(f"{what} must be a finite number, not {value!r} (the model bundle's tagging section)")
    return number


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float32), _CLIP, 1 - _CLIP)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class SeenWords:
    """Per-word calibration of the model's own labels on held-out labelled photos:
    P(labelled) = sigmoid(slope * score + slope_over * (score - level) + bias + word bias),
    divided by ``labelled`` (how often a true word was labelled at all: held-out labels
    name a few of the things a photo shows; Elkan and Noto, KDD 2008), and each word's
    average precision there. ``words``: label -> (word bias, AP)."""

    slope: float
    slope_over: float
    bias: float
    labelled: float
    words: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> SeenWords:
        words = data.get("words", {})
        if not isinstance(words, dict):
            raise InputError("the tagging section's seen words must map each label to [bias, AP]")
        labelled = _finite(data.get("labelled", 1.0), "seen.labelled")
        if not 0 < labelled <= 1:
            raise InputError(f"seen.labelled lies in (0, 1], not {labelled}")
        return cls(
            _finite(data.get("slope", 0.0), "seen.slope"),
            _finite(data.get("slope_over", 0.0), "seen.slope_over"),
            _finite(data.get("bias", 0.0), "seen.bias"),
            labelled,
            {
                str(w): (_finite(v[0], f"seen bias of {w!r}"), _finite(v[1], f"seen AP of {w!r}"))
                for w, v in words.items()
            },
        )

    def to_dict(self) -> dict:
        return {
            "slope": self.slope,
            "slope_over": self.slope_over,
            "bias": self.bias,
            "labelled": self.labelled,
            "words": {w: [round(b, 5), round(a, 5)] for w, (b, a) in self.words.items()},
        }

    def probability(self, label: str, raw: np.ndarray, level: float) -> np.ndarray:
        """P(the label is true) on photos with these raw scores."""
        bias = self.words[label][0]
        z = self.slope * raw + self.slope_over * (raw - level) + self.bias + bias
        return np.minimum(1.0, 1.0 / (1.0 + np.exp(-z)) / self.labelled)


@dataclass(frozen=True)
class Words:
    """What a rule needs to know of each word it scores: its library level, the model label
    it is (None: a zero-shot word), and the ImageNet classes below it."""

    levels: np.ndarray  # W
    labels: Sequence[str | None]
    classes: Sequence[np.ndarray]  # each: head indices (int), empty where WordNet has none


@dataclass(frozen=True)
class TagRule:
    """``weights`` (one per FEATURES) and ``bias``: the confidence model. ``threshold``: the
    confidence a shown tag needs (None: every stored tag is shown). ``fallback``: a photo
    with no word at the threshold shows its best word from this confidence on (None: never).
    ``max_tags``: the most a photo shows. ``quantile``: a word's library level (None: its
    mean). ``seen``: the model's own labels, calibrated. ``siblings``: "one" shows only the
    most confident of sibling words (module docstring), "all" (an older bundle's rule) each."""

    weights: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    bias: float = 0.0
    threshold: float | None = None
    fallback: float | None = None
    max_tags: int = 10
    quantile: float | None = None
    seen: SeenWords | None = None
    siblings: str = "all"

    def __post_init__(self) -> None:
        if len(self.weights) != len(FEATURES):
            raise InputError(f"a tag rule has {len(FEATURES)} weights ({', '.join(FEATURES)}), not {len(self.weights)}")
        if self.quantile is not None and not 0.0 <= self.quantile <= 1.0:
            raise InputError(
                f"a tag rule's quantile lies between 0 and 1, not {self.quantile} (the model bundle's tagging section)"
            )
        for name in ("threshold", "fallback"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise InputError(f"a tag rule's {name} is a confidence between 0 and 1, not {value}")
        if not 1 <= self.max_tags <= 100:
            raise InputError(f"a tag rule's max_tags is a whole number from 1 to 100, not {self.max_tags}")
        if self.siblings not in SIBLINGS:
            raise InputError(f"a tag rule's siblings is one of {', '.join(SIBLINGS)}, not {self.siblings!r}")

    @classmethod
    def from_dict(cls, data: dict | None) -> TagRule:
        """A bundle's or library's "tagging" section, of this form or an older one."""
        if data is None or data == {}:
            return cls()  # no rule (a version-1 bundle): raw scores, every stored tag shown
        if not isinstance(data, dict):
            raise InputError("the model bundle's tagging section must be a JSON object")
        unknown = sorted(set(data) - _KEYS - _LEGACY_KEYS - _RECORDS)
        if unknown:
            raise InputError(f"the tagging section has keys no rule has: {', '.join(unknown)}")
        if "weights" in data and set(data) & {"strength", "min_score"}:
            raise InputError("the tagging section mixes weights with an older rule's strength / min_score: keep one")
        max_tags = data.get("max_tags", 10)
        if isinstance(max_tags, bool) or not isinstance(max_tags, int):
            raise InputError(f"a tag rule's max_tags is a whole number from 1 to 100, not {max_tags!r}")
        quantile = None if data.get("quantile") is None else _finite(data["quantile"], "quantile")
        if "weights" not in data:
            return cls.legacy(
                _finite(data.get("strength", 0.0), "strength"),
                None if data.get("min_score") is None else _finite(data["min_score"], "min_score"),
                max_tags,
                quantile,
            )
        weights = data["weights"]
        if not isinstance(weights, dict) or set(weights) != set(FEATURES):
            raise InputError(f"a tag rule's weights name each of {', '.join(FEATURES)} once")
        return cls(
            tuple(_finite(weights[f], f"weight of {f}") for f in FEATURES),
            _finite(data.get("bias", 0.0), "bias"),
            None if data.get("threshold") is None else _finite(data["threshold"], "threshold"),
            None if data.get("fallback") is None else _finite(data["fallback"], "fallback"),
            max_tags,
            quantile,
            None if data.get("seen") is None else SeenWords.from_dict(data["seen"]),
            data.get("siblings", "all"),
        )

    @classmethod
    def legacy(
        cls, strength: float, min_score: float | None, max_tags: int = 10, quantile: float | None = None
    ) -> TagRule:
        """An older rule (``score - strength * level >= min_score``) in this form: the same
        order of words and the same decision."""
        if not math.isfinite(strength) or strength < 0:
            raise InputError(f"a tag rule's strength is a number >= 0, not {strength}")
        k = _LEGACY_SLOPE
        weights = (k * (1 - strength), k * strength, 0.0, 0.0, 0.0, 0.0)
        bias = -k * (min_score or 0.0)
        if not all(math.isfinite(w) for w in (*weights, bias)):  # 1e308 is finite, ten times it is not
            raise InputError(f"a tag rule's strength ({strength}) or min_score ({min_score}) is too large")
        return cls(weights, bias, None if min_score is None else 0.5, None, max_tags, quantile)

    def to_dict(self) -> dict:
        return {
            "weights": dict(zip(FEATURES, self.weights)),
            "bias": self.bias,
            "threshold": self.threshold,
            "fallback": self.fallback,
            "max_tags": self.max_tags,
            "quantile": self.quantile,
            "seen": None if self.seen is None else self.seen.to_dict(),
            "siblings": self.siblings,
        }

    def levels(self, raw: np.ndarray) -> np.ndarray:
        """Each word's level over the photos (N x W raw scores -> W): its mean, or its quantile."""
        if len(raw) == 0:
            return np.zeros(raw.shape[1], np.float32)
        if self.quantile is None:
            return raw.mean(axis=0, dtype=np.float64).astype(np.float32)
        return np.quantile(raw, self.quantile, axis=0).astype(np.float32)

    def _features(
        self, raw: np.ndarray, words: Words, mass: np.ndarray | None, recorded: np.ndarray | None
    ) -> Iterator[tuple[int, Any, np.ndarray | np.floating]]:  # columns: all, one, or (rows, cols)
        """(feature, columns, values) for every piece of evidence that is not zero: the one
        description of the evidence that fitting (``evidence``) and tagging (``confidence``) share."""
        levels = np.asarray(words.levels, dtype=np.float32)
        every = slice(None)
        yield 0, every, raw
        yield 1, every, raw - levels[None, :]
        if self.seen is not None:
            for j, label in enumerate(words.labels):
                if label is not None and label in self.seen.words:
                    yield 2, j, logit(self.seen.probability(label, raw[:, j], float(levels[j])))
                    yield 3, j, np.float32(self.seen.words[label][1])
        if mass is not None:
            has = np.flatnonzero([len(c) > 0 for c in words.classes])
            on = np.ones(len(raw), bool) if recorded is None else np.asarray(recorded, bool)
            if len(has) and on.any():
                # Photos read before their classes were recorded have no ImageNet evidence
                # at all, which is not the evidence of a zero probability.
                yield 4, (on, has), np.float32(1.0)
                yield 5, (on, has), logit(mass[np.ix_(on, has)])

    def evidence(
        self, raw: np.ndarray, words: Words, mass: np.ndarray | None = None, recorded: np.ndarray | None = None
    ) -> np.ndarray:
        """N x W x FEATURES: the evidence for each word on each photo. ``mass``: N x W, the
        backbone's probability of each word's ImageNet classes; ``recorded``: N, which photos
        have their classes recorded (None: all of them, where ``mass`` is given)."""
        out = np.zeros((*raw.shape, len(FEATURES)), np.float32)
        for f, columns, values in self._features(raw, words, mass, recorded):
            if isinstance(columns, tuple):
                out[np.ix_(columns[0], columns[1], [f])] = np.asarray(values)[..., None]
            else:
                out[:, columns, f] = values
        return out

    def confidence(
        self, raw: np.ndarray, words: Words, mass: np.ndarray | None = None, recorded: np.ndarray | None = None
    ) -> np.ndarray:
        """The probability that each word is true of each photo (N x W): the logistic model
        over ``evidence``, summed feature by feature (no N x W x FEATURES array)."""
        z = np.full(raw.shape, self.bias, dtype=np.float32)
        for f, columns, values in self._features(raw, words, mass, recorded):
            if not self.weights[f]:
                continue
            if isinstance(columns, tuple):
                z[np.ix_(*columns)] += np.float32(self.weights[f]) * values
            else:
                z[:, columns] += np.float32(self.weights[f]) * values
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def kept(self, confidence: np.ndarray, implies: np.ndarray | None = None) -> np.ndarray:
        """N x W booleans: the tags each photo shows (module docstring). ``implies``: W x W,
        which word implies which (``implies_matrix``), which the siblings rule needs;
        without it every sibling shows."""
        shown = self._shown(confidence)
        if self.siblings == "one" and implies is not None:
            shown = one_sibling(shown, confidence, implies)
        return shown

    def _shown(self, confidence: np.ndarray) -> np.ndarray:
        k = min(self.max_tags, confidence.shape[1])
        top = np.zeros(confidence.shape, dtype=bool)
        if not k:
            return top
        np.put_along_axis(top, np.argpartition(-confidence, k - 1, axis=1)[:, :k], True, axis=1)
        if self.threshold is None:
            return top
        shown = top & (confidence >= self.threshold)
        if self.fallback is not None:
            best = confidence.argmax(axis=1)
            rows = np.flatnonzero(~shown.any(axis=1) & (confidence.max(axis=1) >= self.fallback))
            shown[rows, best[rows]] = True
        return shown


def implied(confidence: np.ndarray, implied_by: Sequence[Sequence[int]], threshold: float | None = None) -> np.ndarray:
    """Each word at least as confident as the words that imply it (positions per word) where
    they reach ``threshold``: a photo showing a duck shows a bird. Only a word confident
    enough to be shown lifts the words above it: the best of fifty unsure animal names would
    otherwise make "animal" sure of every photo."""
    out = confidence.copy()
    for j, below in enumerate(implied_by):
        if len(below):
            lifted = confidence[:, list(below)].max(axis=1)
            if threshold is not None:
                lifted = np.where(lifted >= threshold, lifted, 0.0)
            out[:, j] = np.maximum(out[:, j], lifted)
    return out


def implies_matrix(implied_by: Sequence[Sequence[int]], width: int | None = None) -> np.ndarray:
    """W x W booleans from ``implied_by`` (each word's implying words): [a, g] when a implies g."""
    width = len(implied_by) if width is None else width
    above = np.zeros((width, width), dtype=bool)
    for g, below in enumerate(implied_by[:width]):
        above[list(below), g] = True
    return above


def sibling_losers(up: np.ndarray) -> np.ndarray:
    """Which of a photo's shown words give way to a more confident sibling (``siblings``
    "one"): ``up`` is their k x k "implies" matrix, most confident first (or n x k x k for
    n photos at once; rows and columns of no word all False). A word gives way to a kept
    word it neither implies nor is implied by when both imply a shown word; a word that
    gave way takes nothing from the words after it."""
    up = np.asarray(up, dtype=bool)
    many = up[None] if up.ndim == 2 else up
    counts = many.astype(np.int32)
    share = np.einsum("nag,nbg->nab", counts, counts) > 0
    clash = share & ~many & ~np.swapaxes(many, 1, 2)
    lost = np.zeros(many.shape[:2], dtype=bool)
    for k in range(1, many.shape[1]):
        lost[:, k] = (clash[:, k, :k] & ~lost[:, :k]).any(axis=1)
    return lost[0] if up.ndim == 2 else lost


def one_sibling(shown: np.ndarray, confidence: np.ndarray, implies: np.ndarray) -> np.ndarray:
    """``shown`` less every word that gives way to a more confident sibling on its photo
    (``sibling_losers``, all photos at once; ``implies``: ``implies_matrix``)."""
    above = np.asarray(implies, dtype=bool)
    counts = shown.sum(axis=1)
    rows = np.flatnonzero(counts > 1)
    if not above.any() or not len(rows):
        return shown
    k = int(counts[rows].max())
    ranked = np.where(shown[rows], confidence[rows], -np.inf)
    words = np.argsort(-ranked, axis=1, kind="stable")[:, :k]  # each photo's shown words, best first
    valid = np.arange(k)[None, :] < counts[rows, None]
    up = above[words[:, :, None], words[:, None, :]] & valid[:, :, None] & valid[:, None, :]
    lost = sibling_losers(up) & valid
    out = shown.copy()
    out[np.broadcast_to(rows[:, None], words.shape)[lost], words[lost]] = False
    return out


def class_mass(classes: np.ndarray, probs: np.ndarray, word_classes: Sequence[np.ndarray], heads: int) -> np.ndarray:
    """N x W: for each photo, the summed probability of each word's ImageNet classes among
    the photo's recorded top classes (``classes``/``probs``: N x K). Each (photo, class) pair
    is added to the words whose classes hold it, through a class -> words index."""
    n = len(classes)
    out = np.zeros((n, len(word_classes)), np.float32)
    members = [np.asarray(c, dtype=np.int64) for c in word_classes]
    sizes = np.array([len(c) for c in members])
    if not n or not sizes.sum():
        return out
    # CSR index: for class c, the words holding it.
    flat_classes = np.concatenate([c for c in members if len(c)])
    flat_words = np.repeat(np.arange(len(members)), sizes)
    order = np.argsort(flat_classes, kind="stable")
    pointer = np.searchsorted(flat_classes[order], np.arange(heads + 1))
    words_of = flat_words[order]
    cls = np.asarray(classes, dtype=np.int64).ravel()
    valid = (cls >= 0) & (cls < heads)
    photo = np.repeat(np.arange(n), classes.shape[1])[valid]
    p = np.asarray(probs, dtype=np.float32).ravel()[valid]
    cls = cls[valid]
    counts = pointer[cls + 1] - pointer[cls]
    starts = np.repeat(pointer[cls], counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    np.add.at(out, (np.repeat(photo, counts), words_of[starts]), np.repeat(p, counts))
    return out


def record_mass(records: np.ndarray, word_classes: Sequence[np.ndarray], heads: int) -> tuple[np.ndarray, np.ndarray]:
    """From stored class records (N x 2 x K, as ``top_classes`` writes them): each word's
    ImageNet mass (N x W, ``class_mass``) and which photos have their classes recorded
    (index -1: a photo read before they were)."""
    record = np.asarray(records, dtype=np.float32)
    indices = record[:, 0].astype(np.int64)
    return class_mass(indices, record[:, 1], word_classes, heads), indices[:, 0] >= 0


def describe(tagging: dict) -> str:
    """A bundle's tag rule in one line, with the figures it was chosen on."""
    rule = TagRule.from_dict(tagging)
    if rule.threshold is None:
        return "none chosen: every stored tag shows (`epsilon-train calibrate BUNDLE --tagged DIR --write`)"
    fallback = "never" if rule.fallback is None else f"from {rule.fallback:.2f}"
    text = f"shows tags from confidence {rule.threshold:.2f} (a photo's best {fallback}), at most {rule.max_tags}"
    if rule.siblings == "one":
        text += ", one of sibling words"
    chosen = tagging.get("validation", {}).get("chosen") if isinstance(tagging.get("validation"), dict) else None
    if chosen:
        on = ", ".join(tagging.get("chosen_on", []))
        text += f"; chosen on {on}: P {chosen['precision']:.3f} R {chosen['recall']:.3f} over its fully tagged photos"
    return text
