"""The captioned image set, assembled from registry packages (``make images``).

Sources (licences are written next to the data in ``LICENCES.md`` and per image in the index):

- scikit-image's bundled sample photos (PyPI ``scikit-image``), captions written here from each
  image's documented content; public domain / CC0 as the scikit-image docstrings state.
- Debian ``tuxpaint-stamps-default``: ~800 PNG stamps, each with an English description in its
  ``.txt`` file (first line); GPL-2. Label: the stamp's top-level category (animals, food, ...).
- Debian ``openclipart-png`` + ``openclipart-svg``: pre-rendered clip art, captioned with the
  ``dc:title`` (and a short ``dc:description``) of the matching SVG; public domain. Label: top folder.

The ``.deb`` files are fetched with ``apt-get download`` and unpacked with ``dpkg -x`` into
``<cache>/vision/debs`` (no system install). Images are stored as RGB PNGs (longest side at most
``STORED_SIDE``) named by content hash, and split into train / test by a hash of the caption, so
images sharing a caption (colour variants) never straddle the split. ``index.jsonl`` holds one
record per image.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from jasper_rag.config import get_settings
from jasper_rag.jsonl import json_objects
from jasper_rag.vision.images import ImageLoadError, load_image

log = logging.getLogger(__name__)

INDEX_FILE = "index.jsonl"
LICENCES_FILE = "LICENCES.md"
STORED_SIDE = 448
TEST_PERCENT = 20
MAX_IMAGES_PER_CAPTION = 3  # a title shared by more images names a collection ("Flat Icon Collection"), not the image
SPLITS = ("train", "test")

SKIMAGE_CAPTIONS: dict[str, tuple[str, str]] = {  # file -> (caption, licence)
    "astronaut.png": ("the astronaut Eileen Collins in her flight suit in front of the American flag", "public domain"),
    "camera.png": ("a black and white photo of a man standing behind a camera on a tripod", "CC0 (Lav Varshney)"),
    "chelsea.png": ("a ginger tabby cat looking to the side", "CC0 (Stefan van der Walt)"),
    "coffee.png": ("a cup of coffee on a saucer with a spoon", "CC0 (Rachel Michetti)"),
    "coins.png": ("old Greek coins from Pompeii on a dark background", "no known copyright restrictions"),
    "horse.png": ("a black silhouette of a running horse", "CC0 (Andreas Preuss)"),
    "hubble_deep_field.jpg": (
        "many distant galaxies in deep space seen by the Hubble telescope",
        "public domain (NASA)",
    ),
    "moon.png": ("the cratered surface of the moon", "scikit-image sample data"),
    "rocket.jpg": ("a Falcon 9 rocket launching into the sky", "public domain (SpaceX)"),
    "retina.jpg": ("a medical photograph of the human retina with its blood vessels", "CC0"),
    "brick.png": ("a wall of bricks", "CC0 (CC0Textures)"),
    "grass.png": ("a close-up of green grass", "CC0 (CC0Textures)"),
    "gravel.png": ("a close-up of grey gravel stones", "CC0 (CC0Textures)"),
    "cell.png": ("a single cell floating in saline under a microscope", "CC0"),
    "ihc.png": ("a microscope slide of tissue stained brown and blue", "no known copyright restrictions"),
    "clock_motion.png": ("a motion blurred photo of a wall clock", "public domain (Stefan van der Walt)"),
    "motorcycle_left.png": ("a motorcycle parked in front of a wall of shelves", "Middlebury stereo data set"),
    "page.png": ("a scanned page of printed text", "scikit-image sample data"),
}

OPENCLIPART_SKIP_FOLDERS = {"unsorted", "special"}
TUXPAINT_LABELS = {"naturalforces": "natural forces"}  # category folders whose name is not plain words
_GENERIC_TITLE = re.compile(r"^(clipart by|open clip art|untitled|image|drawing|\d+$)", re.IGNORECASE)


class ImageSetError(ValueError):
    """The captioned image set is missing or one of its records is malformed."""


@dataclass(frozen=True)
class CaptionedImage:
    """One stored image: its file (relative to the set's folder), caption, label, source, licence, split."""

    file: str
    caption: str
    label: str
    source: str
    licence: str
    split: str


@dataclass(frozen=True)
class RawImage:
    """An image found in a source package, before it is stored."""

    path: Path
    caption: str
    label: str
    source: str
    licence: str


# ----------------------------------------------------------------------------- reading
def read_image_set(folder: Path | None = None, split: str | None = None) -> list[CaptionedImage]:
    """The records of the image set (optionally one split), with errors naming the file and line."""
    folder = folder or get_settings().images_dir
    index = folder / INDEX_FILE
    if not index.is_file():
        raise ImageSetError(f"{index} not found: build the captioned image set with `make images`")
    records = []
    for number, fields in json_objects(index.read_text(encoding="utf-8").splitlines(), ImageSetError, str(index)):
        try:
            record = CaptionedImage(**fields)
        except TypeError as err:
            raise ImageSetError(f"{index}, line {number}: malformed record ({err})") from err
        if record.split not in SPLITS or not record.caption.strip():
            raise ImageSetError(f"{index}, line {number}: needs a caption and a split in {SPLITS}")
        if split is None or record.split == split:
            records.append(record)
    return records


# ----------------------------------------------------------------------------- sources
def skimage_photos() -> Iterator[RawImage]:
    """scikit-image's bundled photos with the captions above."""
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    for name, (caption, licence) in SKIMAGE_CAPTIONS.items():
        if (folder / name).is_file():
            yield RawImage(folder / name, caption, "", "scikit-image", licence)


def tuxpaint_stamps(root: Path) -> Iterator[RawImage]:
    """Tux Paint stamps: PNG + English description (first line of the sibling ``.txt``)."""
    stamps = root / "usr/share/tuxpaint/stamps"
    for png in sorted(stamps.rglob("*.png")):
        description = png.with_suffix(".txt")
        if not description.is_file():
            continue
        lines = description.read_text(encoding="utf-8", errors="replace").splitlines()
        caption = lines[0].strip() if lines else ""
        if caption and "=" not in caption.split(" ")[0]:
            folder = png.relative_to(stamps).parts[0]
            label = TUXPAINT_LABELS.get(folder, folder)
            yield RawImage(png, caption, label, "tuxpaint-stamps", "GPL-2 (Tux Paint stamps, Bill Kendrick et al.)")


def svg_caption(svg: Path) -> str:
    """``dc:title`` (+ a short ``dc:description``) of an Open Clip Art SVG; '' when only generic."""
    text = svg.read_text(encoding="utf-8", errors="replace")
    titles = [t.strip() for t in re.findall(r"<dc:title>([^<]*)</dc:title>", text)]
    title = next((t for t in titles if t and not _GENERIC_TITLE.match(t)), "")
    if not title:
        return ""
    description = next(iter(re.findall(r"<dc:description>([^<]*)</dc:description>", text)), "").strip()
    if description and len(description) <= 120 and description.lower() != title.lower():
        return f"{title}. {description}"
    return title


def openclipart(png_root: Path, svg_root: Path) -> Iterator[RawImage]:
    """Open Clip Art PNGs captioned from their SVG metadata."""
    pngs = png_root / "usr/share/openclipart/png"
    svgs = svg_root / "usr/share/openclipart/svg"
    for png in sorted(pngs.rglob("*.png")):
        relative = png.relative_to(pngs)
        svg = (svgs / relative).with_suffix(".svg")
        if relative.parts[0] in OPENCLIPART_SKIP_FOLDERS or not svg.is_file():
            continue
        caption = svg_caption(svg)
        if caption:
            label = relative.parts[0].replace("_", " ")
            yield RawImage(png, caption, label, "openclipart", "public domain (Open Clip Art Library)")


def fetch_deb(package: str, cache: Path) -> Path:
    """Download a Debian package with ``apt-get download`` and unpack it with ``dpkg -x`` (once)."""
    target = cache / package
    if target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        log.info("downloading the Debian package %s", package)
        for command in (["apt-get", "download", package], ["sh", "-c", f"dpkg -x {package}_*.deb unpacked"]):
            result = subprocess.run(command, cwd=tmp, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"`{' '.join(command)}` failed for {package}: {result.stderr.strip()}")
        (Path(tmp) / "unpacked").rename(target)
    return target


# ----------------------------------------------------------------------------- building
def split_of(caption: str) -> str:
    """Deterministic train/test assignment from the caption (same caption, same split)."""
    digest = hashlib.sha256(caption.strip().lower().encode()).digest()
    return "test" if int.from_bytes(digest[:4], "big") % 100 < TEST_PERCENT else "train"


def _store(raw: RawImage, folder: Path) -> CaptionedImage | None:
    try:
        image = load_image(raw.path)
    except ImageLoadError as err:
        log.warning("skipping %s", err)
        return None
    image.thumbnail((STORED_SIDE, STORED_SIDE))
    digest = hashlib.sha256(image.tobytes()).hexdigest()[:12]
    slug = re.sub(r"[^a-z0-9]+", "-", raw.path.stem.lower()).strip("-")[:40]
    relative = Path("files") / raw.source / f"{slug}-{digest}.png"
    if not (folder / relative).is_file():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        image.save(folder / relative)
    return CaptionedImage(str(relative), raw.caption, raw.label, raw.source, raw.licence, split_of(raw.caption))


def _sample(raws: list[RawImage], limit: int) -> list[RawImage]:
    """At most ``limit`` descriptively captioned images, chosen by a hash of the path (stable across runs).

    Captions carried by more than ``MAX_IMAGES_PER_CAPTION`` images are dropped first."""
    counts = Counter(raw.caption.strip().lower() for raw in raws)
    described = [raw for raw in raws if counts[raw.caption.strip().lower()] <= MAX_IMAGES_PER_CAPTION]
    if len(described) < len(raws):
        log.info("dropping %d images whose caption names a collection", len(raws) - len(described))
    ranked = sorted(described, key=lambda raw: hashlib.sha256(str(raw.path.name).encode()).hexdigest())
    return sorted(ranked[:limit], key=lambda raw: str(raw.path))


def build_image_set(folder: Path | None = None, max_per_source: int = 2000) -> dict[str, dict[str, int]]:
    """Fetch the sources, store the images and write ``index.jsonl`` + ``LICENCES.md`` atomically.

    Returns image counts per source and split."""
    folder = folder or get_settings().images_dir
    debs = get_settings().cache_dir / "vision" / "debs"
    sources = {
        "scikit-image": list(skimage_photos()),
        "tuxpaint-stamps": list(tuxpaint_stamps(fetch_deb("tuxpaint-stamps-default", debs))),
        "openclipart": list(openclipart(fetch_deb("openclipart-png", debs), fetch_deb("openclipart-svg", debs))),
    }
    folder.mkdir(parents=True, exist_ok=True)
    records: list[CaptionedImage] = []
    seen: set[str] = set()
    for source, raws in sources.items():
        for raw in tqdm(_sample(raws, max_per_source), desc=f"storing {source}", unit="image"):
            record = _store(raw, folder)
            if record is not None and record.file not in seen:
                seen.add(record.file)
                records.append(record)
    _write_atomic(folder / INDEX_FILE, "".join(json.dumps(asdict(r)) + "\n" for r in records))
    _write_atomic(folder / LICENCES_FILE, _licences_text(records))
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        counts.setdefault(record.source, dict.fromkeys(SPLITS, 0))[record.split] += 1
    return counts


def _licences_text(records: list[CaptionedImage]) -> str:
    lines = [
        "# Licences of the captioned image set",
        "",
        "Built by `make images` from registry packages; every image's licence is also in `index.jsonl`.",
        "",
        "| source | package | licence | images |",
        "|---|---|---|---|",
    ]
    packages = {
        "scikit-image": "PyPI scikit-image (bundled sample data)",
        "tuxpaint-stamps": "Debian tuxpaint-stamps-default",
        "openclipart": "Debian openclipart-png + openclipart-svg (captions)",
    }
    for source, package in packages.items():
        mine = [r for r in records if r.source == source]
        licences = sorted({r.licence for r in mine})
        lines.append(f"| {source} | {package} | {'; '.join(licences)} | {len(mine)} |")
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
