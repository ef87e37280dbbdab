"""The keywords a photographer already gave a photo, read from wherever they are: its
sidecars (either name), the XMP packet embedded in it and its IPTC keywords. Cheap enough
for scan's decode workers: the first bytes of the file, no pixels.

Keywords epsilon-tag wrote (``tagger.xmp``'s records, or anything under its parent
keyword) are not the photographer's and are left out.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, IptcImagePlugin

from .xmp import (
    CONFIRMED,
    DEFAULT_PARENT,
    HIERARCHY,
    SUBJECT,
    TAGS_LIST,
    View,
    casefolded,
    has_record,
    items_of,
    levels_of,
    qname,
    recorded,
    sidecars_of,
)

_HEAD = 256 * 1024  # a JPEG's APP segments (EXIF, XMP, IPTC) sit in its first 64-192 KiB
_MAX_PACKET = 2 * 1024 * 1024  # an XMP packet found by scanning is read at most this far
_XMP_APP1 = b"http://ns.adobe.com/xap/1.0/\x00"
_PACKET_START, _PACKET_END = b"<x:xmpmeta", b"</x:xmpmeta>"
_IPTC_KEYWORDS = (2, 25)


@dataclass
class _Packet:
    """The keywords one source holds (a sidecar, an embedded packet, IPTC): its flat words and
    its paths, less the copies it records; which it records as the model's (``ours_*``,
    lowercased); ``recorded``: whether it keeps any record of ours at all; ``confirmed``: the
    keywords a person confirmed in epsilon-tag, as it records them."""

    flat: list[str] = field(default_factory=list)
    paths: list[tuple[str, ...]] = field(default_factory=list)
    ours_flat: set[str] = field(default_factory=set)
    ours_paths: set[tuple[str, ...]] = field(default_factory=set)
    recorded: bool = False
    confirmed: list[str] = field(default_factory=list)


def read_keywords(photo: str | Path, *, parent: str | None = DEFAULT_PARENT) -> list[str]:
    """The photographer's own keywords: from the photo's sidecars, the XMP embedded in it and
    its IPTC keywords, hierarchical ones as ``|``-joined paths, in the order found. Keywords
    epsilon-tag wrote (recorded as ours, or under ``parent``) are left out. Never raises:
    an unreadable source gives nothing."""
    return read_own(photo, parent=parent)[0]


def read_own(photo: str | Path, *, parent: str | None = DEFAULT_PARENT) -> tuple[list[str], list[str]]:
    """``read_keywords``, and the keywords a person confirmed on the photo in epsilon-tag as
    its sidecars record them (``xmp.CONFIRMED``), each sidecar read once."""
    photo = Path(photo)
    packets = [p for sidecar in sidecars_of(photo) if (p := _sidecar_packet(sidecar)) is not None]
    confirmed: dict[str, str] = {}
    for keyword in (k for packet in packets for k in packet.confirmed):
        confirmed.setdefault(keyword.casefold(), keyword)
    return _theirs([*packets, *_embedded_packets(photo)], parent), list(confirmed.values())


def _sidecar_packet(sidecar: Path) -> _Packet | None:
    try:
        return _parse_packet(sidecar.read_bytes())
    except OSError:
        return None


def _parse_packet(data: bytes) -> _Packet | None:
    """The keywords of an XMP packet; None if it is not XML. A packet cut from a larger
    file is parsed from its ``<x:xmpmeta`` to its end."""
    root: ET.Element | None
    try:
        root = ET.fromstring(data)
    except (ET.ParseError, ValueError):
        cut = _cut(data)
        try:
            root = ET.fromstring(cut[0]) if cut else None
        except (ET.ParseError, ValueError):
            return None
    return None if root is None else _packet(root)


def _packet(root: ET.Element) -> _Packet:
    def entries(view: View) -> list[str]:  # less the photographer's keywords we copied there
        copies = {k.casefold() for k in recorded(root, view.copied)}
        return [k for prop in root.iter(qname(view.prop)) for k in items_of(prop) if k.casefold() not in copies]

    lightroom = [levels for k in entries(HIERARCHY) if (levels := levels_of(k, "|"))]
    # digiKam writes the same tree in both views: its paths count once, and a level holding
    # a "/" ("AC/DC") is not split by its digiKam spelling.
    known = {"/".join(casefolded(levels)) for levels in lightroom}
    digikam = [levels for k in entries(TAGS_LIST) if k.casefold() not in known and (levels := levels_of(k, "/"))]
    return _Packet(
        flat=entries(SUBJECT),
        paths=lightroom + digikam,
        ours_flat={k.casefold() for k in recorded(root, SUBJECT.record)},
        ours_paths={casefolded(levels_of(k, v.sep)) for v in (HIERARCHY, TAGS_LIST) for k in recorded(root, v.record)},
        recorded=has_record(root),
        confirmed=sorted(recorded(root, CONFIRMED)),
    )


def _theirs(packets: Sequence[_Packet], parent: str | None) -> list[str]:
    """The photographer's keywords of all sources, each once, in the order found."""
    above = casefolded(levels_of(parent, "|")) if parent else ()
    ours_paths = {p for packet in packets for p in packet.ours_paths}
    ours_flat = {k for packet in packets for k in packet.ours_flat}

    def ours(packet: _Packet, key: tuple[str, ...]) -> bool:
        if key in packet.ours_paths or (above and key[: len(above)] == above):
            return True
        # A source without a record (IPTC, a file another program copied our sidecar into):
        # what a record calls the model's is the model's there too.
        return not packet.recorded and (key in ours_paths or (len(key) == 1 and key[0] in ours_flat))

    kept: list[tuple[_Packet, tuple[str, ...]]] = []
    model: list[tuple[str, ...]] = []
    for packet in packets:
        for path in packet.paths:
            if ours(packet, casefolded(path)):
                model.append(path)
            else:
                kept.append((packet, path))
    their_levels = {level for _, path in kept for level in casefolded(path)}
    our_levels = ours_flat | set(above) | {level for path in [*model, *ours_paths] for level in casefolded(path)}
    found: dict[tuple[str, ...], str] = {}
    for packet in packets:
        for path in (path for owner, path in kept if owner is packet):
            found.setdefault(casefolded(path), "|".join(path))
        for word in packet.flat:
            key = word.casefold()
            if key in their_levels or key in packet.ours_flat or key in above:
                continue  # shown by its path already, or epsilon-tag's
            if key in our_levels and not packet.recorded:
                continue  # a level of the model's paths, where no record says whose it is
            found.setdefault((key,), word)
    return list(found.values())


