"""Fetch published datasets with the libraries' own downloaders, and list what is on disk."""

from __future__ import annotations

import contextlib
import os
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fino.backends.d4rl_names import minari_id, no_minari_copy
from fino.backends.datagen.recipes import DEFAULT_DATASET_DIR, RECIPES, DatagenError, dataset_name
from fino.backends.datagen.writer import dataset_paths


def is_minari_id(name: str) -> bool:
    """Minari ids are namespaced (`D4RL/pen/cloned-v2`); OGBench names never contain a slash."""
    return "/" in name


def download_dataset(name: str, out_dir: str | Path | None = None) -> list[Path]:
    """Download an OGBench dataset (train + val) or a Minari dataset (also by its D4RL name);
    returns the local paths."""
    d4rl = minari_id(name)
    if d4rl is not None:
        return [_download_minari(d4rl, out_dir)]
    locomotion = no_minari_copy(name)
    if locomotion:
        raise DatagenError(locomotion)
    if is_minari_id(name):
        return [_download_minari(name.strip(), out_dir)]
    return _download_ogbench(dataset_name(name), Path(out_dir or DEFAULT_DATASET_DIR).expanduser())


def _download_ogbench(stem: str, out: Path) -> list[Path]:
    import ogbench
    from ogbench.utils import DATASET_URL

    paths = list(dataset_paths(out, stem))
    try:
        ogbench.download_datasets([stem], str(out))
    except urllib.error.HTTPError as e:
        raise DatagenError(f"{stem}: {DATASET_URL} answered HTTP {e.code}; is the name right "
                           f"(e.g. cube-double-play-v0)?") from None
    except OSError as e:  # URLError, DNS, refused or reset connections, a full disk
        hint = f" or generate it here: `fino data generate {stem}`" if stem in RECIPES else ""
        raise DatagenError(f"could not download {stem} from {DATASET_URL} "
                           f"({getattr(e, 'reason', e)}); retry on a machine with network access "
                           f"and copy the two .npz files to {out}{hint}") from None
    finally:
        for path in paths:  # ogbench leaves its partial download behind on failure
            Path(f"{path}.tmp").unlink(missing_ok=True)
    return paths


@contextlib.contextmanager
def _minari_root(out_dir: str | Path | None) -> Iterator[None]:
    """Point minari at `out_dir` for the duration (it reads MINARI_DATASETS_PATH on each call)."""
    if out_dir is None:
        yield
        return
    saved = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(out_dir).expanduser())
    try:
        yield
    finally:
        if saved is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = saved


def _download_minari(dataset_id: str, out_dir: str | Path | None) -> Path:
    import minari
    from minari.storage.datasets_root_dir import get_dataset_path

    with _minari_root(out_dir):
        try:
            minari.download_dataset(dataset_id)
        except ImportError:
            raise DatagenError("minari downloads need huggingface_hub: "
                               "pip install 'minari[hf]'") from None
        except ValueError as e:  # minari's own message: unknown id or incompatible version
            raise DatagenError(f"{dataset_id}: {e}") from None
        except Exception as e:  # requests / huggingface_hub network errors have no common base
            raise DatagenError(f"could not download {dataset_id} from the Farama server "
                               f"({type(e).__name__}: {e}); retry on a machine with network "
                               f"access") from None
        return get_dataset_path(dataset_id)


@dataclass(frozen=True)
class LocalDataset:
    """An OGBench dataset found on disk; a size is None when that file is missing."""

    name: str
    train_bytes: int | None
    val_bytes: int | None

    @property
    def complete(self) -> bool:
        return self.train_bytes is not None and self.val_bytes is not None


def local_datasets(out_dir: str | Path = DEFAULT_DATASET_DIR) -> list[LocalDataset]:
    """The OGBench datasets in `out_dir`, sorted by name (temporaries are hidden and skipped)."""
    root = Path(out_dir).expanduser()
    if not root.is_dir():
        return []
    names = {p.name.removesuffix(".npz").removesuffix("-val")
             for p in root.glob("*.npz") if not p.name.startswith(".")}
    found = []
    for name in sorted(names):
        train, val = dataset_paths(root, name)
        found.append(LocalDataset(name, train.stat().st_size if train.is_file() else None,
                                  val.stat().st_size if val.is_file() else None))
    return found
