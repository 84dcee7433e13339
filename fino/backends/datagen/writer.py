"""Write a train/val pair in OGBench's file format without ever leaving a half-written pair."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def dataset_paths(out_dir: Path, dataset: str) -> tuple[Path, Path]:
    """`<dir>/<name>.npz` and `<dir>/<name>-val.npz`, where OGBench's loader looks for them."""
    return out_dir / f"{dataset}.npz", out_dir / f"{dataset}-val.npz"


def _write_temporary(path: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """A compressed npz beside `path`, hidden and flushed to disk; the caller renames it."""
    # Not mkstemp: its 0600 mode would stick to the final file.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with temporary.open("xb") as f:  # a file object: np.savez appends .npz to a str path
            np.savez_compressed(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def write_pair(train_path: Path, val_path: Path, train: Mapping[str, np.ndarray],
               val: Mapping[str, np.ndarray]) -> None:
    """Write both files to temporaries, then rename val first and train last.

    A file never appears half-written under its final name; the train file appears only once its
    val file is in place, and an old train file is removed before a new val file lands, so an
    interrupted run never leaves two files that load as a (mismatched) complete pair.
    """
    temporaries: list[Path] = []
    try:
        temporaries.append(_write_temporary(val_path, val))
        temporaries.append(_write_temporary(train_path, train))
        train_path.unlink(missing_ok=True)
        os.replace(temporaries[0], val_path)
        os.replace(temporaries[1], train_path)
    finally:
        for path in temporaries:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
