"""Image reading: clear errors for corrupt, missing and huge images; preprocessing; class names."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jasper_rag.config import get_settings
from jasper_rag.vision.classes import LEMMAS_MEMBER, SYNSETS_MEMBER, class_prompts, names_from_wheel
from jasper_rag.vision.data import ImageSetError, read_image_set, split_of, svg_caption
from jasper_rag.vision.images import IMAGE_SIZE, ImageLoadError, load_image, to_pixels


@pytest.fixture
def pixel_limit(monkeypatch):
    """Set JASPER_MAX_IMAGE_PIXELS for one test."""

    def set_limit(limit: int) -> None:
        monkeypatch.setenv("JASPER_MAX_IMAGE_PIXELS", str(limit))
        get_settings.cache_clear()

    yield set_limit
    monkeypatch.delenv("JASPER_MAX_IMAGE_PIXELS", raising=False)
    get_settings.cache_clear()


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    with pytest.raises(ImageLoadError, match=r"broken\.png"):
        load_image(bad)


def test_truncated_image_is_a_clear_error(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ImageLoadError, match=r"cut\.jpg"):
        load_image(cut)


def test_missing_image_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="no such image file"):
        load_image(tmp_path / "nowhere.png")


def test_huge_image_is_refused_before_decoding(tmp_path: Path, pixel_limit) -> None:
    bomb = tmp_path / "bomb.png"
    Image.new("1", (4000, 4000)).save(bomb)  # 16M pixels in a few kB: a small decompression bomb
    pixel_limit(1_000_000)
    with pytest.raises(ImageLoadError, match=r"bomb\.png.*limit"):
        load_image(bomb)


def test_image_just_above_the_limit_is_refused(tmp_path: Path, pixel_limit) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (120, 100)).save(path)
    pixel_limit(10_000)
    with pytest.raises(ImageLoadError, match="limit"):
        load_image(path)
    with pytest.raises(ImageLoadError, match="limit"):
        to_pixels([Image.new("RGB", (120, 100))])


def test_to_pixels_shape_and_transparency_on_white() -> None:
    clear = Image.new("RGBA", (30, 60), (0, 0, 0, 0))
    batch = to_pixels([clear, Image.new("L", (500, 20), 0)])
    assert batch.shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert float(batch[0].min()) == pytest.approx(1.0)  # transparent -> white -> (1 - 0.5) / 0.5
    with pytest.raises(ImageLoadError, match="item 0"):
        to_pixels(["not an image"])  # type: ignore[list-item]


def test_class_names_from_a_wheel(tmp_path: Path) -> None:
    synsets = [f"n{i:08d}" for i in range(1000)]
    lemmas = {s: f"thing{i}, other{i}" for i, s in enumerate(synsets)}
    lemmas[synsets[1]] = "crane, bird crane"
    lemmas[synsets[2]] = "crane, machine"
    wheel = tmp_path / "timm-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(SYNSETS_MEMBER, "\n".join(synsets))
        archive.writestr(LEMMAS_MEMBER, "\n".join(f"{s}\t{v}" for s, v in lemmas.items()))
    names = names_from_wheel(wheel)
    assert names[0] == "thing0" and names[1] == "crane, bird crane" and names[2] == "crane, machine"
    assert class_prompts(names[:1]) == ["a photo of a thing0"]


def test_image_set_errors_and_split(tmp_path: Path) -> None:
    with pytest.raises(ImageSetError, match="make images"):
        read_image_set(tmp_path)
    (tmp_path / "index.jsonl").write_text('{"file": "a.png"}\n')
    with pytest.raises(ImageSetError, match=r"index\.jsonl, line 1"):
        read_image_set(tmp_path)
    assert split_of("A cat.") == split_of(" a cat. ")


def test_svg_caption_skips_generic_titles(tmp_path: Path) -> None:
    svg = tmp_path / "x.svg"
    svg.write_text(
        "<svg><dc:title>Clipart by Someone - x</dc:title><dc:title>Red Apple</dc:title>"
        "<dc:description>A shiny apple.</dc:description></svg>"
    )
    assert svg_caption(svg) == "Red Apple. A shiny apple."
    svg.write_text("<svg><dc:title>Open Clip Art Library</dc:title></svg>")
    assert svg_caption(svg) == ""


def test_pixel_limit_leaves_pillows_process_wide_guard_alone(tmp_path: Path, pixel_limit) -> None:
    before = Image.MAX_IMAGE_PIXELS
    small = tmp_path / "small.png"
    Image.new("RGB", (10, 10)).save(small)
    pixel_limit(50)
    with pytest.raises(ImageLoadError, match="above the limit"):
        load_image(small)
    assert before == Image.MAX_IMAGE_PIXELS
