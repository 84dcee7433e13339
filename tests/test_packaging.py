"""Installed like a library: the wheel and the sdist carry the presets, the study plans, the
migrations and the stylesheet; an installed wheel resolves presets without the checkout; a
command whose extra is missing names the extra to install."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fino.backends.base import TaskConfig, TaskError
from fino.train.presets import PresetError, build_run_config

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PRESET_FILES = sorted(p.name for p in (REPO / "presets").glob("*.toml"))
STUDY_FILES = sorted(p.name for p in (REPO / "benchmarks" / "studies").glob("*.toml"))
MIGRATIONS = sorted(str(p.relative_to(REPO)) for pattern in ("*.py", "*.mako", "versions/*.py")
                    for p in (REPO / "fino/store/migrations").glob(pattern))
STYLESHEETS = sorted(str(p.relative_to(REPO)) for p in (REPO / "fino_tui").glob("*.tcss"))
# What a build reads: the package sources, the folders shipped as package data, the metadata.
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "fino", "fino_tui", "presets",
                "benchmarks/studies")


def _modules(root: Path) -> set[str]:
    """Every .py of fino and fino_tui, relative to `root` (bytecode caches left out)."""
    return {str(p.relative_to(root)) for package in ("fino", "fino_tui")
            for p in (root / package).rglob("*.py") if "__pycache__" not in p.parts}


def test_every_package_of_the_checkout_is_listed_for_the_build():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {str(p.parent.relative_to(REPO)).replace("/", ".") for p in REPO.glob("fino*/**/*.py")
             if "__pycache__" not in p.parts}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    mapped = PYPROJECT["tool"]["setuptools"]["package-dir"]
    assert listed - found == set(mapped)  # the data-only packages: presets and study plans
    assert all((REPO / folder).is_dir() for folder in mapped.values())


def test_the_license_is_mit_in_spdx_form():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "2026 The FINO Lab authors" in text


def test_a_missing_or_empty_presets_folder_is_an_error_not_the_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("FINO_PRESETS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(PresetError, match="no such folder"):
        build_run_config(TaskConfig("cube-double"))
    monkeypatch.setenv("FINO_PRESETS_DIR", str(tmp_path))
    with pytest.raises(PresetError, match=r"no preset files \(\*\.toml\)"):
        build_run_config(TaskConfig("cube-double"))


def test_an_unreadable_preset_file_is_an_error_not_the_defaults(tmp_path, monkeypatch):
    shutil.copy(REPO / "presets" / "puzzle.toml", tmp_path)
    (tmp_path / "cube.toml").mkdir()  # a file that cannot be read (root reads any mode)
    monkeypatch.setenv("FINO_PRESETS_DIR", str(tmp_path))
    with pytest.raises(PresetError, match=r"cannot read preset file .*cube\.toml"):
        build_run_config(TaskConfig("cube-double"))


def test_fino_presets_dir_replaces_the_shipped_presets(tmp_path, monkeypatch):
    text = (REPO / "presets" / "cube.toml").read_text().replace("alpha = 300.0", "alpha = 7.0")
    (tmp_path / "cube.toml").write_text(text)
    monkeypatch.setenv("FINO_PRESETS_DIR", str(tmp_path))
    config = build_run_config(TaskConfig("cube-double"))
    assert config.agent.alpha == 7.0 and config.preset == "cube.toml:paper"


def test_parquet_export_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    from fino.cli.main import app
    from tests.inspect_fixtures import seed_store

    seeded = seed_store(tmp_path)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    result = CliRunner().invoke(app, ["export", str(seeded.fql[0]), "-f", "parquet", "--out",
                                      str(tmp_path / "m.parquet")],
                                env={"FINO_DB_URL": seeded.url, "COLUMNS": "200"})
    seeded.store.dispose()
    assert result.exit_code == 1
    assert "pip install 'fino[parquet]'" in result.output


def test_the_ray_executor_without_ray_names_the_extra(monkeypatch):
    from fino.launch.ray_executor import RayExecutor

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ValueError, match=r"pip install 'fino\[ray\]'"):
        RayExecutor(address="local")


@pytest.mark.filterwarnings("ignore:.*AntMaze_UMaze-v4 is out of date")
def test_a_d4rl_task_without_gymnasium_robotics_names_the_extra(tmp_path, monkeypatch):
    from fino.backends.minari import MinariBackend
    from tests.minari_fixtures import ANTMAZE_ID, make_antmaze_dataset

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    make_antmaze_dataset()
    for name in [n for n in sys.modules if n.partition(".")[0] == "gymnasium_robotics"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(TaskError, match=r"gymnasium-robotics.*pip install 'fino\[d4rl\]'"):
        MinariBackend().load(TaskConfig(ANTMAZE_ID))


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path
    installed: Path  # the wheel installed with `pip install --target`


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """sdist from a copy of the checkout (builds write into their source folder), the wheel
    pip builds from that sdist (so the sdist must be complete), the wheel installed apart.
    Offline: no build isolation, the venv's setuptools."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    for name in BUILD_INPUTS:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy(src, source / name)
    dist = root / "dist"
    name = _run([sys.executable, "-c", "import sys; from setuptools import build_meta; "
                 "print(build_meta.build_sdist(sys.argv[1]))", str(dist)], cwd=source)
    sdist = dist / name.strip().splitlines()[-1]
    with tarfile.open(sdist) as archive:
        archive.extractall(root / "unpacked", filter="data")
    unpacked = next((root / "unpacked").iterdir())
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist),
          str(unpacked)], cwd=root)
    wheel = next(dist.glob("fino-*.whl"))
    installed = root / "site"
    _run([*pip, "install", "--no-deps", "--no-index", "--target", str(installed), str(wheel)],
         cwd=root)
    return Built(sdist=sdist, wheel=wheel, installed=installed)


