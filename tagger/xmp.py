"""XMP sidecars: the photo's tags as ``dc:subject`` keywords, beside the original, never in it.

digiKam and darktable read ``photo.jpg.xmp``, Lightroom ``photo.xmp``; an existing sidecar
of either name is updated in place, otherwise a new one is written under the chosen name.
Keywords already in a sidecar are kept. The keywords epsilon-tag added are recorded in the
sidecar (``epsilontag:added``, an rdf:Bag), so a later export replaces its own old tags
and only those; a keyword the photographer had before epsilon-tag wrote the same word is
never recorded as ours, so it stays theirs whatever later exports do.
"""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from trainer.errors import UserError

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
_OURS = f"{{{NS['epsilontag']}}}added"  # an rdf:Bag of the keywords epsilon-tag added
_OURS_BEFORE = f"{{{NS['epsilontag']}}}keywords"  # what releases before it wrote: a comma-joined attribute


class SidecarError(UserError, RuntimeError):
    """A sidecar exists but cannot be parsed or written; the message says which and why."""


def sidecar_path(photo: str | Path, naming: Naming = "full") -> Path:
    """The sidecar to write: an existing one of either name, else the chosen naming."""
    photo = Path(photo)
    full, stem = photo.with_name(photo.name + ".xmp"), photo.with_suffix(".xmp")
    for existing in (full, stem):
        try:
            if existing.exists():
                return existing
        except OSError:  # a name too long for the file system: no such sidecar can exist
            continue
    return full if naming == "full" else stem


def _q(tag: str) -> str:
    prefix, name = tag.split(":")
    return f"{{{NS[prefix]}}}{name}"


def _empty() -> ET.Element:
    root = ET.Element(_q("x:xmpmeta"))
    rdf = ET.SubElement(root, _q("rdf:RDF"))
    ET.SubElement(rdf, _q("rdf:Description"), {_q("rdf:about"): ""})
    return root


def read_keywords(path: str | Path) -> list[str]:
    """The ``dc:subject`` keywords of a sidecar."""
    root = ET.parse(path).getroot()
    return [li.text or "" for li in root.iter(_q("rdf:li")) if _in_subject(root, li)]


def _in_subject(root: ET.Element, li: ET.Element) -> bool:
    return any(li in bag.iter() for subject in root.iter(_q("dc:subject")) for bag in subject)


def write_sidecar(photo: str | Path, keywords: Sequence[str], naming: Naming = "full") -> tuple[Path, bool]:
    """Merge ``keywords`` into the photo's sidecar; returns (sidecar, whether it existed)."""
    path = sidecar_path(photo, naming)
    if len(os.fsencode(path.name)) > 255:  # the limit of every common file system
        raise SidecarError(
            f"{path.name[:40]}... is too long a name for a sidecar (over 255 bytes): rename the photo, or "
            f"export with --naming stem"
        )
    existed = path.exists()
    if existed:
        try:
            tree = ET.parse(path)
        except (ET.ParseError, OSError) as exc:
            raise SidecarError(f"{path} is not readable XML ({exc}); left untouched") from exc
        root = tree.getroot()
    else:
        root = _empty()
    rdf = root if root.tag == _q("rdf:RDF") else root.find(_q("rdf:RDF"))
    if rdf is None:
        raise SidecarError(f"{path} has no rdf:RDF element; left untouched")
    descriptions = rdf.findall(_q("rdf:Description"))
    # Several descriptions are legal XMP: keywords go where keywords already are.
    description = next(
        (d for d in descriptions if d.find(_q("dc:subject")) is not None), descriptions[0] if descriptions else None
    )
    if description is None:
        description = ET.SubElement(rdf, _q("rdf:Description"), {_q("rdf:about"): ""})
    subject = description.find(_q("dc:subject"))
    if subject is None:
        subject = ET.SubElement(description, _q("dc:subject"))
    bag = subject.find(_q("rdf:Bag"))
    if bag is None:
        bag = ET.SubElement(subject, _q("rdf:Bag"))

    ours_before = _ours(description)
    theirs = {li.text or "" for li in bag} - ours_before
    for li in list(bag):
        # Our own keywords from the last export make way for the new ones; a person's stay.
        if (li.text or "") in ours_before and (li.text or "") not in keywords:
            bag.remove(li)
    present = {li.text for li in bag}
    for keyword in keywords:
        if keyword not in present:
            ET.SubElement(bag, _q("rdf:li")).text = keyword
    _record_ours(description, [k for k in keywords if k not in theirs])
    ET.indent(root)
    _atomic_write(path, ET.tostring(root, encoding="unicode", xml_declaration=False))
    return path, existed


def _ours(description: ET.Element) -> set[str]:
    """The keywords epsilon-tag added to this sidecar (either record it ever wrote)."""
    added = description.find(_OURS)
    if added is not None:
        return {li.text or "" for li in added.iter(_q("rdf:li"))}
    return set(filter(None, description.get(_OURS_BEFORE, "").split(",")))


def _record_ours(description: ET.Element, keywords: Sequence[str]) -> None:
    for old in description.findall(_OURS):
        description.remove(old)
    description.attrib.pop(_OURS_BEFORE, None)
    bag = ET.SubElement(ET.SubElement(description, _OURS), _q("rdf:Bag"))
    for keyword in keywords:
        ET.SubElement(bag, _q("rdf:li")).text = keyword


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


def export_sidecars(
    library: Library,
    under: Sequence[str] = (),
    *,
    naming: Naming = "full",
    min_score: float | None = None,
    top: int | None = None,
) -> tuple[int, int, list[tuple[str, str]]]:
    """Write every present photo's tags to its sidecar: those it shows (the model's tag rule),
    or, with ``min_score``, every stored tag at least that confident; at most ``top``.
    Returns (sidecars written new, sidecars merged, [(path, reason) that failed])."""
    written = merged = 0
    failed: list[tuple[str, str]] = []
    photos = list(library.present_photos(under))
    # Two photos whose sidecar is the same file (pair.jpg and pair.png -> pair.xmp): either
    # would overwrite the other's tags, so neither is written and both are reported.
    by_sidecar: dict[Path, list[str]] = {}
    for row in photos:
        by_sidecar.setdefault(sidecar_path(row["path"], naming), []).append(row["path"])
    for sidecar, sharing in by_sidecar.items():
        if len(sharing) > 1:
            names = " and ".join(Path(p).name for p in sharing)
            failed += [
                (
                    p,
                    f"{sidecar.name} would hold the tags of {names}: not written; --naming full gives "
                    f"each its own sidecar",
                )
                for p in sharing
            ]
    clashing = {p for p, _ in failed}
    for row in photos:
        if row["path"] in clashing:
            continue
        tags = library.photo_tags(row["id"], every=min_score is not None)
        keywords = [t["word"] for t in tags if min_score is None or t["score"] >= min_score][:top]
        try:
            _, existed = write_sidecar(row["path"], keywords, naming)
        except SidecarError as exc:
            failed.append((row["path"], str(exc)))
            continue
        except OSError as exc:  # a read-only folder, a vanished photo's folder
            failed.append((row["path"], f"cannot write its sidecar: {exc.strerror or exc}"))
            continue
        merged += existed
        written += not existed
    return written, merged, failed
