"""The package's shape, as the README's Development section draws it: layers that import one way
only (import-linter's contract in pyproject.toml, function-level imports included) and a top level
that holds the architecture's folders, not loose modules."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(project: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_the_layers_import_one_way() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_inside_a_function_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "edgecam", tmp_path / "edgecam", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    errors = tmp_path / "edgecam" / "base" / "errors.py"
    errors.write_text(errors.read_text() + "\n\ndef _upwards() -> None:\n"
                      "    from edgecam.runtime import pipeline  # noqa: F401\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "edgecam.base.errors -> edgecam.runtime.pipeline" in result.stdout


def test_the_top_level_holds_folders_not_loose_modules() -> None:
    loose = sorted(p.name for p in (ROOT / "edgecam").glob("*.py"))
    assert len(loose) <= 8, loose