# ---- keywords inside the photo ----------------------------------------------------------


def _embedded_packets(photo: Path) -> list[_Packet]:
    """The XMP and IPTC keywords inside the photo, read from its first bytes where it can."""
    try:
        with photo.open("rb") as handle:
            head = handle.read(_HEAD)
    except OSError:
        return []
    if head.startswith(b"\xff\xd8\xff"):
        xmp, iptc = _from_pillow(io.BytesIO(head), "JPEG")
        if xmp is None:  # a header longer than the head read: Pillow reads the file itself
            xmp, iptc = _from_pillow(photo, "JPEG")
    elif head[:4] in (b"II*\x00", b"MM\x00*"):
        xmp, iptc = _from_pillow(photo, "TIFF")
    else:
        xmp, iptc = None, []
    packets = [p for data in (xmp or _scanned(photo, head)) if (p := _parse_packet(data)) is not None]
    return packets + ([_Packet(flat=iptc)] if iptc else [])


def _from_pillow(source: Path | io.BytesIO, kind: str) -> tuple[list[bytes] | None, list[str]]:
    """XMP packets and IPTC keywords through Pillow, which reads only the headers; (None, [])
    where Pillow cannot open it."""
    try:
        with Image.open(source, formats=[kind]) as image:
            if kind == "JPEG":
                applist = getattr(image, "applist", [])
                xmp = [data[len(_XMP_APP1) :] for marker, data in applist if data.startswith(_XMP_APP1)]
            else:
                tag = getattr(image, "tag_v2", {}).get(700)
                xmp = [bytes(tag[0] if isinstance(tag, tuple) else tag)] if tag else []
            iptc = IptcImagePlugin.getiptcinfo(image) or {}
    except Exception:  # Pillow's parsers raise many kinds of error on a damaged file: none of them is ours
        return None, []
    return xmp, _iptc_keywords(iptc)


def _iptc_keywords(iptc: dict) -> list[str]:
    """IPTC 2:25 in UTF-8 where it decodes, else Latin-1: what 1:90 declares is no guide, as
    tools add the UTF-8 mark to a record whose older keywords stay Latin-1 (exiftool does)."""
    raw = iptc.get(_IPTC_KEYWORDS) or []
    words = []
    for value in [raw] if isinstance(raw, bytes) else raw:
        try:
            word = value.decode("utf-8")
        except UnicodeDecodeError:
            word = value.decode("latin-1")
        if word.strip():
            words.append(word.strip())
    return words


def _scanned(photo: Path, head: bytes) -> list[bytes]:
    """An XMP packet found by its text (PNG's iTXt, HEIC, RAW files): in the first bytes,
    else in the last, which is where writers that append metadata put it."""
    start = head.find(_PACKET_START)
    if start < 0:
        return _cut(_tail(photo, len(head)))
    if head.find(_PACKET_END, start) < 0:  # cut off by the head: read on from where it starts
        return _cut(_read_at(photo, start, _MAX_PACKET))
    return _cut(head[start:])


def _cut(data: bytes) -> list[bytes]:
    start = data.find(_PACKET_START)
    end = data.find(_PACKET_END, start)
    return [data[start : end + len(_PACKET_END)]] if 0 <= start <= end else []


def _tail(photo: Path, after: int) -> bytes:
    try:
        size = photo.stat().st_size
    except OSError:
        return b""
    return _read_at(photo, max(after, size - _HEAD), _HEAD) if size > after else b""


def _read_at(photo: Path, offset: int, length: int) -> bytes:
    try:
        with photo.open("rb") as handle:
            handle.seek(offset)
            return handle.read(length)
    except OSError:
        return b""
