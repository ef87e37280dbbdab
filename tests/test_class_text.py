"""ImageNet classes put into words: names, lemmas and definitions, against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.class_text import ClassText, class_vector, class_vectors, definition_words, imagenet_classes
from trainer.embeddings import load_embeddings


@pytest.fixture(scope="module")
def glove():
    return load_embeddings()


def unit(v):
    return v / np.linalg.norm(v)


def test_timm_ships_the_lemmas_and_definitions():
    classes = imagenet_classes()
    assert len(classes) == 1000
    assert classes[281] == (("tabby", "tabby cat"), "a cat with a grey or tawny coat mottled with black")
    assert classes[948][0] == ("Granny Smith",) and classes[948][1].startswith("apple with a green skin")


def test_definition_words_drop_stop_words_and_unknown_tokens(glove):
    assert definition_words("a cat with a grey or tawny coat mottled with black", glove) == [
        "cat",
        "grey",
        "tawny",
        "coat",
        "mottled",
        "black",
    ]
    assert definition_words("plaything consisting of a child's toy bear", glove) == [
        "plaything",
        "consisting",
        "child",
        "toy",
        "bear",
    ]


def test_class_vector_by_hand(glove):
    lemmas, definition = ("tabby", "tabby cat"), "a cat with a grey or tawny coat mottled with black"
    names = unit(np.mean([glove.vector("tabby"), unit(glove.vector("tabby") + glove.vector("cat"))], axis=0))
    described = unit(np.mean([glove.vector(w) for w in ("cat", "grey", "tawny", "coat", "mottled", "black")], axis=0))
    np.testing.assert_allclose(
        class_vector(lemmas, definition, glove, ClassText("lemmas", 1.0)), unit(names + described), atol=1e-6
    )
    np.testing.assert_allclose(
        class_vector(lemmas, definition, glove, ClassText("lemmas", 0.5)), unit(names + 0.5 * described), atol=1e-6
    )
    np.testing.assert_allclose(
        class_vector(lemmas, definition, glove, ClassText("first")), glove.vector("tabby"), atol=1e-6
    )


def test_a_class_no_word_describes_cannot_vote(glove):
    assert not class_vector(("Xqzzyx Zzqqxvw",), "", glove, ClassText("lemmas", 1.0)).any()
    # A name with no vector is skipped; the class's other names still describe it.
    np.testing.assert_allclose(
        class_vector(("tench", "Zzqqxvw zzqqxvw"), "", glove, ClassText("lemmas")), glove.vector("tench"), atol=1e-6
    )


def test_definitions_name_the_animal_the_first_name_does_not(glove):
    first, text = class_vectors(glove, ClassText("first")), class_vectors(glove, ClassText("lemmas", 1.0))
    cat = glove.vector("cat")
    assert text[281] @ cat > first[281] @ cat + 0.1  # "tabby" alone is far from "cat"
    assert (np.linalg.norm(text, axis=1) > 0).all()  # every class is described by some word
    with pytest.raises(ValueError, match="class naming"):
        ClassText("all")
