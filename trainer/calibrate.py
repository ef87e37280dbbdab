"""Choosing the tagger's rule (trainer.tagrule) on labelled validation photos.

Three questions, each answered by the data that can answer it:

1. How sure is the model of its own labels? For each label the model was trained on, a
   logistic calibration of its raw score on the labelled photos its training held out
   (Corel-5K's held-out fold for the default model): slopes shared by every label, a bias
   of its own drawn towards the shared one (a label with two held-out photos says little),
   corrected for labels that name only some of what a photo shows (Elkan and Noto, KDD
   2008: a true word is labelled with some probability, the mean predicted probability of
   the labelled ones), and the label's average precision there.
2. How do the pieces of evidence combine into the probability that a word is true? A
   logistic model over ``trainer.tagrule.FEATURES``, fitted on photos where every word of
   a vocabulary was marked (``--tagged``): only there is an unmarked word a wrong word.
   Sets that label a few words (Corel-5K, COCO folders) cannot say that, and fitted on
   them the model learns that almost everything is true (their photos were picked for
   their labels).
3. Which tags does a photo show? The confidence threshold with the best F0.5 (precision
   counted twice: a wrong tag lands in a photographer's sidecars, a missing one is found
   by search) on the tagged sets, each photo's words ranked against the whole default
   vocabulary as a library ranks them; then the fallback, the highest confidence from
   which a photo's best word shows when no word reaches the threshold, such that at most
   2% of the validation photos show nothing.

Validation only: the held-out fold of the training split, tagged folders and COCO folders
given for checking; never a test split. The rule is written into the bundle's "tagging"
section with the figures it was chosen on.
"""

from __future__ import annotations

import functools
import shutil
import sysconfig
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .assets import asset_path, default_words, normalise_word
from .checkpoint import CONFIG_FILE, Bundle
from .datasets import Dataset, Split, held_out_fold, label_rows, load_dataset
from .datasets.tagged import groups as tagged_groups
from .embeddings import load_embeddings
from .errors import InputError
from .evaluate import semantic_vectors
from .features import default_cache, extract_features, list_digest
from .metrics import average_precision
from .model import score
from .tagrule import FEATURES, SeenWords, TagRule, Words, implied, implies_matrix, record_mass, top_classes
from .tokens import CachedTokens
from .wordnet import IMAGENET_CLASSES, implications, label_for, wordnet

THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.01))
FALLBACKS = tuple(round(t, 2) for t in np.arange(0.50, 0.0, -0.01))
EMPTY_SHARE = 0.02  # at most this part of the validation photos shows no tag
BETA = 0.5  # F-beta of the shown tags: precision weighs twice recall
# How far a label's own bias may stray from the shared one (prior SD, logits). 1.0, not the
# earlier 0.2: on everyday_tags, held out by word, precision at recall 0.35 rose from 0.464
# to 0.501; `sky` shows on 40 of its 88 photos instead of 32, `person` on 41 of 80, not 34.
SEEN_BIAS_SD = 1.0
LEVEL_QUANTILE = 0.9  # a word's library level (trainer.tagrule: over_level)


@dataclass
class ValidationSet:
    """One set of validation photos as a library sees it: every vocabulary word's raw score
    on every photo, the photos' recorded ImageNet classes, and labels for some words."""

    name: str
    words: list[str]  # the vocabulary ranked: the set's labelled words first
    raw: np.ndarray  # N x W raw scores
    labels: np.ndarray  # N x L in {+1, -1, 0} for the first L words; 0: not annotated
    model_labels: list[str | None]  # each word's model label (seen words), else None
    word_classes: list[np.ndarray]  # each word's ImageNet classes
    classes: np.ndarray | None  # N x 2 x K: the photos' best classes (indices over probabilities)
    exhaustive: bool  # every unmarked labelled word is absent (a tagged folder)
    groups: list[str] | None = None  # each photo's group, for per-group figures

    @property
    def labelled(self) -> int:
        return self.labels.shape[1]

    def words_of(self, rule: TagRule) -> Words:
        return Words(rule.levels(self.raw), self.model_labels, self.word_classes)

    def mass(self) -> np.ndarray | None:
        return None if self.classes is None else record_mass(self.classes, self.word_classes, IMAGENET_CLASSES)[0]

    @property
    def implied_by(self) -> list[list[int]]:
        return implications(tuple(self.words))

    @functools.cached_property
    def implies(self) -> np.ndarray:
        return implies_matrix(self.implied_by)

    def confidence(self, rule: TagRule) -> np.ndarray:
        """N x W confidences with implications, as a library of these photos computes them."""
        raw_confidence = rule.confidence(self.raw, self.words_of(rule), self.mass())
        return implied(raw_confidence, self.implied_by, rule.threshold)

    def kept(self, rule: TagRule, confidence: np.ndarray | None = None) -> np.ndarray:
        """N x W: the tags each photo shows under a rule, as a library of these photos shows them."""
        return rule.kept(self.confidence(rule) if confidence is None else confidence, self.implies)


