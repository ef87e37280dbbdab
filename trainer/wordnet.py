"""WordNet 3.0's nouns, cut down to what tagging needs: which senses a word has, what lies
above each sense, and which of the backbone's ImageNet classes lie below it.

ImageNet-1k's classes are WordNet noun synsets, so WordNet says that a goldfinch is a
finch, a bird, an animal: a confident ImageNet class is evidence for every general word
above it, and a vocabulary word implies the vocabulary words above it (duck -> bird ->
animal, lake -> water, people -> person, a group implying its members).

A word means its *main* senses: WordNet lists senses commonest first, and a sense counts
when its count in WordNet's tagged corpus (cntlist) is at least a tenth of the commonest
sense's (the first always counts), or when it is an ImageNet class the word names (in a
photo, "hot dog" is the sandwich of ImageNet's class, not the sausage texts mostly mean).
"dog" is the animal, not the frankfurter; "plant" is both the factory and the flora, as
the corpus has it.

The table ships in assets/wordnet/ (built once by ``python -m trainer.wordnet build``
from Debian's wordnet-base; WordNet 3.0 licence in assets/wordnet/LICENSE). Nothing reads
WordNet itself at run time. It loads in a few milliseconds, numpy arrays only.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .assets import asset_path, normalise_word

TABLE = ("wordnet", "nouns.npz")
# A sense is one of a word's main senses when its corpus count is at least this part of
# the commonest sense's (module docstring).
MAIN_SHARE = 0.10
_GROUPS = 14  # WordNet's lexicographer file noun.group
IMAGENET_CLASSES = 1000  # the backbone head whose classes the table maps (ImageNet-1k)


class WordNet:
    """The shipped table: lemmas -> main senses, senses -> parents (hypernyms and the groups
    whose members they are), and the ImageNet classes' senses."""

    def __init__(self, path: Path | None = None) -> None:
        data = np.load(path or asset_path(*TABLE))
        self.lemmas = {w: i for i, w in enumerate(data["lemmas"].tobytes().decode().split("\n"))}
        self._senses = (data["sense_ptr"], data["senses"])
        self._parents = (data["parent_ptr"], data["parents"])
        self._members = (data["member_ptr"], data["members"])
        self._lexfile = data["lexfile"]
        self.imagenet = data["imagenet"]  # synset row of each ImageNet class, in the head's order
        exceptions = data["exceptions"].tobytes().decode().split("\n")
        self.exceptions = dict(zip(exceptions[::2], exceptions[1::2]))

    @staticmethod
    def _row(table: tuple[np.ndarray, np.ndarray], i: int) -> np.ndarray:
        ptr, values = table
        return values[ptr[i] : ptr[i + 1]]

    def senses(self, word: str) -> list[int]:
        """The main senses of a word or phrase (a plural finds its singular), as synset rows."""
        for form in _forms(word, self.exceptions):
            row = self.lemmas.get(form)
            if row is not None:
                return self._row(self._senses, row).tolist()
        return []

    @functools.lru_cache(maxsize=65536)  # noqa: B019  (one table per process, never freed)
    def above(self, synset: int) -> frozenset[int]:
        """A synset and everything above it (hypernyms and instance hypernyms): what it is a kind of."""
        return self._closure(synset, (self._parents,))

    @functools.lru_cache(maxsize=65536)  # noqa: B019
    def _with_members(self, synset: int) -> frozenset[int]:
        return self._closure(synset, (self._parents, self._members))

    def _closure(self, synset: int, tables: tuple[tuple[np.ndarray, np.ndarray], ...]) -> frozenset[int]:
        seen: set[int] = set()
        todo = [synset]
        while todo:
            s = todo.pop()
            if s not in seen:
                seen.add(s)
                for table in tables:
                    todo.extend(self._row(table, s).tolist())
        return frozenset(seen)

    def implied_by(self, word: str) -> list[set[int]]:
        """For each main sense of ``word``, what a photo of it also shows: everything above
        it, and, for a word that only ever means a group, its members and what is above them
        (people -> person -> organism). A word with another sense besides a group ("church":
        the congregation and the building) implies no members."""
        senses = self.senses(word)
        group = bool(senses) and all(self._lexfile[s] == _GROUPS for s in senses)
        closure = self._with_members if group else self.above
        return [set(closure(s) - {s}) for s in senses]

    def implies(self, word: str, other: str) -> bool:
        """Whether a photo showing ``word`` shows ``other``: every main sense of ``word``
        implies a main sense of ``other`` (duck -> bird, lake -> water, people -> person;
        not "cherry" -> tree, which is also the fruit)."""
        targets = set(self.senses(other))
        implied = self.implied_by(word)
        return bool(targets) and bool(implied) and all(targets & each for each in implied)

    def classes(self, word: str) -> np.ndarray:
        """The ImageNet classes (head indices) lying at or below a main sense of ``word``."""
        senses = set(self.senses(word))
        if not senses:
            return np.zeros(0, np.int16)
        return np.array([c for c, s in enumerate(self.imagenet.tolist()) if senses & self.above(s)], dtype=np.int16)

    def concept(self, word: str) -> str:
        """One key per concept: the word's first main sense, else its singular form, so that
        plurals and synonyms of one thing fold together (cars -> car, bike -> bicycle)."""
        senses = self.senses(word)
        if senses:
            return f"wn:{senses[0]}"
        return next(iter(_forms(word, self.exceptions)))


