"""XMP sidecars: the photo's tags written beside the original (never into it), and the model
of XMP keywords that reading them (``tagger.keywords``) shares: names, views, records.

digiKam and darktable read ``photo.jpg.xmp``, Lightroom ``photo.xmp``; an existing sidecar
of either name is updated in place, otherwise a new one is written under the chosen name.
The same tags go in three views, as each program looks for them: ``dc:subject`` (flat
words, every reader), ``lr:hierarchicalSubject`` (``Holiday|Rome``, Lightroom and digiKam)
and ``digiKam:TagsList`` (``Holiday/Rome``, digiKam). The model's tags sit under a parent
keyword (``epsilon-tag|beach``) in the hierarchical views, so a photographer sees at once
which keywords are the model's.

Keywords already in a sidecar are kept. What epsilon-tag put in each view is recorded in
the sidecar, each record an rdf:Bag: the model's tags (``epsilontag:added``,
``epsilontag:hierarchical``, ``epsilontag:tagsList``) and the photographer's keywords it
copied there from the photo itself (``epsilontag:copied...``), and the keywords a person
confirmed in epsilon-tag (``epsilontag:confirmed``: a library reading the photo for the
first time takes them back as that person's). A later export replaces its
own old entries and only those; an entry the photographer had before epsilon-tag wrote the
same one is never recorded, so it stays theirs whatever later exports do. Reading a photo's
keywords leaves both records out: the model's tags are not the photographer's, and a copy
is true while the photo it came from still holds it.
"""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from trainer.errors import UserError

if TYPE_CHECKING:  # only for the annotation: scan's decode workers import this module for read_keywords
    from .library import Library

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "darktable": "http://darktable.sf.net/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "crs": "http://ns.adobe.com/camera-raw-settings/1.0/",
    "epsilontag": "https://github.com/epsilon-tag/ns/1.0/",
}
for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)

Naming = Literal["full", "stem"]
DEFAULT_PARENT = "epsilon-tag"
# The keywords a person confirmed on the photo in epsilon-tag, a backup of what lives in the
# library alone (tagger.keywords.read_own).
CONFIRMED = "epsilontag:confirmed"
_OURS_BEFORE = f"{{{NS['epsilontag']}}}keywords"  # what the first release wrote: a comma-joined attribute


@dataclass(frozen=True)
class View:
    """One way of writing keywords: its property, array type, level separator (None: flat),
    and the private bags recording what epsilon-tag put in it: the model's tags (``record``)
    and the photographer's keywords it copied from elsewhere (``copied``: theirs, but what
    the photo itself holds is the truth for them, so a later export may take them out)."""

    prop: str
    array: str
    sep: str | None
    record: str
    copied: str


SUBJECT = View("dc:subject", "rdf:Bag", None, "epsilontag:added", "epsilontag:copied")
HIERARCHY = View("lr:hierarchicalSubject", "rdf:Bag", "|", "epsilontag:hierarchical", "epsilontag:copiedHierarchical")
TAGS_LIST = View("digiKam:TagsList", "rdf:Seq", "/", "epsilontag:tagsList", "epsilontag:copiedTagsList")
VIEWS = (SUBJECT, HIERARCHY, TAGS_LIST)


class SidecarError(UserError, RuntimeError):
    """A sidecar exists but cannot be parsed or written; the message says which and why."""


# ---- names ------------------------------------------------------------------------------


def sidecar_names(photo: str | Path) -> tuple[Path, Path]:
    """Both names a photo's sidecar may have, whether or not they exist: (full, stem)."""
    photo = Path(photo)
    return photo.with_name(photo.name + ".xmp"), photo.with_suffix(".xmp")


def sidecars_of(photo: str | Path) -> list[Path]:
    """The photo's existing sidecars, ``photo.jpg.xmp`` first: a rescan compares their
    modification times with the last scan's to know when keywords may have changed."""
    found = []
    for candidate in dict.fromkeys(sidecar_names(photo)):  # a photo without a suffix has one name
        try:
            if candidate.is_file():
                found.append(candidate)
        except OSError:  # a name too long for the file system: no such sidecar can exist
            continue
    return found


