"""The seeds a run derives from its own: one per (run seed, stream, index)."""

from __future__ import annotations

import numpy as np


def seed_for(seed: int, stream: int, index: int) -> int:
    """A distinct, reproducible env seed per (run seed, stream, episode index)."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0] >> 1)
