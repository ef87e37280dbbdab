"""WordNet's nouns as the tagger reads them: what a word implies, which ImageNet classes lie
below it, one concept per thing, and the shipped table as WordNet itself gives it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from timm.data import ImageNetInfo

from trainer.wordnet import build, implications, label_for, wordnet

INFO = ImageNetInfo()


def class_of(name: str) -> int:
    return next(i for i in range(1000) if INFO.index_to_description(i).split(",")[0] == name)


@pytest.mark.parametrize(
    "word, other",
    [
        ("duck", "bird"),
        ("duck", "animal"),  # through bird
        ("goldfinch", "bird"),
        ("lake", "water"),
        ("apple", "fruit"),
        ("people", "person"),  # a group shows its members
        ("house", "building"),
        ("pigeons", "bird"),  # a plural means its singular
    ],
)
def test_a_word_implies_the_words_above_it(word, other):
    assert wordnet().implies(word, other)


@pytest.mark.parametrize(
    "word, other",
    [
        ("bird", "duck"),  # not downwards
        ("elephant", "bird"),  # not sideways
        ("person", "people"),  # one person is not a group
        ("church", "person"),  # a building too, not only the congregation
        ("cherry", "tree"),  # also the fruit: not every sense is a tree
        ("cherry", "fruit"),  # also the tree
        ("car", "car"),  # a word does not imply itself
        ("zzqxj", "animal"),  # unknown to WordNet: implies nothing
    ],
)
def test_a_word_implies_nothing_that_one_of_its_senses_is_not(word, other):
    assert not wordnet().implies(word, other)


def test_imagenet_classes_lie_below_a_words_main_senses():
    net = wordnet()
    bird = set(net.classes("bird").tolist())
    assert class_of("goldfinch") in bird and class_of("ostrich") in bird and len(bird) == 59
    dog = set(net.classes("dog").tolist())
    assert class_of("beagle") in dog and len(dog) == 118
    assert class_of("hotdog") not in dog  # "dog" the frankfurter is not a main sense
    assert class_of("hotdog") in set(net.classes("hot dog").tolist())
    assert set(net.classes("birds").tolist()) == bird  # a plural: its singular's classes
    assert len(net.classes("sky")) == 0 and len(net.classes("zzqxj")) == 0


def test_one_concept_for_forms_and_synonyms_of_one_thing():
    net = wordnet()
    assert net.concept("cars") == net.concept("car") == net.concept("automobile")
    assert net.concept("boats") == net.concept("boat") != net.concept("ship")
    assert net.concept("women") == net.concept("woman")  # WordNet's own irregular plurals
    assert net.concept("zzqxj") == "zzqxj"  # unknown: itself
    labels = ["boats", "plane", "sky"]
    assert label_for("boat", labels) == "boats" and label_for("airplane", labels) == "plane"
    assert label_for("sky", labels) == "sky" and label_for("zeppelin", labels) is None


def test_implications_among_a_vocabulary():
    words = ("animal", "bird", "duck", "ducks", "sky", "water", "lake", "person", "people")
    implied_by = implications(words)
    by_name = {words[b]: sorted(words[a] for a in below) for b, below in enumerate(implied_by)}
    assert by_name["animal"] == ["bird", "duck", "ducks"]
    assert by_name["bird"] == ["duck", "ducks"]
    assert by_name["duck"] == [] and by_name["ducks"] == []  # one concept: no lift between them
    assert by_name["water"] == ["lake"] and by_name["person"] == ["people"] and by_name["sky"] == []


def test_the_shipped_table_is_wordnet_itself(tmp_path):
    folder = Path("/usr/share/wordnet")
    if not (folder / "data.noun").exists():
        pytest.skip("WordNet 3.0 (Debian's wordnet-base) is not installed here")
    from trainer.assets import asset_path

    out = tmp_path / "nouns.npz"
    build(folder, out, [INFO.index_to_label_name(i) for i in range(1000)])
    shipped, rebuilt = np.load(asset_path("wordnet", "nouns.npz")), np.load(out)
    assert sorted(shipped.files) == sorted(rebuilt.files)
    for name in shipped.files:
        np.testing.assert_array_equal(shipped[name], rebuilt[name], err_msg=name)
