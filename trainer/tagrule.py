"""How raw scores become the tags a photo shows: a hubness correction, then a calibrated rule.

Zero-shot scoring has hubs: a few words (``snake``, ``hot dog``) sit close to many photos'
semantic vectors and top them whatever they show. The correction subtracts a part of each
word's mean score over the library, ``c = s - strength * mean_w``: a word that scores high
on every photo loses that common part, a word that stands out on one photo keeps it. A
full correction (strength 1) would also flatten words that really are common (sky, people),
so the strength is chosen on labelled validation photos (trainer.calibrate) together with
the score a tag must reach to be kept (``min_score``); both ship in the model bundle's
"tagging" section, and the tagger applies exactly this rule.

The correction is per word and monotonic, so it never changes which photos rank first for
a word: search order is the model's; what changes is which words a photo keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TagRule:
    """``strength``: the part of a word's library mean subtracted from its scores (0: raw
    cosines). ``min_score``: the corrected score a tag needs to be shown (None: every
    stored tag). ``max_tags``: how many best words a photo keeps at most."""

    strength: float = 0.0
    min_score: float | None = None
    max_tags: int = 10

    @classmethod
    def from_dict(cls, data: dict | None) -> TagRule:
        data = data or {}
        return cls(
            float(data.get("strength", 0.0)),
            None if data.get("min_score") is None else float(data["min_score"]),
            int(data.get("max_tags", 10)),
        )

    def to_dict(self) -> dict:
        return {"strength": self.strength, "min_score": self.min_score, "max_tags": self.max_tags}

    def correct(self, raw: np.ndarray, means: np.ndarray) -> np.ndarray:
        """Corrected scores: ``raw`` (N x W) minus strength times each word's mean (W)."""
        if not self.strength:
            return raw
        return raw - np.float32(self.strength) * np.asarray(means, dtype=np.float32)[None, :]

    def kept(self, corrected: np.ndarray) -> np.ndarray:
        """N x W booleans: the tags a photo shows, its ``max_tags`` best at or above ``min_score``."""
        k = min(self.max_tags, corrected.shape[1])
        top = np.zeros(corrected.shape, dtype=bool)
        if k:
            np.put_along_axis(top, np.argpartition(-corrected, k - 1, axis=1)[:, :k], True, axis=1)
        return top if self.min_score is None else top & (corrected >= self.min_score)
