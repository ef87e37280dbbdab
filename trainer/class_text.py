"""The backbone's 1,000 ImageNet classes put into words, as vectors in a word space.

ConSE, the distillation teacher and the prior row of S all turn the backbone's ImageNet
head into a point in word space, so how a class is put into words decides what they know.
timm ships every class's WordNet lemmas ("tabby, tabby cat") and definition ("a cat with a
grey or tawny coat mottled with black"): the first name alone ("tabby", "Chihuahua")
rarely says "cat" or "dog", the definition does. Everything here is read offline from
timm's own files.
"""

from __future__ import annotations

import contextlib
import functools
import re
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from .config import ClassText as ClassText  # a setting of a run, defined with the others
from .embeddings import UnknownWordError, WordVectors, load_embeddings
from .errors import InputError

# timm (1.3 s of imports) and gensim are read when a class is first put into words, not when
# a command that never does so imports this.
if TYPE_CHECKING:  # the datasets import torch
    from .datasets import Dataset

_WORD = re.compile(r"[a-z]+")


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[tuple[tuple[str, ...], str], ...]:
    """Each ImageNet-1k class (in the backbone head's order) as (lemmas, definition)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    out = []
    for i in range(info.num_classes()):
        lemmas = info.index_to_description(i)
        # The detailed description is "<lemmas>: <definition>" (timm's public API).
        definition = info.index_to_description(i, detailed=True)[len(lemmas) + 2 :]
        out.append((tuple(n.strip() for n in lemmas.split(",") if n.strip()), definition))
    return tuple(out)


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from gensim.parsing.preprocessing import STOPWORDS

    return frozenset(STOPWORDS)


def definition_words(definition: str, vectors: WordVectors) -> list[str]:
    """The words of a definition that carry meaning: lower-cased alphabetic tokens known
    to the word vectors, without stop words (and without one-letter leftovers of "'s")."""
    stop = _stop_words()
    return [w for w in _WORD.findall(definition.lower()) if len(w) > 1 and w not in stop and vectors.row(w) is not None]


def _unit_mean(rows: list[np.ndarray]) -> np.ndarray | None:
    if not rows:
        return None
    mean = np.mean(rows, axis=0)
    norm = np.linalg.norm(mean)
    return mean / norm if norm > 0 else None


def _names(lemmas: tuple[str, ...], text: ClassText) -> tuple[str, ...]:
    if text.naming == "photo":
        return (f"a photo of a {lemmas[0]}",)
    return lemmas[:1] if text.naming == "first" else lemmas


def _definition_vector(definition: str, vectors: WordVectors) -> np.ndarray | None:
    if getattr(vectors, "encodes_text", False):  # a sentence encoder reads the definition whole
        return _unit_mean([vectors.vector(definition)]) if definition.strip() else None
    words = definition_words(definition, vectors)
    return _unit_mean([np.asarray(vectors.vectors[vectors.row(w)]) for w in words])


def class_vector(lemmas: tuple[str, ...], definition: str, vectors: WordVectors, text: ClassText) -> np.ndarray:
    """One class's unit vector, or zeros where no word of it is known (it cannot vote)."""
    names = _names(lemmas, text)
    known = []
    for name in names:
        # A Latin name ("Tinca tinca") has no vector; the class's other names may.
        with contextlib.suppress(UnknownWordError):
            known.append(vectors.vector(name, strict=False))
    parts = [_unit_mean(known)]
    if text.definition:
        described = _definition_vector(definition, vectors)
        parts.append(None if described is None else text.definition * described)
    parts = [p for p in parts if p is not None]
    total = _unit_mean([functools.reduce(np.add, parts)]) if parts else None
    return np.zeros(vectors.dim, np.float32) if total is None else total.astype(np.float32)


def class_vectors(vectors: WordVectors, text: ClassText = ClassText()) -> np.ndarray:
    """The 1,000 ImageNet classes as unit vectors (1000 x dim; zero rows for classes no
    known word describes)."""
    classes = imagenet_classes()
    if getattr(vectors, "encodes_text", False):  # every text encoded in batches first, not one by one
        wanted = [[*_names(lemmas, text), *([definition] if text.definition else [])] for lemmas, definition in classes]
        vectors.matrix([t for texts in wanted for t in texts if t.strip()])
    return np.stack([class_vector(lemmas, definition, vectors, text) for lemmas, definition in classes])


def dataset_imagenet_vectors(dataset: Dataset, why: str, text: ClassText = ClassText()) -> np.ndarray:
    """The ImageNet class vectors in a dataset's word space (which must know words)."""
    source = dataset.embeddings.get("source", "")
    try:
        vectors = load_embeddings(source)
    except FileNotFoundError as exc:
        raise InputError(
            f"{why} needs word-level vectors to name ImageNet classes; {source} has none: "
            "pass --embeddings glove-6b-50d"
        ) from exc
    return class_vectors(vectors, text)
