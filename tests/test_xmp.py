"""XMP keywords both ways: sidecars with dc:subject, lr:hierarchicalSubject and digiKam:TagsList,
merged into existing sidecars, originals untouched; and a photographer's own keywords read back
from sidecars, embedded XMP and IPTC, checked against exiv2 (digiKam's and darktable's library)
and, where installed, exiftool."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from tagger.keywords import read_keywords
from tagger.library import keyword_words
from tagger.xmp import (
    NS,
    export_sidecars,
    sidecar_names,
    sidecar_path,
    sidecars_of,
    subject_keywords,
    write_sidecar,
)
from tests.photo_factory import make_library, make_photo


def tag(*args, **kwargs):
    # The CLI is imported where a test runs it: the module's own tests need none of it.
    from tests.tagging import tag

    return tag(*args, **kwargs)


def tag_json(*args):
    from tests.tagging import tag_json

    return tag_json(*args)


def invoke(args):
    from typer.testing import CliRunner

    from tagger.cli import app

    return CliRunner().invoke(app, args)


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
    assert subject_keywords(fresh) == tags and 0 < len(tags) <= 10
    root = ET.parse(fresh).getroot()
    assert root.tag == f"{{{NS['x']}}}xmpmeta"

    merged = tmp_path / "photos" / "photo_001.xmp"
    keywords = subject_keywords(merged)
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
    assert subject_keywords(path) == ["my trip", "sea", "boat"]  # "beach" was ours and is gone


def test_stem_naming_and_failures_without_damage(tmp_path):
    photos = make_library(tmp_path / "photos", 2)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "-q")
    broken = photos[0].with_suffix(".xmp")
    broken.write_text("<x:xmpmeta not xml")
    out = tag(db, "export", "--xmp", "--naming", "stem", "--min-score", "0", code=1)
    assert "1 written, 0 merged" in out and "1 failed" in out
    assert broken.read_text() == "<x:xmpmeta not xml"
    assert subject_keywords(photos[1].with_suffix(".xmp"))
    assert tag(db, "export", code=2) == ""  # no format chosen: a clear error
    if os.geteuid() != 0:
        (tmp_path / "photos").chmod(0o555)
        try:
            assert "2 failed" in tag(db, "export", "--xmp", "--naming", "full", code=1)
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
    folder = tmp_path / "photos"
    make_photo(folder / "pair.jpg", seed=1)
    make_photo(folder / "pair.png", seed=2)
    make_photo(folder / "single.jpg", seed=3)
    db = tmp_path / "lib.db"
    tag(db, "scan", folder, "-q")
    result = invoke(["export", "--xmp", "--naming", "stem", "--db", str(db)])
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
    assert subject_keywords(sidecar) == ["grandma", "beach", "sea"]
    write_sidecar(photo, ["boat"])  # beach and sea no longer ours to show: sea goes, beach was theirs
    assert subject_keywords(sidecar) == ["grandma", "beach", "boat"]
    write_sidecar(photo, ["salt, pepper", "boat"])  # a keyword holding a comma is one keyword
    write_sidecar(photo, ["boat"])
    assert subject_keywords(sidecar) == ["grandma", "beach", "boat"]


def test_a_sidecar_whose_name_would_be_too_long_fails_alone(tmp_path):
    folder = tmp_path / "photos"
    photos = make_library(folder, 2)
    long = folder / ("é" * 125 + "x.jpg")  # 255 bytes: the photo fits, its sidecar's name would not
    photos[1].rename(long)
    db = tmp_path / "lib.db"
    tag(db, "scan", folder, "-q")
    done = invoke(["export", "--xmp", "--min-score", "0", "--db", str(db)])
    assert done.exit_code == 1 and "1 written, 0 merged into existing ones, 1 failed" in done.stdout
    assert "too long a name for a sidecar" in done.stderr and "--naming stem" in done.stderr
    assert subject_keywords(photos[0].with_name(photos[0].name + ".xmp"))
    assert "1 written" in tag(db, "export", "--xmp", "--naming", "stem", "--min-score", "0")  # long.xmp fits
    missing = invoke(["export", "--xmp", str(tmp_path / "nowhere"), "--db", str(db)])
    assert missing.exit_code == 2 and "is not a folder of this library" in missing.stderr


# ---- three views, written and merged --------------------------------------------------


def views(sidecar):
    """Each keyword view of a sidecar as (array type, entries), and what is recorded as ours."""
    root = ET.parse(sidecar).getroot()
    found = {}
    for name in ("dc:subject", "lr:hierarchicalSubject", "digiKam:TagsList", "epsilontag:added"):
        prefix, local = name.split(":")
        for prop in root.iter(f"{{{NS[prefix]}}}{local}"):
            array = prop[0]
            found[name] = (array.tag.split("}")[1], [li.text for li in array])
    return found


def test_three_views_of_the_model_tags_and_the_photographers_own(tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"")
    path, existed = write_sidecar(photo, ["beach", "sea"], own=["Holiday|Rome", "grandma", " Holiday | Rome "])
    assert (path, existed) == (tmp_path / "p.jpg.xmp", False)
    found = views(path)
    assert found["dc:subject"] == ("Bag", ["Rome", "grandma", "beach", "sea"])
    assert found["lr:hierarchicalSubject"] == (
        "Bag",
        ["Holiday|Rome", "grandma", "epsilon-tag|beach", "epsilon-tag|sea"],
    )
    assert found["digiKam:TagsList"] == ("Seq", ["Holiday/Rome", "grandma", "epsilon-tag/beach", "epsilon-tag/sea"])
    assert found["epsilontag:added"] == ("Bag", ["beach", "sea"])  # the model's; the copies are recorded apart

    other = tmp_path / "q.jpg"
    write_sidecar(other, ["Beach", "beach", "sea"], "stem", own=["Places|beach"], parent=None)
    found = views(tmp_path / "q.xmp")
    assert found["dc:subject"][1] == ["beach", "sea"]  # a word both theirs and the model's, once
    assert found["lr:hierarchicalSubject"][1] == ["Places|beach", "Beach", "sea"]
    assert found["digiKam:TagsList"][1] == ["Places/beach", "Beach", "sea"]


FOREIGN = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:darktable="http://darktable.sf.net/" xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/" xmlns:digiKam="http://www.digikam.org/ns/1.0/"
    xmp:Rating="3" darktable:xmp_version="5">
   <darktable:history><rdf:Seq><rdf:li darktable:operation="exposure" darktable:enabled="1"/></rdf:Seq>
   </darktable:history>
   <dc:subject><rdf:Bag><rdf:li>grandma</rdf:li><rdf:li>Rome</rdf:li></rdf:Bag></dc:subject>
   <lr:hierarchicalSubject><rdf:Bag><rdf:li>Family|grandma</rdf:li><rdf:li>Holiday|Rome</rdf:li></rdf:Bag>
   </lr:hierarchicalSubject>
   <digiKam:TagsList><rdf:Seq><rdf:li>Family/grandma</rdf:li><rdf:li>Holiday/Rome</rdf:li></rdf:Seq>
   </digiKam:TagsList>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""


def test_a_merge_replaces_only_what_epsilon_tag_wrote_in_every_view(tmp_path):
    photo = tmp_path / "p.nef"
    photo.write_bytes(b"")
    sidecar = tmp_path / "p.xmp"  # Lightroom's naming, found and updated
    sidecar.write_text(FOREIGN)
    assert write_sidecar(photo, ["beach", "sea"]) == (sidecar, True)
    write_sidecar(photo, ["sea", "boat"], own=["Friends|Ann"])
    found = views(sidecar)
    assert found["dc:subject"][1] == ["grandma", "Rome", "sea", "Ann", "boat"]
    assert found["lr:hierarchicalSubject"][1] == [
        "Family|grandma",
        "Holiday|Rome",
        "epsilon-tag|sea",
        "Friends|Ann",
        "epsilon-tag|boat",
    ]
    assert found["digiKam:TagsList"] == (
        "Seq",
        ["Family/grandma", "Holiday/Rome", "epsilon-tag/sea", "Friends/Ann", "epsilon-tag/boat"],
    )
    write_sidecar(photo, [])  # nothing of ours left: every view holds theirs only again
    found = views(sidecar)
    assert found["dc:subject"][1] == ["grandma", "Rome"]
    assert found["lr:hierarchicalSubject"][1] == ["Family|grandma", "Holiday|Rome"]
    assert found["digiKam:TagsList"][1] == ["Family/grandma", "Holiday/Rome"]
    root = ET.parse(sidecar).getroot()
    description = root.find(f".//{{{NS['rdf']}}}Description")
    assert description.get(f"{{{NS['xmp']}}}Rating") == "3" and description.get(f"{{{NS['darktable']}}}xmp_version")
    assert root.find(f".//{{{NS['darktable']}}}history//{{{NS['rdf']}}}li").get(f"{{{NS['darktable']}}}operation")


def test_our_tags_under_the_parent_are_replaced_even_when_another_program_dropped_the_record(tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"")
    write_sidecar(photo, ["beach"], own=["Holiday|Rome"])
    sidecar = tmp_path / "p.jpg.xmp"
    tree = ET.parse(sidecar)
    for description in tree.iter(f"{{{NS['rdf']}}}Description"):
        for record in [e for e in description if e.tag.startswith(f"{{{NS['epsilontag']}}}")]:
            description.remove(record)
    tree.write(sidecar)
    assert "epsilon-tag|beach" in sidecar.read_text() and "epsilontag:" not in sidecar.read_text()
    write_sidecar(photo, ["sea"])
    assert views(sidecar)["lr:hierarchicalSubject"][1] == ["Holiday|Rome", "epsilon-tag|sea"]
    assert views(sidecar)["dc:subject"][1] == ["Rome", "sea"]  # beach: the leaf of a path of ours


PREVIOUS = """<x:xmpmeta xmlns:x="adobe:ns:meta/">
  <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
    <rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"
      xmlns:epsilontag="https://github.com/epsilon-tag/ns/1.0/" rdf:about=""{attribute}>
      <dc:subject><rdf:Bag><rdf:li>grandma</rdf:li><rdf:li>beach</rdf:li><rdf:li>sea</rdf:li></rdf:Bag></dc:subject>
      {bag}
    </rdf:Description>
  </rdf:RDF>
