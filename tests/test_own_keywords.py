"""The photographer's own keywords: read from a photo's sidecar or embedded metadata at scan,
found by search, shown apart from the model's tags, kept through rescans and a model
change, exported as they came, and read again when a sidecar is edited."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tagger.library import Library, keyword_words
from tagger.search import rank
from tests.photo_factory import make_library
from tests.tagging import tag, tag_json

LIGHTROOM = """<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/">
   <xmp:Rating>4</xmp:Rating>
   <dc:subject><rdf:Bag>{subject}</rdf:Bag></dc:subject>
   <lr:hierarchicalSubject><rdf:Bag><rdf:li>Holiday|Rome</rdf:li></rdf:Bag></lr:hierarchicalSubject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>"""


def lightroom_sidecar(photo: Path, *words: str) -> Path:
    """A sidecar as Lightroom writes it (photo.xmp): flat keywords with the leaf of a hierarchical one."""
    sidecar = photo.with_suffix(".xmp")
    sidecar.write_text(LIGHTROOM.format(subject="".join(f"<rdf:li>{w}</rdf:li>" for w in ("Rome", *words))))
    return sidecar


def test_a_keyword_is_found_by_its_leaf_and_each_level():
    assert keyword_words("Holiday|Rome") == ["rome", "holiday"]
    assert keyword_words("  Golden  Gate ") == ["golden gate"]
    assert keyword_words("Places|Italy|Rome|Rome") == ["rome", "italy", "places"]


def test_one_rule_for_sidecar_names_and_one_default_parent():
    import inspect

    from tagger import api, xmp
    from tagger.cli import finding
    from tagger.scanplan import _sidecar_names

    for photo in ("/p/a.jpg", "/p/a.b.JPG", "/p/noext", "/p/x.y/z.tiff"):
        assert _sidecar_names(photo) == list(dict.fromkeys(str(p) for p in xmp.sidecar_names(photo)))
    parent = inspect.signature(api.export_xmp).parameters["parent"].default
    assert parent == xmp.DEFAULT_PARENT == inspect.signature(finding.export).parameters["parent"].default.default


@pytest.fixture
def keyworded(tmp_path: Path) -> tuple[Path, Path, Path]:
    photos = make_library(tmp_path / "photos", 3)
    sidecar = lightroom_sidecar(photos[0], "grandma")
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "-q")
    return db, photos[0], sidecar


def test_own_keywords_are_found_shown_and_kept_through_a_forced_rescan(keyworded):
    db, photo, _ = keyworded
    assert tag(db, "search", "grandma").split("\n")[0] == str(photo)
    assert tag(db, "search", "holiday").split("\n")[0] == str(photo)  # a level above the leaf
    shown = tag_json(db, "show", photo)
    assert shown["own"] == ["Holiday|Rome", "grandma"]
    assert "own     Holiday|Rome, grandma" in tag(db, "show", photo)
    assert all(t["word"] not in ("grandma", "holiday") for t in shown["tags"])  # the model's, apart
    tag(db, "scan", photo.parent, "-q", "--force")
    assert tag_json(db, "show", photo)["own"] == ["Holiday|Rome", "grandma"]


def test_an_edited_sidecar_is_read_again_without_reading_the_photo(keyworded):
    db, photo, sidecar = keyworded
    lightroom_sidecar(photo, "grandpa")
    report = tag_json(db, "scan", "-q")
    assert (report["keywords_read"], report["updated"], report["new"]) == (1, 0, 0)
    assert tag_json(db, "show", photo)["own"] == ["Holiday|Rome", "grandpa"]
    with Library(db) as library:
        assert not len(library.photos_with_own("grandma"))
    assert tag_json(db, "scan", "-q")["keywords_read"] == 0  # read once, not at every scan
    sidecar.unlink()
    tag(db, "scan", "-q")
    assert tag_json(db, "show", photo)["own"] == []


def test_a_word_no_vector_knows_is_found_through_own_keywords(tmp_path):
    photos = make_library(tmp_path / "photos", 2)
    lightroom_sidecar(photos[1], "Xqzzyfamily", "Grandma Xqkowalski")
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "-q")
    assert tag(db, "search", "xqzzyfamily").split("\n")[:-1] == [str(photos[1])]
    # A word of a keyword finds it, a whole word only.
    assert tag(db, "search", "xqkowalski").split("\n")[:-1] == [str(photos[1])]
    assert tag(db, "search", "xqkowal", code=2) == ""  # part of a word: no keyword, and no word vector
    with Library(db) as library:
        found = rank(library, ["xqzzyfamily", "rome"])
        assert list(found.ids) == [library.photo_by_path(str(photos[1]))["id"]]
        assert np.allclose(found.scores, 1.0)


def test_own_keywords_survive_a_model_change_and_export_as_they_came(keyworded, other_shape):
    db, photo, sidecar = keyworded
    tag(db, "scan", photo.parent, "-q", "--model", other_shape)
    with Library(db) as library:
        assert library.get_meta("semantic_shape")[0] == 4  # the library moved to the other model
    assert tag_json(db, "show", photo)["own"] == ["Holiday|Rome", "grandma"]
    tag(db, "export", "--xmp")
    ns = {
        "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
        "dc": "http://purl.org/dc/elements/1.1/",
        "lr": "http://ns.adobe.com/lightroom/1.0/",
        "xmp": "http://ns.adobe.com/xap/1.0/",
    }
    root = ET.parse(sidecar).getroot()
    hierarchical = [li.text for li in root.iterfind(".//lr:hierarchicalSubject/rdf:Bag/rdf:li", ns)]
    flat = [li.text for li in root.iterfind(".//dc:subject/rdf:Bag/rdf:li", ns)]
    assert "Holiday|Rome" in hierarchical and {"Rome", "grandma"} <= set(flat)
    assert root.find(".//xmp:Rating", ns).text == "4"  # the rest of the sidecar is kept
    # Read back after the export: the photographer's keywords, not the model's tags written beside them.
    tag(db, "scan", "-q")
    assert tag_json(db, "show", photo)["own"] == ["Holiday|Rome", "grandma"]


def test_export_puts_the_models_tags_under_the_parent_asked_for(keyworded):
    db, photo, sidecar = keyworded
    ns = {"rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "lr": "http://ns.adobe.com/lightroom/1.0/"}

    def hierarchical() -> list[str]:
        return [li.text for li in ET.parse(sidecar).getroot().iterfind(".//lr:hierarchicalSubject/rdf:Bag/rdf:li", ns)]

    model = [t["word"] for t in tag_json(db, "show", photo, "--all")["tags"]][:1]
    tag(db, "export", "--xmp", "--min-score", "0", "--top", "1", "--parent", "AI|auto")
    assert f"AI|auto|{model[0]}" in hierarchical() and "Holiday|Rome" in hierarchical()
    tag(db, "export", "--xmp", "--min-score", "0", "--top", "1", "--parent", "")
    assert model[0] in hierarchical() and not any(k.startswith("AI|") for k in hierarchical())


def test_forgetting_a_root_keeps_photos_another_root_covers(keyworded):
    db, photo, _ = keyworded
    tag(db, "scan", photo, "-q")  # the photo scanned on its own too: a root of its own
    assert tag(db, "roots", "forget", photo) == f"Forgot {photo} and its 0 photos.\n"
    assert tag_json(db, "show", photo)["own"] == ["Holiday|Rome", "grandma"]


def test_keywords_are_read_again_only_when_a_sidecar_changed(tmp_path):
    """A photo scanned on its own (a file, not a folder) with a sidecar beside it: rescans do
    not read its keywords again and again; a move carries them and is no sidecar news."""
    photo = make_library(tmp_path / "photos", 1)[0]
    lightroom_sidecar(photo, "grandma")
    db = tmp_path / "lib.db"
    tag(db, "scan", photo, "-q")
    assert [tag_json(db, "scan", "-q")["keywords_read"] for _ in range(2)] == [0, 0]
    lightroom_sidecar(photo, "grandpa")
    assert "1 photo's own keywords read again (their sidecars changed)" in tag(db, "scan", "-q")
    assert tag_json(db, "scan", "-q")["keywords_read"] == 0
    moved = tmp_path / "elsewhere" / "renamed.jpg"
    moved.parent.mkdir()
    photo.rename(moved)
    photo.with_suffix(".xmp").rename(moved.with_suffix(".xmp"))
    report = tag_json(db, "scan", moved.parent, "-q")
    assert (report["moved"], report["keywords_read"]) == (1, 0)
    assert tag_json(db, "show", moved)["own"] == ["Holiday|Rome", "grandpa"]
