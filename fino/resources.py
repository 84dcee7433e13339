"""Data files that ship inside the package: the presets and the study plans.

A wheel (and the sdist it is built from) carries the repository's `presets/` and
`benchmarks/studies/` as `fino/_presets` and `fino/_studies` (`package-dir` in pyproject.toml).
A checkout, plain or installed in editable mode, has neither and reads the repository's folders.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

CHECKOUT_ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("_presets", "presets")
STUDIES = ("_studies", "benchmarks/studies")


def data_dir(which: tuple[str, str]) -> Path | None:
    """The installed package's folder (e.g. `fino/_presets`), else the checkout's (`presets/`);
    None when neither exists."""
    packaged, checkout = which
    shipped = files("fino").joinpath(packaged)
    if shipped.is_dir():
        return Path(str(shipped))
    local = CHECKOUT_ROOT / checkout
    return local if local.is_dir() else None