</x:xmpmeta>
"""


@pytest.mark.parametrize(
    ("attribute", "bag"),
    [
        ("", "<epsilontag:added><rdf:Bag><rdf:li>beach</rdf:li><rdf:li>sea</rdf:li></rdf:Bag></epsilontag:added>"),
        (' epsilontag:keywords="beach,sea"', ""),  # the first release's record
    ],
)
def test_a_sidecar_the_previous_versions_wrote_merges(tmp_path, attribute, bag):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"")
    sidecar = tmp_path / "p.jpg.xmp"
    sidecar.write_text(PREVIOUS.format(attribute=attribute, bag=bag))
    assert read_keywords(photo) == ["grandma"]
    write_sidecar(photo, ["sea", "boat"])
    found = views(sidecar)
    assert found["dc:subject"][1] == ["grandma", "sea", "boat"]
    assert found["epsilontag:added"][1] == ["sea", "boat"]
    assert found["lr:hierarchicalSubject"][1] == ["epsilon-tag|sea", "epsilon-tag|boat"]
    assert "epsilontag:keywords" not in sidecar.read_text()
    assert read_keywords(photo) == ["grandma"]


def test_export_passes_each_photos_own_keywords_and_the_parent(tmp_path):
    photos = make_library(tmp_path, 2)

    class Library:  # what export_sidecars asks of a library
        def present_photos(self, under):
            return [{"id": i, "path": str(p)} for i, p in enumerate(photos)]

        def photo_tags(self, photo_id, every=False):
            return [{"word": "beach", "score": 0.9}, {"word": "sea", "score": 0.2}]

    own = {0: ["Holiday|Rome"], 1: []}
    assert export_sidecars(Library(), own=own.__getitem__, parent="auto|model", min_score=0.5) == (2, 0, [])
    first, second = (views(sidecar_path(p)) for p in photos)
    assert first["lr:hierarchicalSubject"][1] == ["Holiday|Rome", "auto|model|beach"]
    assert first["digiKam:TagsList"][1] == ["Holiday/Rome", "auto/model/beach"]
    assert second["dc:subject"][1] == ["beach"]
    assert export_sidecars(Library(), top=1) == (0, 2, [])  # no own keywords given: the copies go
    assert views(sidecar_path(photos[0]))["lr:hierarchicalSubject"][1] == ["epsilon-tag|beach"]


# ---- reading a photo's own keywords ---------------------------------------------------


def test_read_keywords_gives_paths_once_and_leaves_ours_out(tmp_path):
    photo = tmp_path / "p.nef"
    photo.write_bytes(b"")
    (tmp_path / "p.xmp").write_text(FOREIGN)
    assert read_keywords(photo) == ["Family|grandma", "Holiday|Rome"]  # flat leaves not repeated
    write_sidecar(photo, ["beach", "grandma"])
    assert read_keywords(photo) == ["Family|grandma", "Holiday|Rome"]
    (tmp_path / "p.nef.xmp").write_text(LIGHTROOM)  # both names: the full one first
    # grandma there is the leaf of Family|grandma here: one keyword, given once
    assert read_keywords(photo) == ["holiday 2019", "Family|grandma", "Holiday|Rome"]
    assert sidecars_of(photo) == [tmp_path / "p.nef.xmp", tmp_path / "p.xmp"]


def test_a_keyword_the_photographer_had_is_read_as_theirs_after_we_wrote_it_too(tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"")
    (tmp_path / "p.jpg.xmp").write_text(LIGHTROOM.replace("holiday 2019", "beach"))
    write_sidecar(photo, ["beach", "sea"])
    assert read_keywords(photo) == ["grandma", "beach"]


LIGHTROOM_REWROTE = """<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/">
   <dc:subject><rdf:Bag>
    <rdf:li>beach</rdf:li><rdf:li>epsilon-tag</rdf:li><rdf:li>Holiday</rdf:li><rdf:li>Rome</rdf:li>
   </rdf:Bag></dc:subject>
   <lr:hierarchicalSubject><rdf:Bag><rdf:li>epsilon-tag|beach</rdf:li><rdf:li>Holiday|Rome</rdf:li></rdf:Bag>
   </lr:hierarchicalSubject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def test_without_a_record_whatever_is_under_the_parent_is_ours(tmp_path):
    # Lightroom rewrites a sidecar from its catalogue: our record gone, parents exported as flat words.
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"")
    (tmp_path / "p.jpg.xmp").write_text(LIGHTROOM_REWROTE)
    assert read_keywords(photo) == ["Holiday|Rome"]
    assert read_keywords(photo, parent=None) == ["epsilon-tag|beach", "Holiday|Rome"]


