"""Safety review of the code itself: no pickle, no ``torch.load`` without ``weights_only=True``, no shell
built from strings, no ``eval``/``exec``, no remote code; shell commands given as formatted strings are
listed for review. Scans the product code (``jasper_rag/``, ``ingest/``, ``app.py``) with ``ast``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT
from tests.reliability_report import record

SOURCES = [*sorted((ROOT / "jasper_rag").rglob("*.py")), ROOT / "app.py"]
PICKLE_MODULES = {"pickle", "cPickle", "dill", "joblib", "shelve", "marshal"}
SHELLS = {"sh", "bash", "/bin/sh", "/bin/bash"}


def _name(node: ast.AST) -> str:
    """Dotted name of a call target (``torch.load``, ``subprocess.run``), or ''."""
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value) or '?'}.{node.attr}"  # '?': a call result, e.g. ``model.to(...).eval()``
    return node.id if isinstance(node, ast.Name) else ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _shell_list(node: ast.AST) -> bool:
    """A literal argv such as ``["sh", "-c", ...]``: a shell that parses a command string."""
    parts = node.elts if isinstance(node, ast.List | ast.Tuple) else []
    return (
        len(parts) >= 2
        and all(isinstance(part, ast.Constant) for part in parts[:2])
        and parts[0].value in SHELLS
        and parts[1].value == "-c"
    )


def review(path: Path) -> tuple[list[str], list[str], int]:
    """(findings that fail the test, shell commands to review, calls checked) for one file."""
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    findings, notes, calls = [], [], 0
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        at = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
            if any(name.split(".")[0] in PICKLE_MODULES for name in names):
                findings.append(f"{at}: imports a pickle-like module")
        if _shell_list(node):
            notes.append(f"{at}: runs `{node.elts[0].value} -c` with a command string (its parts must be constants)")
        if not isinstance(node, ast.Call):
            continue
        calls += 1
        name = _name(node.func)
        if name == "torch.load" and not _is_true(_keyword(node, "weights_only")):
            findings.append(f"{at}: torch.load without weights_only=True")
        if name in ("np.load", "numpy.load") and _is_true(_keyword(node, "allow_pickle")):
            findings.append(f"{at}: {name}(allow_pickle=True)")
        if name.startswith("subprocess.") and _is_true(_keyword(node, "shell")):
            findings.append(f"{at}: {name}(shell=True)")
        if name in ("os.system", "os.popen", "eval", "exec", "yaml.load", "pd.read_pickle", "pandas.read_pickle"):
            findings.append(f"{at}: {name}()")
        if _is_true(_keyword(node, "trust_remote_code")):
            findings.append(f"{at}: trust_remote_code=True")
    return findings, notes, calls


def test_the_code_loads_no_pickle_and_builds_no_shell_from_strings():
    findings, notes, calls = [], [], 0
    for path in SOURCES:
        found, noted, checked = review(path)
        findings += found
        notes += noted
        calls += checked
    record(
        "safety",
        "Safety review (static, `ast`)",
        {
            "files scanned": len(SOURCES),
            "calls checked": calls,
            "pickle / unsafe torch.load / np.load(allow_pickle) / shell=True / os.system / eval / remote code": len(
                findings
            ),
            "shell command strings to review": len(notes),
            "UI uploads": "saved under JASPER_UPLOADS_DIR with generated names (see the uploads section)",
        },
        notes=findings + notes,
    )
    assert not findings, findings


def test_the_review_catches_each_unsafe_pattern(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nimport subprocess, os, torch, numpy as np\n"
        "torch.load('m.pt')\nnp.load('a.npy', allow_pickle=True)\nsubprocess.run('ls', shell=True)\n"
        "os.system('ls')\neval('1')\nf(trust_remote_code=True)\ncommand = ['sh', '-c', f'rm {x}']\n"
        "torch.load('ok.pt', weights_only=True)\nmodel.to('cpu').eval()\n"
    )
    findings, notes, _ = review(bad)
    assert len(findings) == 7 and len(notes) == 1, findings + notes
