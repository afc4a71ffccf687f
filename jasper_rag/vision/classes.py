"""ImageNet-1k class names, in the classifier's order, read from the ``timm`` wheel.

timm ships ``timm/data/_info/imagenet_synsets.txt`` (the 1,000 synsets in classifier order) and
``imagenet_synset_to_lemma.txt`` (WordNet lemmas). The wheel is fetched once with
``pip download --no-deps`` into the cache and read as a zip; timm itself is never installed.
The names are kept in ``<cache>/vision/imagenet_classes.json``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import zipfile
from pathlib import Path

from jasper_rag.config import get_settings

log = logging.getLogger(__name__)

TIMM_PIN = "timm==1.0.31"
SYNSETS_MEMBER = "timm/data/_info/imagenet_synsets.txt"
LEMMAS_MEMBER = "timm/data/_info/imagenet_synset_to_lemma.txt"
PROMPT = "a photo of a {}"


def class_prompts(names: list[str]) -> list[str]:
    """The caption-free start's class texts: ``"a photo of a {class}"``."""
    return [PROMPT.format(name) for name in names]


def names_from_wheel(wheel: Path) -> list[str]:
    """The 1,000 class names in classifier order: each synset's first lemma, or all its lemmas
    where the first one is shared by two synsets (``crane`` the bird and the machine)."""
    with zipfile.ZipFile(wheel) as archive:
        synsets = archive.read(SYNSETS_MEMBER).decode().split()
        lemma_lines = archive.read(LEMMAS_MEMBER).decode().splitlines()
    lemmas = dict(line.split("\t", 1) for line in lemma_lines if "\t" in line)
    missing = [synset for synset in synsets if synset not in lemmas]
    if len(synsets) != 1000 or missing:
        raise ValueError(f"{wheel}: expected 1000 synsets with lemmas, got {len(synsets)} ({len(missing)} unnamed)")
    first = [lemmas[synset].split(",")[0].strip() for synset in synsets]
    return [
        lemmas[synset].strip() if first.count(name) > 1 else name for synset, name in zip(synsets, first, strict=True)
    ]


def _download_timm_wheel(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheels = sorted(folder.glob("timm-*.whl"))
    if wheels:
        return wheels[-1]
    log.info("downloading the %s wheel (class names only) into %s", TIMM_PIN, folder)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", TIMM_PIN, "-d", str(folder)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob("timm-*.whl"))
    if result.returncode != 0 or not wheels:
        raise RuntimeError(f"could not download {TIMM_PIN} for the ImageNet class names: {result.stderr.strip()}")
    return wheels[-1]


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet class names (fetched and cached on first use)."""
    folder = get_settings().cache_dir / "vision"
    cached = folder / "imagenet_classes.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    names = names_from_wheel(_download_timm_wheel(folder))
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(json.dumps(names))
    tmp.replace(cached)
    return names