def sidecar_path(photo: str | Path, naming: Naming = "full") -> Path:
    """The sidecar to write: an existing one of either name, else the chosen naming."""
    existing = sidecars_of(photo)
    if existing:
        return existing[0]
    full, stem = sidecar_names(photo)
    return full if naming == "full" else stem


# ---- XML helpers --------------------------------------------------------------------------


def qname(tag: str) -> str:
    prefix, name = tag.split(":")
    return f"{{{NS[prefix]}}}{name}"


def _empty() -> ET.Element:
    root = ET.Element(qname("x:xmpmeta"))
    rdf = ET.SubElement(root, qname("rdf:RDF"))
    ET.SubElement(rdf, qname("rdf:Description"), {qname("rdf:about"): ""})
    return root


def items_of(prop: ET.Element) -> list[str]:
    """An array property's entries; a bare text value (not valid XMP, but written) is one."""
    array = next((c for c in prop if c.tag in (qname("rdf:Bag"), qname("rdf:Seq"), qname("rdf:Alt"))), None)
    texts = [prop.text or ""] if array is None else [li.text or "" for li in array if li.tag == qname("rdf:li")]
    return [t.strip() for t in texts if t.strip()]


def levels_of(keyword: str, sep: str | None) -> tuple[str, ...]:
    """A keyword's levels, top first; empty levels (``a||b``, a trailing ``/``) are dropped."""
    parts = [keyword] if sep is None else keyword.split(sep)
    return tuple(p.strip() for p in parts if p.strip())


def casefolded(levels: Iterable[str]) -> tuple[str, ...]:
    return tuple(level.casefold() for level in levels)


def subject_keywords(sidecar: str | Path) -> list[str]:
    """Every ``dc:subject`` keyword of one sidecar, epsilon-tag's included; [] if unreadable."""
    try:
        root = ET.parse(sidecar).getroot()
    except (ET.ParseError, OSError):
        return []
    return [k for prop in root.iter(qname("dc:subject")) for k in items_of(prop)]


# ---- writing ------------------------------------------------------------------------------


def _entries(
    keywords: Sequence[str], own: Sequence[str], parent: str | None
) -> dict[View, tuple[list[str], list[str]]]:
    """What each view should hold, as (the photographer's, the model's): their keywords as
    they came, the model's flat in dc:subject and under ``parent`` in the hierarchical views."""
    theirs = [levels for k in own if (levels := levels_of(k, "|"))]
    above = levels_of(parent, "|") if parent else ()
    model = [(*above, k.strip()) for k in keywords if k.strip()]
    views: dict[View, tuple[list[str], list[str]]] = {}
    for view, spell in ((SUBJECT, lambda p: p[-1]), (HIERARCHY, "|".join), (TAGS_LIST, "/".join)):
        copied = _unique(spell(p) for p in theirs)
        taken = {e.casefold() for e in copied}  # a word both theirs and the model's is theirs
        views[view] = (copied, [e for e in _unique(spell(p) for p in model) if e.casefold() not in taken])
    return views


def _unique(entries: Iterable[str]) -> list[str]:
    """Each entry once, the first spelling kept: readers treat keywords case-insensitively."""
    seen: dict[str, str] = {}
    for entry in entries:
        seen.setdefault(entry.casefold(), entry)
    return list(seen.values())


def write_sidecar(
    photo: str | Path,
    keywords: Sequence[str],
    naming: Naming = "full",
    *,
    own: Sequence[str] = (),
    confirmed: Sequence[str] = (),
    parent: str | None = DEFAULT_PARENT,
) -> tuple[Path, bool]:
    """Merge the model's ``keywords`` and the photographer's ``own`` (``|``-joined paths)
    into the photo's sidecar, recording which of ``own`` a person ``confirmed`` in
    epsilon-tag; returns (sidecar, whether it existed)."""
    path = sidecar_path(photo, naming)
    if len(os.fsencode(path.name)) > 255:  # the limit of every common file system
        raise SidecarError(
            f"{path.name[:40]}... is too long a name for a sidecar (over 255 bytes): rename the photo, or "
            f"export with --naming stem"
        )
    existed = path.exists()
    root = _load(path) if existed else _empty()
    rdf = root if root.tag == qname("rdf:RDF") else root.find(qname("rdf:RDF"))
    if rdf is None:
        raise SidecarError(f"{path} has no rdf:RDF element; left untouched")
    description = _description(rdf)
    for view, wanted in _entries(keywords, own, parent).items():
        _merge(rdf, description, view, wanted, parent)
    _record(rdf, description, CONFIRMED, _unique(confirmed))
    ET.indent(root)
    _atomic_write(path, ET.tostring(root, encoding="unicode", xml_declaration=False))
    return path, existed