def test_the_sdist_carries_the_presets_the_study_plans_and_the_license(built):
    with tarfile.open(built.sdist) as archive:
        names = {n.partition("/")[2] for n in archive.getnames()}
    assert {f"presets/{n}" for n in PRESET_FILES} <= names
    assert {f"benchmarks/studies/{n}" for n in STUDY_FILES} <= names
    assert {"LICENSE", "pyproject.toml", *MIGRATIONS, *STYLESHEETS} <= names


def test_the_wheel_carries_every_module_and_data_file(built):
    with zipfile.ZipFile(built.wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read("fino-0.1.0.dist-info/METADATA").decode()
        entry_points = archive.read("fino-0.1.0.dist-info/entry_points.txt").decode()
    assert _modules(REPO) <= names
    assert {f"fino/_presets/{n}" for n in PRESET_FILES} <= names
    assert {f"fino/_studies/{n}" for n in STUDY_FILES} <= names
    assert {*MIGRATIONS, *STYLESHEETS, "fino-0.1.0.dist-info/licenses/LICENSE"} <= names
    assert not any(n.startswith(("presets/", "benchmarks/", "tests/")) for n in names)
    assert "License-Expression: MIT" in metadata
    assert "Requires-Dist: torch>=2.9" in metadata
    assert "Requires-Dist: pyarrow>=15; extra == \"parquet\"" in metadata
    assert "[fino.sinks]" in entry_points


INSTALLED_CHECK = """
import json, sys
from pathlib import Path
import fino
from fino.backends.base import TaskConfig
from fino.study.plan import load_plan
from fino.train.presets import build_run_config, presets_dir
config = build_run_config(TaskConfig("cube-double"))
quick = build_run_config(TaskConfig("cube-double"), preset="quick")
plan = load_plan(Path("repro"))
print(json.dumps({"fino": fino.__file__, "presets": str(presets_dir()),
                  "alpha": config.agent.alpha, "label": config.preset,
                  "quick_steps": quick.train.offline_steps, "plan": str(plan.path),
                  "plan_spec": plan.spec, "methods": len(plan.methods)}))
"""


def test_an_installed_wheel_resolves_the_presets_and_the_plan_without_the_checkout(built,
                                                                                    tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("FINO_PRESETS_DIR", "PYTHONPATH")}
    env["PYTHONPATH"] = str(built.installed)
    out = json.loads(_run([sys.executable, "-c", INSTALLED_CHECK], cwd=tmp_path, env=env))
    site = str(built.installed)
    assert out["fino"].startswith(site) and out["presets"].startswith(site)
    assert (out["alpha"], out["label"]) == (300.0, "cube.toml:paper")  # the paper's, spec §6
    assert out["quick_steps"] == 30_000
    assert out["plan"].startswith(site) and out["plan_spec"] == "repro"
    assert out["methods"] == 5  # load_plan has built every run of it, so all presets resolve
