"""Regenerate OGBench datasets locally with the authors' published recipe, in OGBench's format.

    generate_dataset("cube-single-play-v0", episodes=100)  # ~/.ogbench/data/cube-single-play-v0.npz
"""

from fino.backends.datagen.download import (
    LocalDataset,
    download_dataset,
    is_minari_id,
    local_datasets,
)
from fino.backends.datagen.generate import (
    GenerationProgress,
    ProgressCallback,
    default_workers,
    generate_dataset,
    val_episodes,
)
from fino.backends.datagen.recipes import (
    DEFAULT_DATASET_DIR,
    RECIPES,
    DatagenError,
    Recipe,
    dataset_name,
    default_episodes,
    recipe_for,
)
from fino.backends.datagen.writer import dataset_paths

__all__ = [
    "DEFAULT_DATASET_DIR",
    "RECIPES",
    "DatagenError",
    "GenerationProgress",
    "LocalDataset",
    "ProgressCallback",
    "Recipe",
    "dataset_name",
    "dataset_paths",
    "default_episodes",
    "default_workers",
    "download_dataset",
    "generate_dataset",
    "is_minari_id",
    "local_datasets",
    "recipe_for",
    "val_episodes",
]
