"""How raw scores become the tags a photo shows: a hubness correction, then a calibrated rule.

Zero-shot scoring has hubs: a few words (``snake``, ``hot dog``) sit close to many photos'
semantic vectors and top them whatever they show. The correction subtracts a part of each
word's level over the library, ``c = s - strength * level_w``: a word that scores high on
every photo loses that common part, a word that stands out on one photo keeps it. The
level is the word's mean score, or a quantile of its scores (``quantile`` 0.9: the score
it reaches on its best tenth of the photos): a hub scores high on the photos it fits too
(``snake`` on a lizard), which an upper quantile prices and the mean, pulled down by the
many photos it does not fit, does not. A full correction (strength 1) would also flatten
words that really are common (sky, people), so the statistic and the strength are chosen
on labelled validation photos (trainer.calibrate) together with the score a tag must reach
to be kept (``min_score``); all ship in the model bundle's "tagging" section, and the
tagger applies exactly this rule.

The correction is per word and monotonic, so it never changes which photos rank first for
a word: search order is the model's; what changes is which words a photo keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class TagRule:
    """``strength``: the part of a word's library level subtracted from its scores (0: raw
    cosines). ``min_score``: the corrected score a tag needs to be shown (None: every
    stored tag). ``max_tags``: how many best words a photo keeps at most. ``quantile``:
    which level, None for the mean (what a rule without one, from an older bundle, meant)."""

    strength: float = 0.0
    min_score: float | None = None
    max_tags: int = 10
    quantile: float | None = None

    def __post_init__(self) -> None:
        if self.quantile is not None and not 0.0 <= self.quantile <= 1.0:
            raise InputError(
                f"a tag rule's quantile lies between 0 and 1, not {self.quantile} (the model bundle's tagging section)"
            )

    @classmethod
    def from_dict(cls, data: dict | None) -> TagRule:
        data = data or {}
        return cls(
            float(data.get("strength", 0.0)),
            None if data.get("min_score") is None else float(data["min_score"]),
            int(data.get("max_tags", 10)),
            None if data.get("quantile") is None else float(data["quantile"]),
        )

    def to_dict(self) -> dict:
        return {
            "strength": self.strength,
            "min_score": self.min_score,
            "max_tags": self.max_tags,
            "quantile": self.quantile,
        }

    def levels(self, raw: np.ndarray) -> np.ndarray:
        """Each word's level over the photos (N x W raw scores -> W): its mean, or its quantile."""
        if len(raw) == 0:
            return np.zeros(raw.shape[1], np.float32)
        if self.quantile is None:
            return raw.mean(axis=0, dtype=np.float64).astype(np.float32)
        return np.quantile(raw, self.quantile, axis=0).astype(np.float32)

    def correct(self, raw: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """Corrected scores: ``raw`` (N x W) minus strength times each word's level (W)."""
        if not self.strength:
            return raw
        return raw - np.float32(self.strength) * np.asarray(levels, dtype=np.float32)[None, :]

    def kept(self, corrected: np.ndarray) -> np.ndarray:
        """N x W booleans: the tags a photo shows, its ``max_tags`` best at or above ``min_score``."""
        k = min(self.max_tags, corrected.shape[1])
        top = np.zeros(corrected.shape, dtype=bool)
        if k:
            np.put_along_axis(top, np.argpartition(-corrected, k - 1, axis=1)[:, :k], True, axis=1)
        return top if self.min_score is None else top & (corrected >= self.min_score)