def _forms(word: str, exceptions: dict[str, str]) -> Iterable[str]:
    """The word as WordNet writes lemmas, then its base forms (WordNet's own irregular
    plurals, then its suffix rules), most likely first."""
    key = normalise_word(word).replace(" ", "_")
    yield key
    if key in exceptions:
        yield exceptions[key]
    for suffix, ending in (("ies", "y"), ("ches", "ch"), ("shes", "sh"), ("xes", "x"), ("ses", "s"), ("men", "man")):
        if key.endswith(suffix):
            yield key[: -len(suffix)] + ending
    if key.endswith("s") and not key.endswith("ss"):
        yield key[:-1]


@functools.lru_cache(maxsize=1)
def wordnet() -> WordNet:
    """The shipped table, loaded once per process."""
    return WordNet()


@functools.lru_cache(maxsize=8)
def _labels_by_concept(labels: tuple[str, ...]) -> dict[str, str]:
    net = wordnet()
    out: dict[str, str] = {}
    for label in labels:
        out.setdefault(net.concept(label), label)
    return out


def label_for(word: str, labels: Sequence[str]) -> str | None:
    """The model label a word is: itself, or a label of the same concept (the word "boat"
    is the label "boats"; "airplane" is "plane"), else None."""
    key = normalise_word(word)
    if key in labels:
        return key
    return _labels_by_concept(tuple(labels)).get(wordnet().concept(key)) if labels else None


@functools.lru_cache(maxsize=8)
def implications(words: tuple[str, ...]) -> list[list[int]]:
    """For each word, the positions of the other words that imply it (``WordNet.implies``:
    its hyponyms and members among ``words``): a photo showing one of those shows this word
    too. Words of one concept (a plural beside its singular) do not imply each other: they
    are one tag."""
    net = wordnet()
    holders: dict[int, set[int]] = {}  # synset -> the words one of whose main senses it is
    for b, word in enumerate(words):
        for s in net.senses(word):
            holders.setdefault(s, set()).add(b)
    out: list[list[int]] = [[] for _ in words]
    for a, word in enumerate(words):
        per_sense = [set().union(*(holders.get(s, set()) for s in implied)) for implied in net.implied_by(word)]
        if not per_sense:
            continue
        concept = net.concept(word)
        for b in sorted(set.intersection(*per_sense)):
            if b != a and net.concept(words[b]) != concept:
                out[b].append(a)
    return out


# ---- building the table from WordNet's own files (once, by hand) ------------------------


