"""Word vectors: offline GloVe, local files, fixed label tables, phrases, unknown words."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import DATA, require
from trainer.embeddings import UnknownWordError, edits, label_table, load_embeddings


@pytest.fixture(scope="module")
def glove():
    return load_embeddings("glove-6b-50d")


def unit(v):
    return v / np.linalg.norm(v)


def test_glove_loads_offline_with_sensible_neighbours(glove):
    assert glove.dim == 50 and len(glove) == 400_000
    top3 = [w for w, _ in glove.neighbours("sunset", 3)]
    assert "sunrise" in top3
    assert glove.vector("sunset") @ glove.vector("sunrise") > glove.vector("sunset") @ glove.vector("boat")
    assert "ship" in [w for w, _ in glove.neighbours("boat", 5)]


def test_vectors_are_unit_length(glove):
    matrix = glove.matrix(["sky", "polar bear", "F-16", "Sprenger's tulip"], strict=False)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-5)


def test_multi_word_label_is_the_mean_of_its_words(glove):
    expected = unit(unit(glove.vectors[glove.row("polar")]) + unit(glove.vectors[glove.row("bear")]))
    np.testing.assert_allclose(glove.vector("polar bear"), expected, rtol=1e-5, atol=1e-6)
    assert glove.tokens("f-16") == ["f-16"]  # a hyphenated word GloVe knows stays whole
    assert glove.tokens("Sprenger's tulip", strict=False) == ["sprenger", "tulip"]


def test_unknown_word_names_nearest_spellings(glove):
    with pytest.raises(UnknownWordError) as error:
        glove.vector("sunsett")
    assert "sunset" in error.value.suggestions
    assert "'sunsett' is not in the word vectors" in str(error.value) and "Did you mean" in str(error.value)
    with pytest.raises(UnknownWordError, match="bearr"):
        glove.vector("polar bearr")
    assert glove.tokens("polar bearr", strict=False) == ["polar"]
    assert "polar bearr" not in glove and "polar bear" in glove


@pytest.mark.parametrize(
    "a, b, distance",
    [("dgo", "dog", 1), ("wtaer", "water", 1), ("elefant", "elephant", 2), ("kitten", "sitting", 3), ("", "ab", 2)],
)
def test_edit_distance_counts_a_swap_as_one_edit(a, b, distance):
    assert edits(a, b, 5) == distance == edits(b, a, 5)
    assert edits(a, b, distance - 1) == distance  # beyond the limit: limit + 1, however far


def test_suggestions_put_near_common_words_first_and_rare_ones_only_when_alone(glove):
    dgo = glove.suggest("dgo")
    assert "dog" in dgo[:2] and "dago" not in dgo  # a common swap before a rare slur one insertion away
    assert glove.suggest("elefant")[0] == "elephant"  # "ph" written "f" is a near slip
    assert glove.suggest("hummingbrid")[0] == "hummingbird" and glove.suggest("xqzv") == []
    assert glove.row("elefant") is not None and glove.likely_typo("Elefant") == "elephant"
    assert glove.likely_typo("dog") is None and glove.likely_typo("iguana") is None  # common enough
    assert glove.likely_typo("polar bear") is None  # a phrase is not one misspelt word


def test_local_word2vec_and_glove_text_files(tmp_path):
    words = ["red", "green", "blue"]
    vectors = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 0.0]], dtype=np.float32)
    rows = [f"{w} " + " ".join(map(str, v)) for w, v in zip(words, vectors)]
    (tmp_path / "w2v.txt").write_text("3 3\n" + "\n".join(rows) + "\n")
    (tmp_path / "glove.txt").write_text("\n".join(rows) + "\n")
    for name in ("w2v.txt", "glove.txt"):
        loaded = load_embeddings(tmp_path / name)
        assert [loaded.index.word(i) for i in range(len(loaded))] == words and loaded.dim == 3
        np.testing.assert_allclose(loaded.vector("green"), [0, 1, 0])
        np.testing.assert_allclose(loaded.vector("red green"), unit(np.array([1.0, 1.0, 0.0])), rtol=1e-6)


def test_binary_word2vec_file(tmp_path):
    from gensim.models import KeyedVectors

    keyed = KeyedVectors(vector_size=4)
    keyed.add_vectors(["cat", "dog"], np.array([[1, 2, 3, 4], [4, 3, 2, 1]], dtype=np.float32))
    keyed.save_word2vec_format(str(tmp_path / "small.bin"), binary=True)
    loaded = load_embeddings(tmp_path / "small.bin")
    np.testing.assert_allclose(loaded.vector("dog"), unit(np.array([4.0, 3, 2, 1])), rtol=1e-6)


def test_missing_source_errors_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="glove-6b-50d"):
        load_embeddings(tmp_path / "nope.txt")


def test_fixed_label_table_knows_only_its_labels():
    table = label_table("toy-labels", ["polar bear", "sky"], np.array([[3.0, 4.0], [0.0, 1.0]]))
    np.testing.assert_allclose(table.vector("polar bear"), [0.6, 0.8])
    with pytest.raises(UnknownWordError, match="toy-labels"):
        table.vector("polar")


def test_nus_wide_300d_label_vectors():
    root = require(DATA / "nus_wide")
    concepts = (root / "Concepts81.txt").read_text().split()
    table = label_table("nus-wide-glove-300", concepts, np.load(root / "glove300_concepts81.npy"))
    assert table.dim == 300
    np.testing.assert_allclose(np.linalg.norm(table.matrix(concepts), axis=1), 1.0, rtol=1e-5)


def test_every_corel_word_is_in_glove(glove):
    words = (require(DATA / "corel5k" / "labels" / "words")).read_text().split()
    assert len(words) == 374
    assert [w for w in words if w not in glove] == []


def test_accented_and_non_latin_phrases_stay_whole():
    glove = load_embeddings()
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    # As written where the vectors know the word, accents folded where they do not.
    assert glove.tokens("crème brûlée") == ["crème", "brulee"]
    np.testing.assert_allclose(
        glove.vector("crème brûlée"),
        unit(glove.vectors[glove.row("crème")] + glove.vectors[glove.row("brulee")]),
        atol=1e-6,
    )
    assert glove.tokens("smörgåsbord") == ["smorgasbord"] and glove.tokens("Café") == ["café"]
    # Hyphens join words the vectors know whole, and split the others.
    assert glove.tokens("red t-shirt") == ["red", "t-shirt"] and glove.tokens("zebra-boat") == ["zebra", "boat"]
    with pytest.raises(UnknownWordError, match="'brûléeqxz' is not in the word vectors"):
        glove.vector("crème brûléeqxz")


def test_search_and_vocab_take_accented_words(tmp_path):
    from tagger.library import Library
    from tests.photo_factory import make_library
    from tests.tagging import tag

    make_library(tmp_path / "photos", 3)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "-q")
    assert len(tag(db, "search", "smörgåsbord", "--min-score", "0").splitlines()) == 3
    tag(db, "vocab", "add", "crème brûlée")
    glove = load_embeddings()
    with Library(db) as library:
        stored = {w.word: w.vector for w in library.words()}
    np.testing.assert_allclose(stored["crème brûlée"], glove.vector("crème brûlée"), atol=1e-6)
    from typer.testing import CliRunner

    from tagger.cli import app

    result = CliRunner().invoke(app, ["search", "zzqqxvwbrûlée", "--db", str(db)])
    assert result.exit_code == 2 and "'zzqqxvwbrûlée' is not in the word vectors" in result.output
