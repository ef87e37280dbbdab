"""XMP sidecars: valid XML with dc:subject keywords, merged into existing sidecars, originals untouched."""

from __future__ import annotations

import hashlib
import os
import xml.etree.ElementTree as ET

from typer.testing import CliRunner

from tagger.cli import app
from tagger.xmp import NS, read_keywords, write_sidecar
from tests.photo_factory import make_library
from tests.tagging import tag, tag_json

LIGHTROOM = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 7.0">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4"/>
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
   <dc:subject><rdf:Bag><rdf:li>grandma</rdf:li><rdf:li>holiday 2019</rdf:li></rdf:Bag></dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_writes_sidecars_and_keeps_keywords_people_wrote(tmp_path, candidates_model):
    photos = make_library(tmp_path / "photos", 3)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "-q", "--model", candidates_model)  # blobs: every candidate shown
    originals = {p: digest(p) for p in photos}
    (tmp_path / "photos" / "photo_001.xmp").write_text(LIGHTROOM)  # Lightroom's naming
    out = tag(db, "export", "--xmp")
    assert "2 written, 1 merged" in out
    assert {p: digest(p) for p in photos} == originals  # originals never touched

    fresh = photos[0].with_name(photos[0].name + ".xmp")
    tags = [t["word"] for t in tag_json(db, "show", photos[0])["tags"]]  # the tags the photo keeps
    assert read_keywords(fresh) == tags and 0 < len(tags) <= 10
    root = ET.parse(fresh).getroot()
    assert root.tag == f"{{{NS['x']}}}xmpmeta"

    merged = tmp_path / "photos" / "photo_001.xmp"
    keywords = read_keywords(merged)
    assert keywords[:2] == ["grandma", "holiday 2019"]
    assert keywords[2:] == [t["word"] for t in tag_json(db, "show", photos[1])["tags"]]
    rating = ET.parse(merged).getroot().find(f".//{{{NS['rdf']}}}Description").get(f"{{{NS['xmp']}}}Rating")
    assert rating == "4"  # the rest of the sidecar survives
    assert not photos[1].with_name(photos[1].name + ".xmp").exists()


def test_a_second_export_replaces_only_its_own_keywords(tmp_path):
    photo = make_library(tmp_path, 1)[0]
    write_sidecar(photo, ["beach", "sea"])
    path = photo.with_name(photo.name + ".xmp")
    # A person adds a keyword beside ours, in dc:subject (the first bag; the second records ours).
    text = path.read_text().replace("<rdf:li>beach</rdf:li>", "<rdf:li>beach</rdf:li><rdf:li>my trip</rdf:li>", 1)
    path.write_text(text)
    write_sidecar(photo, ["sea", "boat"])
    assert read_keywords(path) == ["my trip", "sea", "boat"]  # "beach" was ours and is gone


def test_stem_naming_and_failures_without_damage(tmp_path):
    photos = make_library(tmp_path / "photos", 2)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "-q")
    broken = photos[0].with_suffix(".xmp")
    broken.write_text("<x:xmpmeta not xml")
    out = tag(db, "export", "--xmp", "--naming", "stem", "--min-score", "0")
    assert "1 written, 0 merged" in out and "1 failed" in out
    assert broken.read_text() == "<x:xmpmeta not xml"
    assert read_keywords(photos[1].with_suffix(".xmp"))
    assert tag(db, "export", code=2) == ""  # no format chosen: a clear error
    if os.geteuid() != 0:
        (tmp_path / "photos").chmod(0o555)
        try:
            assert "2 failed" in tag(db, "export", "--xmp", "--naming", "full")
        finally:
            (tmp_path / "photos").chmod(0o755)


def test_sidecars_keep_their_mode_and_new_ones_follow_the_umask(tmp_path):
    photos = make_library(tmp_path / "photos", 2)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "-q")
    existing = photos[1].with_name(photos[1].name + ".xmp")
    existing.write_text(LIGHTROOM)
    existing.chmod(0o640)
    old = os.umask(0o022)
    try:
        tag(db, "export", "--xmp")
    finally:
        os.umask(old)
    assert (photos[0].with_name(photos[0].name + ".xmp").stat().st_mode & 0o777) == 0o644
    assert (existing.stat().st_mode & 0o777) == 0o640


def test_two_photos_that_would_share_a_sidecar_are_reported_not_merged(tmp_path):
    from tests.photo_factory import make_photo

    folder = tmp_path / "photos"
    make_photo(folder / "pair.jpg", seed=1)
    make_photo(folder / "pair.png", seed=2)
    make_photo(folder / "single.jpg", seed=3)
    db = tmp_path / "lib.db"
    tag(db, "scan", folder, "-q")
    result = CliRunner().invoke(app, ["export", "--xmp", "--naming", "stem", "--db", str(db)])
    assert "1 written, 0 merged into existing ones, 2 failed" in result.output
    assert "pair.xmp would hold the tags of pair.jpg and pair.png" in result.output
    assert not (folder / "pair.xmp").exists() and (folder / "single.xmp").exists()
    # Full names: one sidecar each for the pair (single.xmp, already there, is updated).
    assert "2 written, 1 merged" in tag(db, "export", "--xmp")
    assert (folder / "pair.jpg.xmp").exists() and (folder / "pair.png.xmp").exists()


def test_a_keyword_the_photographer_had_stays_theirs_after_we_wrote_the_same_word(tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"")
    sidecar = photo.with_name("p.jpg.xmp")
    sidecar.write_text(LIGHTROOM.replace("holiday 2019", "beach"))  # theirs: grandma, beach
    write_sidecar(photo, ["beach", "sea"])  # our tags happen to include beach
    assert read_keywords(sidecar) == ["grandma", "beach", "sea"]
    write_sidecar(photo, ["boat"])  # beach and sea no longer ours to show: sea goes, beach was theirs
    assert read_keywords(sidecar) == ["grandma", "beach", "boat"]
    write_sidecar(photo, ["salt, pepper", "boat"])  # a keyword holding a comma is one keyword
    write_sidecar(photo, ["boat"])
    assert read_keywords(sidecar) == ["grandma", "beach", "boat"]


def test_a_sidecar_whose_name_would_be_too_long_fails_alone(tmp_path):
    folder = tmp_path / "photos"
    photos = make_library(folder, 2)
    long = folder / ("é" * 125 + "x.jpg")  # 255 bytes: the photo fits, its sidecar's name would not
    photos[1].rename(long)
    db = tmp_path / "lib.db"
    tag(db, "scan", folder, "-q")
    done = CliRunner().invoke(app, ["export", "--xmp", "--min-score", "0", "--db", str(db)])
    assert done.exit_code == 0 and "1 written, 0 merged into existing ones, 1 failed" in done.stdout
    assert "too long a name for a sidecar" in done.stderr and "--naming stem" in done.stderr
    assert read_keywords(photos[0].with_name(photos[0].name + ".xmp"))
    assert "1 written" in tag(db, "export", "--xmp", "--naming", "stem", "--min-score", "0")  # long.xmp fits
    missing = CliRunner().invoke(app, ["export", "--xmp", str(tmp_path / "nowhere"), "--db", str(db)])
    assert missing.exit_code == 2 and "is not a folder of this library" in missing.stderr
