"""The directions of the imports (README, "Architecture"): the store and the dashboard's queries
load no environment, no torch and no CLI; the import-linter contracts hold and cover the core."""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import fino

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("gymnasium", "torch", "typer", "rich")


@pytest.mark.parametrize("module", ["fino.store.db", "fino.store.queries", "fino_tui.queries",
                                    "fino.config", "fino.runfacts", "fino.status",
                                    "fino.exit_codes"])
def test_readers_import_without_environments_torch_or_the_cli(module: str) -> None:
    check = (f"import sys, {module}; "
             f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            cwd=REPO, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [], f"importing {module} loaded {result.stdout.strip()}"


def test_the_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    executable = str(lint_imports) if lint_imports.exists() else shutil.which("lint-imports")
    if executable is None:
        pytest.skip("lint-imports is not installed (pip install -e '.[dev]')")
    result = subprocess.run([executable, "--no-logo", "--no-cache"], capture_output=True,
                            text=True, cwd=REPO, check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_core_contract_names_every_module_of_fino_but_the_cli() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    core = next(c for c in config["contracts"] if set(c["forbidden_modules"]) >= {"fino.cli",
                                                                                   "fino_tui"})
    modules = {f"fino.{m.name}" for m in pkgutil.iter_modules(fino.__path__)}
    assert set(core["source_modules"]) == modules - {"fino.cli"}