def build(wordnet_dir: str | Path, out: str | Path, imagenet_ids: Sequence[str]) -> None:
    """Derive the table from a WordNet 3.0 ``dict`` folder (Debian: /usr/share/wordnet):
    every noun synset's parents (``@`` hypernyms, ``@i`` instance hypernyms) and members
    (``%m``: people has member person), every noun lemma's main senses, the irregular plurals, and
    the synset of each ImageNet class (``imagenet_ids``: "n01531178"...)."""
    folder = Path(wordnet_dir)
    offsets, parents, members, lexfiles = _read_synsets(folder)
    row = {o: i for i, o in enumerate(offsets)}
    lemmas, senses = _main_senses(folder, row, {w.lstrip("n") for w in imagenet_ids})
    exceptions = []
    for line in (folder / "noun.exc").read_text(encoding="latin-1").splitlines():
        inflected, base = line.split()[:2]
        exceptions += [inflected, base]
    np.savez_compressed(
        out,
        lemmas=np.frombuffer("\n".join(lemmas).encode(), dtype=np.uint8),
        sense_ptr=np.cumsum([0] + [len(s) for s in senses]).astype(np.int32),
        senses=np.array([s for ss in senses for s in ss], dtype=np.int32),
        parent_ptr=np.cumsum([0] + [len(parents[o]) for o in offsets]).astype(np.int32),
        parents=np.array([row[p] for o in offsets for p in parents[o]], dtype=np.int32),
        member_ptr=np.cumsum([0] + [len(members[o]) for o in offsets]).astype(np.int32),
        members=np.array([row[m] for o in offsets for m in members[o]], dtype=np.int32),
        lexfile=np.array(lexfiles, dtype=np.uint8),
        imagenet=np.array([row[w.lstrip("n")] for w in imagenet_ids], dtype=np.int32),
        exceptions=np.frombuffer("\n".join(exceptions).encode(), dtype=np.uint8),
    )


def _read_synsets(folder: Path) -> tuple[list[str], dict[str, list[str]], dict[str, list[str]], list[int]]:
    """data.noun: every synset's offset, its parents and members (offsets), its lexicographer file."""
    offsets: list[str] = []
    parents: dict[str, list[str]] = {}
    members: dict[str, list[str]] = {}
    lexfiles: list[int] = []
    for line in (folder / "data.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):  # the licence header
            continue
        fields = line.split(" | ")[0].split()
        offset, words = fields[0], int(fields[3], 16)
        at = 4 + 2 * words
        ups, group = [], []
        for p in range(int(fields[at])):
            symbol, target, pos = fields[at + 1 + 4 * p : at + 4 + 4 * p]
            if pos == "n" and symbol in ("@", "@i"):
                ups.append(target)
            elif pos == "n" and symbol == "%m":
                group.append(target)
        offsets.append(offset)
        lexfiles.append(int(fields[1]))
        parents[offset], members[offset] = ups, group
    return offsets, parents, members, lexfiles


def _main_senses(folder: Path, row: dict[str, int], classes: set[str]) -> tuple[list[str], list[list[int]]]:
    """index.noun and cntlist.rev: every noun lemma and the rows of its main senses."""
    counts: dict[str, dict[int, int]] = {}
    for line in (folder / "cntlist.rev").read_text(encoding="latin-1").splitlines():
        key, number, count = line.split()
        lemma, _, rest = key.partition("%")
        if rest.startswith("1:"):
            counts.setdefault(lemma, {})[int(number) - 1] = int(count)
    lemmas, senses = [], []
    for line in (folder / "index.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue
        fields = line.split()
        lemma, pointer_count = fields[0], int(fields[3])
        synsets = fields[4 + pointer_count + 2 :]
        tally = counts.get(lemma, {})
        top = max(tally.values(), default=0)
        # A sense common in WordNet's tagged corpus, or an ImageNet class the word names:
        # in photos, "hot dog" is the sandwich the backbone knows, whatever texts mean by it.
        main = [
            s for k, s in enumerate(synsets) if k == 0 or (top and tally.get(k, 0) >= MAIN_SHARE * top) or s in classes
        ]
        lemmas.append(lemma)
        senses.append([row[s] for s in main])
    return lemmas, senses


def _main(argv: Sequence[str]) -> None:
    if len(argv) != 2 or argv[0] != "build":
        raise SystemExit("usage: python -m trainer.wordnet build WORDNET_DICT_FOLDER  (Debian: /usr/share/wordnet)")
    from timm.data import ImageNetInfo  # 1.3 s of imports, for this build script only

    info = ImageNetInfo()
    out = asset_path(*TABLE)
    build(argv[1], out, [info.index_to_label_name(i) for i in range(info.num_classes())])
    print(f"wrote {out}")


if __name__ == "__main__":
    _main(sys.argv[1:])