def _counts(kept: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[right tags, judged tags, labelled positives, photos, tags shown, photos showing
    nothing] of shown tags against labels: ``kept``'s first columns are the labelled words,
    the rest (the vocabulary's other words) count only among the tags a photo shows."""
    judged = kept[:, : labels.shape[1]]
    return np.array(
        [
            (judged & (labels > 0)).sum(),
            (judged & (labels != 0)).sum(),  # a cell labelled 0 (not annotated) is neither right nor wrong
            (labels > 0).sum(),
            len(kept),
            kept.sum(),
            (~kept.any(axis=1)).sum(),
        ],
        dtype=np.int64,
    )


def _figures(counts: np.ndarray) -> dict[str, float]:
    right, judged, positives, photos, shown, nothing = (int(c) for c in counts)
    p = right / judged if judged else 0.0
    r = right / positives if positives else 0.0

    def f(beta: float) -> float:
        return (1 + beta**2) * p * r / (beta**2 * p + r) if right else 0.0

    return {
        "precision": p,
        "recall": r,
        "f1": f(1.0),
        "f_half": f(BETA),
        "shown_per_photo": shown / photos if photos else 0.0,
        "photos_showing_nothing": nothing,
    }


def figures(kept: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """What the shown tags of a set come to: P, R, F1 and F0.5 on its labelled words (the
    first columns of ``kept``), tags shown per photo and photos showing no tag at all."""
    return _figures(_counts(kept, labels))


def _logistic(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None, group_sd: float = 1.0, c: float = 1.0
) -> tuple[np.ndarray, float, np.ndarray]:
    """Logistic regression by L-BFGS, penalised as scikit-learn's ``LogisticRegression(C=c)``
    (|w|^2 / 2c, the bias free): weights, bias, and with ``groups`` a bias of each group's
    own with a Gaussian prior of SD ``group_sd`` around the shared one."""
    xt = torch.as_tensor(x, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.float64)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    count = 0 if groups is None else int(groups.max()) + 1
    g = torch.zeros(count, dtype=torch.float64, requires_grad=True)
    gt = None if groups is None else torch.as_tensor(groups, dtype=torch.long)
    optimiser = torch.optim.LBFGS([w, b, g], max_iter=500, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        z = xt @ w + b + (g[gt] if gt is not None else 0.0)
        value = torch.nn.functional.binary_cross_entropy_with_logits(z, yt, reduction="sum")
        value = value + (w**2).sum() / (2 * c) + (g**2).sum() / (2 * group_sd**2)
        value.backward()
        return value

    optimiser.step(loss)
    return w.detach().numpy(), float(b.item()), g.detach().numpy()


def fit_seen(raw: np.ndarray, labels: np.ndarray, names: list[str]) -> SeenWords:
    """Question 1 (module docstring): each label's calibration on held-out photos (raw: N x
    L scores, labels: N x L in {+1, -1, 0}), their level the quantile a library uses."""
    level = np.quantile(raw, LEVEL_QUANTILE, axis=0)
    annotated = labels != 0
    rows, cols = np.nonzero(annotated)
    x = np.stack([raw[rows, cols], raw[rows, cols] - level[cols]], axis=1)
    y = (labels[rows, cols] > 0).astype(np.float64)
    (slope, slope_over), bias, word_bias = _logistic(x, y, cols, SEEN_BIAS_SD)
    z = x @ np.array([slope, slope_over]) + bias + word_bias[cols]
    predicted = 1.0 / (1.0 + np.exp(-z))
    labelled = float(predicted[y > 0].mean()) if (y > 0).any() else 1.0
    words = {}
    for j, name in enumerate(names):
        words[name] = (float(word_bias[j]), float(average_precision(raw[:, [j]], labels[:, [j]])[0]))
    return SeenWords(float(slope), float(slope_over), float(bias), labelled, words)


def fit_confidence(sets: list[ValidationSet], seen: SeenWords | None) -> tuple[tuple[float, ...], float]:
    """Question 2: the logistic model over the evidence of the labelled words of exhaustively
    tagged sets."""
    xs, ys = [], []
    for s in sets:
        rule = TagRule(seen=seen, quantile=LEVEL_QUANTILE)
        words = s.words_of(rule)
        evidence = rule.evidence(s.raw[:, : s.labelled], _first(words, s.labelled), _first_mass(s.mass(), s.labelled))
        xs.append(evidence.reshape(-1, len(FEATURES)))
        ys.append((s.labels > 0).ravel().astype(np.float64))
    w, b, _ = _logistic(np.concatenate(xs), np.concatenate(ys))
    return tuple(float(v) for v in w), b


def _first(words: Words, n: int) -> Words:
    return Words(words.levels[:n], list(words.labels[:n]), list(words.classes[:n]))


def _first_mass(mass: np.ndarray | None, n: int) -> np.ndarray | None:
    return None if mass is None else mass[:, :n]


def choose_rule(
    tagged: list[ValidationSet], seen: SeenWords | None, max_tags: int = 10, siblings: str = "one"
) -> tuple[TagRule, dict[str, Any]]:
    """Questions 2 and 3 (module docstring): the rule, and the rows it was chosen from."""
    if not tagged:
        raise ValueError("choosing a tag rule needs at least one exhaustively tagged validation set")
    weights, bias = fit_confidence(tagged, seen)
    base = TagRule(weights, bias, None, None, max_tags, LEVEL_QUANTILE, seen, siblings)
    confidence = [s.confidence(base) for s in tagged]

    def shown(rule: TagRule) -> list[np.ndarray]:
        return [s.kept(rule, c) for s, c in zip(tagged, confidence)]

    def pooled(kept: list[np.ndarray]) -> dict[str, float]:
        return _figures(np.sum([_counts(k, s.labels) for k, s in zip(kept, tagged)], axis=0))

    grid = []
    for threshold in THRESHOLDS:
        row = pooled(shown(replace(base, threshold=threshold)))
        grid.append({"threshold": threshold, **row})
    best = max(grid, key=lambda r: (round(r["f_half"], 6), -r["threshold"]))
    rule = replace(base, threshold=best["threshold"])
    photos = sum(len(s.raw) for s in tagged)
    for fallback in FALLBACKS:
        if fallback > rule.threshold:  # type: ignore[operator]
            continue
        if pooled(shown(replace(rule, fallback=fallback)))["photos_showing_nothing"] <= EMPTY_SHARE * photos:
            rule = replace(rule, fallback=fallback)
            break
    report = {"threshold_grid": [{k: round(v, 5) for k, v in r.items()} for r in grid], "chosen": pooled(shown(rule))}
    return rule, report


def evaluate_rule(rule: TagRule, s: ValidationSet) -> dict[str, Any]:
    """The shown tags of one set under a rule, against its labels (and per group)."""
    kept = s.kept(rule)
    out: dict[str, Any] = figures(kept, s.labels)
    if s.groups:
        out["groups"] = {
            g: figures(kept[[x == g for x in s.groups]], s.labels[[x == g for x in s.groups]])
            for g in dict.fromkeys(s.groups)
        }
    return out


def validation_sets(
    bundle: Bundle,
    *,
    corel: str | Path | None = None,
    coco: str | Path | None = None,
    tagged: Sequence[str | Path] | None = None,
    cache: Path | None = None,
    workers: int = 2,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, list[ValidationSet]]:
    """The bundle's scores on each validation set asked for, by kind: "corel" (the fold its
    training held out), "coco" and "tagged"; every set ranked against the vocabulary a
    library of this model starts with. Tokens are cached in ``cache`` (default: the user
    cache dir)."""
    folder = cache or default_cache("calibration", bundle.backbone.get("name", ""), None)
    scoring = _Scoring(bundle, folder, workers, device, progress)
    out: dict[str, list[ValidationSet]] = {"corel": [], "coco": [], "tagged": []}
    for kind, name, data, split, groups in _wanted(bundle, corel, coco, tagged):
        out[kind].append(scoring.validation_set(kind, name, data, split, groups))
    return out


def _wanted(
    bundle: Bundle, corel: str | Path | None, coco: str | Path | None, tagged: Sequence[str | Path] | None
) -> list[tuple[str, str, Dataset, Split, list[str] | None]]:
    """(kind, name, dataset, the split's photos to score, each photo's group) of every set
    asked for, in the bundle's word space."""
    embeddings = bundle.embeddings.get("source")
    wanted: list[tuple[str, str, Dataset, Split, list[str] | None]] = []
    if corel is not None:
        train_cfg = bundle.training.get("config", {})
        data = load_dataset("corel5k", corel, mode="all-seen", embeddings=embeddings)
        _, rows = held_out_fold(
            len(data.train),
            train_cfg.get("val_fraction", 0.1),
            train_cfg.get("seed", 0),
            train_cfg.get("val_max", 20_000),
        )
        wanted.append(("corel", "corel5k-held-out", data, data.train.subset(rows), None))  # only those are read
    if coco is not None:
        data = load_dataset("coco", coco, embeddings=embeddings)
        wanted.append(("coco", f"coco-{Path(coco).name}", data, data.test, None))
    for folder in tagged or []:
        data = load_dataset("tagged", folder, embeddings=embeddings)
        wanted.append(("tagged", f"tagged-{Path(folder).name}", data, data.test, tagged_groups(Path(folder))))
    return wanted


class _Scoring:
    """A bundle's raw scores of a library's vocabulary on sets of photos, as a library of
    this model would have them."""

    def __init__(self, bundle: Bundle, cache: Path, workers: int, device: str | torch.device, progress: bool) -> None:
        self.bundle, self.cache, self.workers, self.device, self.progress = bundle, cache, workers, device, progress
        self.backbone = bundle.build_backbone(device=device)
        self.model = bundle.model.to(device)
        embeddings = bundle.embeddings.get("source")
        self.vectors = load_embeddings(embeddings) if embeddings else load_embeddings()
        self.table = bundle.label_table()
        self.labels = [normalise_word(w) for w in [*bundle.seen_labels, *bundle.unseen_labels]]
        self.seen = {normalise_word(w) for w in bundle.seen_labels}
        self.vocabulary = default_words(bundle.seen_labels, bundle.unseen_labels)
        self.wordnet = wordnet()

    def validation_set(
        self, kind: str, name: str, data: Dataset, split: Split, groups: list[str] | None
    ) -> ValidationSet:
        folder = self.cache / f"{name}-{list_digest(split.images)[:12]}"  # another fold or folder: another cache
        features = extract_features(
            split.images, self.backbone, folder, workers=self.workers, device=self.device, progress=self.progress
        )
        semantic, ok = semantic_vectors(
            self.model, CachedTokens(features, self.device), np.flatnonzero(features.ok), self.device
        )
        has_head = self.bundle.config.prior_classes == IMAGENET_CLASSES and features.logits.shape[1] == IMAGENET_CLASSES
        classes = top_classes(np.asarray(features.logits[ok], dtype=np.float32)) if has_head else None
        labelled = [normalise_word(w) for w in data.seen_labels]
        words = labelled + [w for w in self.vocabulary if w not in set(labelled) and w in self.vectors]
        model_labels = [label_for(w, self.labels) for w in words]
        # A word takes its model label's vector, as a library gives it (tagger.vocabulary.WordSource).
        word_vectors = np.stack(
            [self.table[m] if m in self.table else self.vectors.vector(w) for w, m in zip(words, model_labels)]
        )
        return ValidationSet(
            name,
            words,
            score(semantic, torch.from_numpy(word_vectors)).numpy(),
            label_rows(split.seen, ok),
            [m if m in self.seen else None for m in model_labels],
            [self.wordnet.classes(w) for w in words],
            classes,
            kind == "tagged",
            None if groups is None else [groups[i] for i in ok],
        )


def calibrate(sets: dict[str, list[ValidationSet]], max_tags: int = 10) -> tuple[TagRule, dict[str, Any]]:
    """The whole choice (module docstring): seen labels calibrated on the held-out fold
    ("corel"), the rule on the tagged sets; every set's shown tags under it in the report."""
    seen = None
    for s in sets.get("corel", [])[:1]:
        columns = [j for j in range(s.labelled) if s.model_labels[j] is not None]
        names = [s.model_labels[j] for j in columns]
        seen = fit_seen(s.raw[:, columns], s.labels[:, columns], names)  # type: ignore[arg-type]
    rule, report = choose_rule(sets.get("tagged", []), seen, max_tags)
    every = [s for kind in ("tagged", "corel", "coco") for s in sets.get(kind, [])]
    report["sets"] = {s.name: evaluate_rule(rule, s) for s in every}
    return rule, report


def check_destination(bundle: Path, write: bool, write_to: Path | None) -> Path | None:
    """Where a chosen rule is to be written (None: nowhere), checked before hours of work:
    the installed model only when named as the destination, a folder that can be written,
    nothing overwritten."""
    if write and write_to is not None:
        raise InputError("give --write (into BUNDLE) or --write-to DIR, not both")
    if write_to is None:
        if not write:
            return None
        if _installed(bundle):
            raise InputError(
                f"{bundle} is the model installed with epsilon-tag: its new rule would change the tags of every "
                "library on it at its next scan. Write a copy: --write-to DIR (then scan with --model DIR), or "
                f"name it on purpose: --write-to {bundle}"
            )
        write_to = bundle
    elif write_to.resolve() != bundle.resolve() and write_to.exists() and any(write_to.iterdir()):
        raise InputError(f"{write_to} is not empty: --write-to needs a new or empty folder (or BUNDLE itself)")
    if write_to.resolve() == bundle.resolve() and not bundle.is_dir():
        return write_to  # no bundle there: loading it says so
    created = not write_to.exists()
    try:
        write_to.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=write_to).close()  # the rule is written by a rename in this folder
    except OSError as exc:
        raise InputError(
            f"cannot write to {write_to}: {exc.strerror or exc}; give a folder you can write: --write-to DIR"
        ) from exc
    if created:
        write_to.rmdir()  # made at the end, with the copy: a run that fails leaves no empty folder
    return write_to


def _installed(bundle: Path) -> bool:
    """Whether ``bundle`` is the model shipped with epsilon-tag (in the checkout or installed)."""
    places = [Path(sysconfig.get_path(kind)).resolve() for kind in ("purelib", "platlib")]
    where = bundle.resolve()
    return where == asset_path("default").resolve() or any(where.is_relative_to(p) for p in places)


def write_rule(
    bundle: Path, destination: Path, rule: TagRule, report: dict[str, Any], sets: dict[str, list[ValidationSet]]
) -> Path:
    """The bundle at ``destination`` (a copy of ``bundle`` unless it is the same folder) with
    the rule in its tagging section, and the sets it was chosen on; its config file."""
    if destination.resolve() != bundle.resolve():
        shutil.copytree(bundle, destination, dirs_exist_ok=True)
    chosen_on = [s.name for kind in ("tagged", "corel") for s in sets[kind]]
    Bundle.update_config(destination, tagging={**rule.to_dict(), "chosen_on": chosen_on, "validation": report})
    return destination / CONFIG_FILE


def format_rule(rule: TagRule, report: dict) -> str:
    """The chosen rule, then every validation set's shown tags under it (and per group)."""
    lines = [
        "confidence weights: " + ", ".join(f"{k} {v:+.3f}" for k, v in rule.to_dict()["weights"].items()),
        f"  bias {rule.bias:+.3f}; seen labels calibrated: {len(rule.seen.words) if rule.seen else 0}",
        f"chosen: show tags from confidence {rule.threshold:.2f} (best F0.5 on the tagged sets), a photo's best "
        f"from {rule.fallback if rule.fallback is not None else 'never'}, at most {rule.max_tags}"
        + (", one of sibling words" if rule.siblings == "one" else ""),
        f"{'set':<28} {'P':>6} {'R':>6} {'F1':>6} {'shown':>6} {'none':>5}",
    ]
    for name, row in report["sets"].items():
        for label, cells in [(name, row), *((f"  {g}", c) for g, c in row.get("groups", {}).items())]:
            lines.append(
                f"{label:<28} {cells['precision']:6.3f} {cells['recall']:6.3f} {cells['f1']:6.3f} "
                f"{cells['shown_per_photo']:6.2f} {cells['photos_showing_nothing']:5d}"
            )
    return "\n".join(lines)