def _load(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise SidecarError(f"{path} is not readable XML ({exc}); left untouched") from exc


def _description(rdf: ET.Element) -> ET.Element:
    """Several descriptions are legal XMP: keywords go where keywords already are."""
    descriptions = rdf.findall(qname("rdf:Description"))
    for description in descriptions:
        if description.find(qname("dc:subject")) is not None:
            return description
    if descriptions:
        return descriptions[0]
    return ET.SubElement(rdf, qname("rdf:Description"), {qname("rdf:about"): ""})


def _array(rdf: ET.Element, description: ET.Element, view: View) -> tuple[ET.Element, ET.Element]:
    """The view's property (wherever it already is, else new in ``description``) and its array."""
    prop = next(rdf.iter(qname(view.prop)), None)
    if prop is None:
        prop = ET.SubElement(description, qname(view.prop))
    array = next((c for c in prop if c.tag in (qname("rdf:Bag"), qname("rdf:Seq"), qname("rdf:Alt"))), None)
    if array is None:
        text = (prop.text or "").strip()  # a bare value: made the array's first entry
        prop.text = None
        array = ET.SubElement(prop, qname(view.array))
        if text:
            ET.SubElement(array, qname("rdf:li")).text = text
    return prop, array


def _merge(
    rdf: ET.Element, description: ET.Element, view: View, wanted: tuple[list[str], list[str]], parent: str | None
) -> None:
    """``wanted`` (the photographer's copied, the model's) into the view's array, in place of
    what epsilon-tag put there last time; everything else in it stays."""
    prop, array = _array(rdf, description, view)
    ours_before = _ours_before(rdf, array, view, parent)
    theirs = {li.text or "" for li in array} - ours_before
    entries = [*wanted[0], *wanted[1]]
    for li in list(array):
        # Our own entries from the last export make way for the new ones; a person's stay.
        if (li.text or "") in ours_before and (li.text or "") not in entries:
            array.remove(li)
    present = {li.text for li in array}
    for entry in entries:
        if entry not in present:
            ET.SubElement(array, qname("rdf:li")).text = entry
    if len(array) == 0:  # nothing left: no empty property for readers to trip on
        _parent_of(rdf, prop).remove(prop)
    for record, kept in ((view.record, wanted[1]), (view.copied, wanted[0])):
        _record(rdf, description, record, [e for e in kept if e not in theirs])


def _ours_before(rdf: ET.Element, array: ET.Element, view: View, parent: str | None) -> set[str]:
    """What epsilon-tag put in this view: its records, and where another program dropped them,
    the reader's rule: whatever is under our parent, and in dc:subject the levels of those."""
    found = recorded(rdf, view.record) | recorded(rdf, view.copied)
    if not parent:
        return found
    if view.sep is not None:
        return found | {e for li in array if _under(e := li.text or "", view.sep, parent)}
    if has_record(rdf):
        return found
    levels = {
        level
        for v in (HIERARCHY, TAGS_LIST)
        for prop in rdf.iter(qname(v.prop))
        for e in items_of(prop)
        if v.sep is not None and _under(e, v.sep, parent)
        for level in casefolded(levels_of(e, v.sep))
    }
    return {e for li in array if (e := li.text or "").strip().casefold() in levels}


def has_record(root: ET.Element) -> bool:
    records = (qname(r) for v in VIEWS for r in (v.record, v.copied))
    return any(next(root.iter(r), None) is not None for r in records) or any(
        d.get(_OURS_BEFORE) is not None for d in root.iter(qname("rdf:Description"))
    )


def _under(entry: str, sep: str, parent: str) -> bool:
    levels, above = casefolded(levels_of(entry, sep)), casefolded(levels_of(parent, "|"))
    return bool(levels) and levels[: len(above)] == above


def _parent_of(rdf: ET.Element, child: ET.Element) -> ET.Element:
    return next(node for node in rdf.iter() if child in list(node))


def recorded(root: ET.Element, record: str) -> set[str]:
    """The entries a record of epsilon-tag's lists (the first release's attribute too)."""
    found = {k for bag in root.iter(qname(record)) for k in items_of(bag)}
    if record == SUBJECT.record:
        for description in root.iter(qname("rdf:Description")):
            found |= {k.strip() for k in description.get(_OURS_BEFORE, "").split(",") if k.strip()}
    return found


def _record(rdf: ET.Element, description: ET.Element, record: str, entries: Sequence[str]) -> None:
    """Replace a record, where the old one was (an unchanged export rewrites the same bytes)."""
    place: tuple[ET.Element, int] | None = None
    for holder in list(rdf.iter(qname("rdf:Description"))):
        for old in holder.findall(qname(record)):
            place = place or (holder, list(holder).index(old))
            holder.remove(old)
        if record == SUBJECT.record:
            holder.attrib.pop(_OURS_BEFORE, None)
    if entries or record == SUBJECT.record:  # an empty "added" still says a record is kept here
        holder, at = place or (description, len(description))
        element = ET.Element(qname(record))
        holder.insert(at, element)
        bag = ET.SubElement(element, qname("rdf:Bag"))
        for entry in entries:
            ET.SubElement(bag, qname("rdf:li")).text = entry


def _mode_for(path: Path) -> int:
    """A rewritten sidecar keeps its permissions; a new one gets what the umask gives any
    new file (mkstemp's private 0600 would hide it from the other programs that read it)."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _atomic_write(path: Path, text: str) -> None:
    mode = _mode_for(path)
    # A short temporary name: the photo's own may leave no room for a longer one.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".epsilon-tag-", suffix=".xmp.tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n')
            handle.write(text)
            handle.write('\n<?xpacket end="w"?>\n')
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _clashes(photos: Sequence[dict], naming: Naming) -> list[tuple[str, str]]:
    """Two photos whose sidecar is the same file (pair.jpg and pair.png -> pair.xmp): either
    would overwrite the other's tags, so neither is written and both are reported."""
    by_sidecar: dict[Path, list[str]] = {}
    for row in photos:
        by_sidecar.setdefault(sidecar_path(row["path"], naming), []).append(row["path"])
    failed = []
    for sidecar, sharing in by_sidecar.items():
        if len(sharing) > 1:
            names = " and ".join(Path(p).name for p in sharing)
            reason = (
                f"{sidecar.name} would hold the tags of {names}: not written; --naming full gives each its own sidecar"
            )
            failed += [(p, reason) for p in sharing]
    return failed


def export_sidecars(
    library: Library,
    under: Sequence[str] = (),
    *,
    naming: Naming = "full",
    min_score: float | None = None,
    top: int | None = None,
    own: Callable[[int], list[str]] | None = None,
    confirmed: Callable[[int], list[str]] | None = None,
    parent: str | None = DEFAULT_PARENT,
) -> tuple[int, int, list[tuple[str, str]]]:
    """Write every present photo's tags to its sidecar: those it shows (the model's tag rule),
    or, with ``min_score``, every stored tag at least that confident; at most ``top``; with
    ``own`` (a photo id -> its photographer's keywords), those beside them, and which of them
    a person ``confirmed`` in epsilon-tag (recorded).
    Returns (sidecars written new, sidecars merged, [(path, reason) that failed])."""
    written = merged = 0
    photos = list(library.present_photos(under))
    failed = _clashes(photos, naming)
    clashing = {p for p, _ in failed}
    for row in photos:
        if row["path"] in clashing:
            continue
        tags = library.photo_tags(row["id"], every=min_score is not None)
        keywords = [t["word"] for t in tags if min_score is None or t["score"] >= min_score][:top]
        try:
            theirs = own(row["id"]) if own is not None else []
            given = confirmed(row["id"]) if confirmed is not None else []
            _, existed = write_sidecar(row["path"], keywords, naming, own=theirs, confirmed=given, parent=parent)
        except SidecarError as exc:
            failed.append((row["path"], str(exc)))
            continue
        except OSError as exc:  # a read-only folder, a vanished photo's folder
            failed.append((row["path"], f"cannot write its sidecar: {exc.strerror or exc}"))
            continue
        merged += existed
        written += not existed
    return written, merged, failed


# ---- reading ------------------------------------------------------------------------------