def test_keyword_words_and_sidecar_names(tmp_path):
    assert keyword_words("Holiday|Rome") == ["rome", "holiday"]
    assert keyword_words("  Places | Italy |  Rome  Centre ") == ["rome centre", "italy", "places"]
    assert keyword_words("grandma") == ["grandma"] and keyword_words(" | ") == []
    assert keyword_words("Rome|rome") == ["rome"]
    photo = tmp_path / "a.jpg"
    assert sidecars_of(photo) == [] and sidecar_path(photo, "stem") == tmp_path / "a.xmp"
    assert sidecar_names(photo) == (tmp_path / "a.jpg.xmp", tmp_path / "a.xmp")
    (tmp_path / "a.xmp").write_text("x")
    assert sidecars_of(photo) == [tmp_path / "a.xmp"] == [sidecar_path(photo, "full")]
    assert sidecars_of(tmp_path / ("é" * 200 + ".jpg")) == []  # a name too long: none, not an error


def jpeg_with_segments(*segments: tuple[int, bytes]) -> bytes:
    """A small JPEG with APP segments (marker, payload) right after its start."""
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), "blue").save(buffer, "JPEG")
    data = buffer.getvalue()
    inserted = b"".join(bytes([0xFF, marker]) + (len(p) + 2).to_bytes(2, "big") + p for marker, p in segments)
    return data[:2] + inserted + data[2:]


