"""EXIF fields and upright pixels from real camera files (skipped without ../shared)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tagger.images import UnreadablePhoto, open_photo, read_meta
from tests.helpers import DATA, require


@pytest.fixture
def photos():
    return require(DATA / "photos")


def test_gps_date_and_camera(photos):
    meta = read_meta(photos / "exif-samples" / "jpg" / "gps" / "DSCN0010.jpg")
    assert meta.camera == "NIKON COOLPIX P6000"
    assert meta.taken_at == "2008-10-22T16:28:39"
    assert meta.latitude == pytest.approx(43 + 28 / 60 + (1407 / 500) / 3600)
    assert meta.longitude == pytest.approx(11 + 53 / 60 + 6.45599999 / 3600)


def test_all_eight_orientations_come_out_upright(photos):
    folder = photos / "exif-samples" / "jpg" / "orientation"

    def standardised(path):
        image = np.asarray(open_photo(path, 300).convert("L"), dtype=np.float32)
        return (image - image.mean()) / image.std()

    for kind in ("landscape", "portrait"):
        reference = standardised(folder / f"{kind}_1.jpg")
        for k in range(1, 9):
            assert read_meta(folder / f"{kind}_{k}.jpg").orientation == k
            image = standardised(folder / f"{kind}_{k}.jpg")
            assert image.shape == reference.shape, f"{kind}_{k}"
            # The eight files differ in exposure; upright, they correlate almost perfectly
            # with the reference (a flipped one correlates about 0.1).
            assert (image * reference).mean() > 0.9, f"{kind}_{k} is not upright"


def test_heic_avif_and_lens(photos):
    meta = read_meta(photos / "exif-samples" / "heic" / "IMG_5195.HEIC")
    assert meta.camera == "Apple iPhone 11 Pro Max" and meta.lens.startswith("iPhone 11 Pro Max back")
    assert meta.taken_at == "2021-04-11T15:47:53"
    assert min(open_photo(photos / "exif-samples" / "heic" / "IMG_5195.HEIC", 256).size) >= 256
    assert open_photo(photos / "raw-and-modern" / "mountains.avif", 256).mode == "RGB"


def test_raw_preview_or_a_clear_reason(photos):
    preview = open_photo(
        photos / "raw-and-modern" / "nikon_z_9_high_efficiency_compressed_dx_cropped_max_overexposed.dng", 256
    )
    assert preview.size == (640, 424)
    with pytest.raises(UnreadablePhoto, match="without an embedded JPEG preview"):
        open_photo(photos / "raw-and-modern" / "sony_alpha_a7iii_raw_image.ARW", 256)
    assert read_meta(photos / "raw-and-modern" / "sony_alpha_a7iii_raw_image.ARW").camera == "SONY ILCE-7M3"


def test_corrupt_truncated_empty_and_bomb_files(photos, tmp_path):
    # Broken metadata never raises and never hangs (exif-samples' invalid/ folder).
    for path in sorted((photos / "exif-samples" / "jpg" / "invalid").glob("*.jpg")):
        read_meta(path)
    assert read_meta(photos / "exif-samples" / "jpg" / "corrupted.jpg").taken_at == "2015-09-08T11:02:17"
    whole = (photos / "exif-samples" / "jpg" / "gps" / "DSCN0010.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UnreadablePhoto, match="truncated"):
        open_photo(tmp_path / "truncated.jpg", 256)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    for name in ("empty.jpg", "text.png"):
        with pytest.raises(UnreadablePhoto, match="cannot decode"):
            open_photo(tmp_path / name, 256)
        assert read_meta(tmp_path / name).taken_at is None
    Image.new("1", (20_000, 20_000)).save(tmp_path / "bomb.png")  # 400 MP, a few KB on disk
    with pytest.raises(UnreadablePhoto, match="decompression bomb"):
        open_photo(tmp_path / "bomb.png", 256)


def test_jpeg_damage_is_the_gray_fill_at_the_bottom():
    from tagger.images import jpeg_damage

    pixels = np.random.default_rng(0).integers(0, 256, size=(40, 30, 3), dtype=np.uint8)
    assert jpeg_damage("a.jpg", Image.fromarray(pixels)) is None
    pixels[-7:] = 128  # what libjpeg leaves where the data ran out
    assert "bottom 7 of 40" in jpeg_damage("a.JPG", Image.fromarray(pixels))
    assert jpeg_damage("a.png", Image.fromarray(pixels)) is None  # only JPEG decoders fill so
    pixels[-7:, 3] = 127  # one pixel off in every row: a real picture, not a fill
    assert jpeg_damage("a.jpg", Image.fromarray(pixels)) is None
