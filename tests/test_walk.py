"""Which files a scan reads: formats, clutter, excludes, links and loops."""

from __future__ import annotations

import os

import pytest

from tagger.walk import Skipped, walk_photos


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def split(results):
    photos = [r for r in results if not isinstance(r, Skipped)]
    skipped = [r for r in results if isinstance(r, Skipped)]
    return photos, skipped


def test_photos_only_without_clutter(tmp_path):
    keep = [
        touch(tmp_path / "a.jpg"),
        touch(tmp_path / "B.JPEG"),
        touch(tmp_path / "trip 2024" / "été.heic"),
        touch(tmp_path / "raw" / "DSC_1.NEF"),
        touch(tmp_path / "x.avif"),
        touch(tmp_path / "scan.tiff"),
    ]
    for clutter in (
        ".hidden.jpg",
        "._a.jpg",
        "@eaDir/a.jpg",
        "__MACOSX/a.jpg",
        ".thumbnails/a.png",
        "notes.txt",
        "movie.mp4",
        "Thumbs.db",
    ):
        touch(tmp_path / clutter)
    photos, skipped = split(list(walk_photos([tmp_path])))
    assert sorted(photos) == sorted(keep) and skipped == []


def test_exclude_globs_match_names_and_paths(tmp_path):
    touch(tmp_path / "keep.jpg")
    touch(tmp_path / "exports" / "a.jpg")
    touch(tmp_path / "b.png")
    photos, _ = split(list(walk_photos([tmp_path], exclude=["exports", "*.png"])))
    assert photos == [tmp_path / "keep.jpg"]
    photos, _ = split(list(walk_photos([tmp_path], exclude=[f"{tmp_path}/exports/*"])))
    assert sorted(p.name for p in photos) == ["b.png", "keep.jpg"]


def test_symlink_loop_and_broken_link_are_reported_not_followed_forever(tmp_path):
    touch(tmp_path / "lib" / "a.jpg")
    (tmp_path / "lib" / "loop").symlink_to(tmp_path / "lib")
    (tmp_path / "lib" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    photos, skipped = split(list(walk_photos([tmp_path / "lib"])))
    assert photos == [tmp_path / "lib" / "a.jpg"]
    reasons = {s.path.name: s.reason for s in skipped}
    assert "loop" in reasons["loop"] and reasons["gone.jpg"] == "broken symlink"


def test_missing_root_and_single_file_root(tmp_path):
    photo = touch(tmp_path / "one.jpg")
    results = list(walk_photos([tmp_path / "absent", photo]))
    assert results[0] == Skipped(tmp_path / "absent", "no such file or folder") and results[1] == photo


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder, so none can be made unreadable")
def test_unreadable_folder_is_reported(tmp_path):
    touch(tmp_path / "locked" / "a.jpg")
    (tmp_path / "locked").chmod(0)
    try:
        _, skipped = split(list(walk_photos([tmp_path])))
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert skipped and "cannot" in skipped[0].reason