def packet(*, subject=(), hierarchical=()) -> bytes:
    items = "".join(f"<rdf:li>{k}</rdf:li>" for k in subject)
    paths = "".join(f"<rdf:li>{k}</rdf:li>" for k in hierarchical)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:lr="http://ns.adobe.com/lightroom/1.0/">'
        f"<dc:subject><rdf:Bag>{items}</rdf:Bag></dc:subject>"
        f"<lr:hierarchicalSubject><rdf:Bag>{paths}</rdf:Bag></lr:hierarchicalSubject>"
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def test_embedded_xmp_behind_a_long_header_is_still_found(tmp_path):
    filler = [(0xEF, bytes(60_000)) for _ in range(5)]  # 300 KB of APP15 before the XMP
    xmp = packet(subject=["Rome", "sunset"], hierarchical=["Holiday|Rome"])
    photo = tmp_path / "long.jpg"
    photo.write_bytes(jpeg_with_segments(*filler, (0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + xmp)))
    assert read_keywords(photo) == ["Holiday|Rome", "sunset"]
    png = tmp_path / "p.png"
    Image.new("RGB", (8, 8)).save(png)
    png.write_bytes(png.read_bytes()[:-12] + b"XML:com.adobe.xmp\0\0\0\0\0" + xmp + png.read_bytes()[-12:])
    assert read_keywords(png) == ["Holiday|Rome", "sunset"]  # found by its text


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow on the noise TIFF: a warning, no error
def test_read_keywords_never_raises(tmp_path):
    good = packet(subject=["grandma"])
    cases = {
        "missing.jpg": None,
        "empty.jpg": b"",
        "noise.jpg": b"\xff\xd8\xff" + os.urandom(5000),
        "cut.jpg": jpeg_with_segments((0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + good))[:60],
        "bad-xml.jpg": jpeg_with_segments((0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><rdf:li>")),
        "bad-iptc.jpg": jpeg_with_segments((0xED, b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\xff\x1c\x02")),
        "noise.tif": b"II*\x00" + os.urandom(3000),
        "noise.heic": os.urandom(3000) + b"<x:xmpmeta <<",
    }
    for name, data in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        assert read_keywords(tmp_path / name) == [], name
    (tmp_path / "broken.jpg.xmp").write_text("<x:xmpmeta not xml")
    (tmp_path / "folder.jpg.xmp").mkdir()
    (tmp_path / "folder.xmp").write_bytes(good)
    assert read_keywords(tmp_path / "broken.jpg") == []
    assert read_keywords(tmp_path / "folder.jpg") == ["grandma"]  # a folder named like a sidecar is none
    assert read_keywords(tmp_path) == []


# ---- checked against exiv2, the library digiKam and darktable read XMP with ----------------


@pytest.fixture
def exiv2():
    return pytest.importorskip("exiv2")


def exiv2_values(exiv2, path):
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    xmp = {d.key(): (d.typeId(), [d.toString(i) for i in range(d.count())]) for d in image.xmpData()}
    iptc = [d.toString() for d in image.iptcData() if d.key() == "Iptc.Application2.Keywords"]
    return xmp, iptc


def test_exiv2_reads_the_three_views_of_an_exported_sidecar(tmp_path, exiv2):
    photo = make_photo(tmp_path / "p.jpg")
    (tmp_path / "p.jpg.xmp").write_text(FOREIGN)
    write_sidecar(photo, ["beach", "sea"], own=["Friends|Ann"])
    xmp, _ = exiv2_values(exiv2, tmp_path / "p.jpg.xmp")
    bag, seq = exiv2.TypeId.xmpBag, exiv2.TypeId.xmpSeq
    assert xmp["Xmp.dc.subject"] == (bag, ["grandma", "Rome", "Ann", "beach", "sea"])
    assert xmp["Xmp.lr.hierarchicalSubject"] == (
        bag,
        ["Family|grandma", "Holiday|Rome", "Friends|Ann", "epsilon-tag|beach", "epsilon-tag|sea"],
    )
    assert xmp["Xmp.digiKam.TagsList"] == (
        seq,
        ["Family/grandma", "Holiday/Rome", "Friends/Ann", "epsilon-tag/beach", "epsilon-tag/sea"],
    )
    assert xmp["Xmp.xmp.Rating"][1] == ["3"]


def test_a_sidecar_exiv2_wrote_is_imported_and_an_exiv2_edit_of_ours_kept(tmp_path, exiv2):
    photo = make_photo(tmp_path / "p.jpg")
    sidecar = exiv2.ImageFactory.create(exiv2.ImageType.xmp, str(tmp_path / "p.jpg.xmp"))
    data = exiv2.XmpData()
    for path in ("People/Ann", "Places/Italy/Rome"):
        data["Xmp.digiKam.TagsList"] = path
    for word in ("Ann", "Rome", "sunset"):
        data["Xmp.dc.subject"] = word
    sidecar.setXmpData(data)
    sidecar.writeMetadata()
    assert read_keywords(photo) == ["People|Ann", "Places|Italy|Rome", "sunset"]

    # digiKam edits our sidecar through exiv2: a tag added beside ours survives our next export.
    write_sidecar(photo, ["beach"])
    image = exiv2.ImageFactory.open(str(tmp_path / "p.jpg.xmp"))
    image.readMetadata()
    image.xmpData()["Xmp.digiKam.TagsList"] = "People/Bob"
    image.xmpData()["Xmp.lr.hierarchicalSubject"] = "People|Bob"
    image.writeMetadata()
    assert read_keywords(photo) == ["People|Bob", "People|Ann", "Places|Italy|Rome", "sunset"]  # Lightroom's first
    write_sidecar(photo, ["sea"])
    xmp, _ = exiv2_values(exiv2, tmp_path / "p.jpg.xmp")
    assert xmp["Xmp.digiKam.TagsList"][1] == ["People/Ann", "Places/Italy/Rome", "People/Bob", "epsilon-tag/sea"]
    assert xmp["Xmp.lr.hierarchicalSubject"][1] == ["People|Bob", "epsilon-tag|sea"]
    assert read_keywords(photo) == ["People|Bob", "People|Ann", "Places|Italy|Rome", "sunset"]


def write_embedded(exiv2, path, *, iptc=(), subject=(), hierarchical=()):
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    for word in iptc:
        image.iptcData().add(exiv2.IptcKey("Iptc.Application2.Keywords"), exiv2.StringValue(word))
    for word in subject:
        image.xmpData()["Xmp.dc.subject"] = word
    for word in hierarchical:
        image.xmpData()["Xmp.lr.hierarchicalSubject"] = word
    image.writeMetadata()


@pytest.mark.parametrize("suffix", [".jpg", ".tif", ".png"])
def test_embedded_xmp_and_iptc_keywords_are_read(tmp_path, exiv2, suffix):
    photo = make_photo(tmp_path / f"p{suffix}")
    iptc = ["Rome", "grandma", "Zürich"] if suffix != ".png" else []  # exiv2 keeps no IPTC in a PNG
    write_embedded(exiv2, photo, iptc=iptc, subject=["Rome", "sunset"], hierarchical=["Holiday|Rome"])
    expected = ["Holiday|Rome", "sunset", "grandma", "Zürich"] if iptc else ["Holiday|Rome", "sunset"]
    assert read_keywords(photo) == expected
    write_sidecar(photo, ["beach"], own=expected)  # the copies in the sidecar are not read twice
    assert read_keywords(photo) == expected
    write_embedded(exiv2, photo, iptc=["beach"])  # a program copied our tag into the file: still ours
    assert read_keywords(photo) == expected


def test_photographers_keywords_copied_to_the_sidecar_follow_the_photo(tmp_path, exiv2):
    photo = make_photo(tmp_path / "p.jpg")
    write_embedded(exiv2, photo, iptc=["grandma", "Ann"])
    own = read_keywords(photo)
    write_sidecar(photo, ["beach"], own=own)
    assert subject_keywords(tmp_path / "p.jpg.xmp") == ["grandma", "Ann", "beach"]
    image = exiv2.ImageFactory.open(str(photo))
    image.readMetadata()
    image.iptcData().clear()  # the photographer takes their keywords out of the photo
    image.writeMetadata()
    assert read_keywords(photo) == []
    write_sidecar(photo, ["beach"], own=read_keywords(photo))
    assert subject_keywords(tmp_path / "p.jpg.xmp") == ["beach"]


def test_jpeg_iptc_in_utf8_and_latin1_as_pillow_reads_it(tmp_path):
    def record(dataset: int, value: bytes) -> bytes:
        return b"\x1c" + bytes([dataset >> 8, dataset & 0xFF]) + len(value).to_bytes(2, "big") + value

    iptc = record(0x015A, b"\x1b%G") + record(0x0219, "Zürich".encode()) + record(0x0219, b"Caf\xe9")
    resource = b"8BIM\x04\x04\x00\x00" + len(iptc).to_bytes(4, "big") + iptc + b"\x00" * (len(iptc) % 2)
    photo = tmp_path / "p.jpg"
    photo.write_bytes(jpeg_with_segments((0xED, b"Photoshop 3.0\x00" + resource)))
    assert read_keywords(photo) == ["Zürich", "Café"]  # declared UTF-8, but an older keyword stayed Latin-1


# ---- exiftool, where installed --------------------------------------------------------------

needs_exiftool = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed")


def exiftool(*args) -> str:
    return subprocess.run(["exiftool", *map(str, args)], capture_output=True, text=True, check=True).stdout


@needs_exiftool
def test_exiftool_reads_an_exported_sidecar(tmp_path):
    photo = make_photo(tmp_path / "p.jpg")
    write_sidecar(photo, ["beach"], own=["Holiday|Rome"])
    views = ("-XMP-dc:Subject", "-XMP-lr:HierarchicalSubject", "-XMP-digiKam:TagsList")
    found = json.loads(exiftool("-j", *views, tmp_path / "p.jpg.xmp"))[0]
    assert found["Subject"] == ["Rome", "beach"]
    assert found["HierarchicalSubject"] == ["Holiday|Rome", "epsilon-tag|beach"]
    assert found["TagsList"] == ["Holiday/Rome", "epsilon-tag/beach"]


@needs_exiftool
def test_keywords_exiftool_wrote_are_read(tmp_path):
    photo = make_photo(tmp_path / "p.jpg")
    exiftool(
        "-overwrite_original",
        "-XMP-dc:Subject+=Rome",
        "-XMP-lr:HierarchicalSubject+=Holiday|Rome",
        "-IPTC:Keywords+=grandma",
        photo,
    )
    assert read_keywords(photo) == ["Holiday|Rome", "grandma"]
    other = make_photo(tmp_path / "q.jpg")
    exiftool("-o", tmp_path / "q.xmp", "-XMP-digiKam:TagsList+=People/Ann", "-XMP-dc:Subject+=Ann", other)
    assert read_keywords(other) == ["People|Ann"]


DIGIKAM_ONLY = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:digiKam="http://www.digikam.org/ns/1.0/">
<digiKam:TagsList><rdf:Seq><rdf:li>Family/grandma</rdf:li><rdf:li>AC/DC</rdf:li></rdf:Seq></digiKam:TagsList>
</rdf:Description></rdf:RDF></x:xmpmeta>"""


@pytest.mark.parametrize(
    "start", [FOREIGN, LIGHTROOM, DIGIKAM_ONLY, LIGHTROOM_REWROTE], ids=["foreign", "lightroom", "digikam", "rewrote"]
)
def test_scan_and_export_in_turn_settle_at_once(tmp_path, start):
    """A rescan reads the own keywords, an export writes them back beside the model's: the
    second round must change nothing, or keywords would come and go with every round."""
    photo = tmp_path / "p.jpg"
    photo.write_bytes(jpeg_with_segments((0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + packet(subject=["Ann"]))))
    (tmp_path / "p.jpg.xmp").write_text(start)
    own = read_keywords(photo)
    write_sidecar(photo, ["beach", "sea"], own=own)
    assert read_keywords(photo) == own
    first = (tmp_path / "p.jpg.xmp").read_bytes()
    write_sidecar(photo, ["beach", "sea"], own=read_keywords(photo))
    assert (tmp_path / "p.jpg.xmp").read_bytes() == first
    assert "Ann" in own and not {"beach", "sea", "epsilon-tag|beach"} & set(own)
