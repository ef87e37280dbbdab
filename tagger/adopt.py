"""A library takes a model: what it records of it (id, word space, tag rule), its vocabulary
in the model's word space, and a switch to another model once every photo is read again."""

from __future__ import annotations

import sys

from trainer.assets import default_words, retired_words
from trainer.embeddings import DEFAULT_EMBEDDINGS
from trainer.tagrule import TagRule

from .engine import Engine
from .library import DEFAULT, USER, Library
from .vocabulary import (
    WordSource,
    describe_missing,
    ensure_vocabulary,
    fill_vocabulary,
    known_forms,
    renormalise,
    retag,
)

# Version of the default vocabulary's policy (trainer.assets: excluded.txt) a library follows.
VOCABULARY_POLICY = 1


def prepare_library(library: Library, engine: Engine, embeddings: str | None = None) -> list[str]:
    """Record the model in the library and fill an empty vocabulary with the default words.
    Returns the default words that have no vector (left out)."""
    bundle = engine.bundle
    previous = library.model_id
    # Words follow the model's word space: a flag, else what this library used with this
    # model, else what the model was trained with.
    kept = library.get_meta("embeddings") if previous == engine.model_id else None
    source = WordSource(
        embeddings or kept or bundle.embeddings.get("source", DEFAULT_EMBEDDINGS),
        engine.label_table(),
        bundle.seen_labels,
        engine.semantic_shape[1],
        labels=[*bundle.seen_labels, *bundle.unseen_labels],
    )
    library.set_meta(
        model_id=engine.model_id,
        model_path=None if engine.shipped else str(engine.model_path),
        semantic_shape=list(engine.semantic_shape),
        seen_words=list(bundle.seen_labels),
        embeddings=source.embeddings_id,
        tags_per_photo=library.tags_per_photo,
        tag_rule=TagRule.from_dict(bundle.tagging).to_dict(),
    )
    defaults = default_words(bundle.seen_labels, bundle.unseen_labels)
    if previous is not None and previous != engine.model_id:
        # Another model may live in another word space: the vocabulary is rebuilt with the
        # same words (each still the default's or a person's), and every photo is read again
        # (its model id no longer matches), so the word levels are computed afresh too.
        words = library.words()
        with library.transaction():
            library.remove_words([w.id for w in words])
            library.set_meta(means_photos=None)
            left_out = []
            for origin in (DEFAULT, USER, None):
                left_out += fill_vocabulary(library, source, [w.word for w in words if w.origin == origin], origin)[1]
            _follow_vocabulary_policy(library, source, defaults)
            return left_out
    added, left_out = ensure_vocabulary(library, source, defaults)
    if added:
        library.set_meta(vocabulary_policy=VOCABULARY_POLICY)  # made under the policy
    else:
        _follow_vocabulary_policy(library, source, defaults)
    return left_out


def _follow_vocabulary_policy(library: Library, source: WordSource, defaults: list[str]) -> None:
    """A library made before the default vocabulary's policy: the default words it has retired
    (sensitive words, words a photo cannot show, second forms of one concept) go, the new
    default words come, and every word gets its model label and ImageNet classes. Words a
    person added stay; a library older than that record cannot tell them, so only words that
    were once default words go."""
    if library.get_meta("vocabulary_policy") == VOCABULARY_POLICY:
        describe_missing(library, source)
        return
    retired = retired_words()
    with library.transaction():
        gone = [w.id for w in library.words() if w.origin is None and w.word in retired]
        library.remove_words(gone)
        have = known_forms(library, defaults)
        fill_vocabulary(library, source, [w for w in defaults if w not in have], DEFAULT)
        describe_missing(library, source)
        library.set_meta(vocabulary_policy=VOCABULARY_POLICY, means_photos=None)


def follow_tag_rule(library: Library, tagging: dict | None) -> bool:
    """The library takes its model's tag rule when the model's rule was chosen again without
    new weights (`epsilon-train calibrate --write`, or an upgrade that ships one): every
    photo is re-tagged from its stored S and classes (a new threshold changes which words
    lift the words above them, so confidences move too), after a new level (mean or
    quantile) is computed for every word. Returns whether the rule changed."""
    rule = TagRule.from_dict(tagging)
    before = library.tag_rule
    if rule == before:
        return False
    with library.transaction():
        library.set_meta(tag_rule=rule.to_dict())
        if rule.quantile != before.quantile:
            renormalise(library, force=True)
        else:
            retag(library)
    return True


def complete_switch(library: Library, engine: Engine, embeddings: str | None) -> list[str]:
    """Every present photo was read by the new model: the library moves to it in one
    transaction (its meta, its vocabulary in the new word space, every photo's S, classes
    and tags; photos not read, missing ones, keep their rows and are read when found).
    Returns the words with no vector in the new space (left out)."""
    with library.transaction():
        left_out = prepare_library(library, engine, embeddings)
        for records in library.staged_records(engine.model_id, engine.semantic_shape):
            library.save_batch(records, [], engine.model_id)
        library.forget_vectors(library.photos_of_another_model(engine.model_id))
        library.clear_staged()
        renormalise(library, force=True)
    return left_out


def say_left_out(left_out: list[str]) -> None:
    if left_out:
        print(
            f"{len(left_out)} default words have no word vector and were left out: {', '.join(left_out[:10])}",
            file=sys.stderr,
        )
