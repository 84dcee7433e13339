"""Which run configs can share a pack: equal in everything but the seed and the packable
agent settings (`fino.algo.config.PACKABLE`). Torch-free: the worker asks it while claiming."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fino.algo.config import PACKABLE, PackError
from fino.train.config import RunConfig

# What pack members may differ in besides the packable agent settings (each member starts from
# its own shared offline phase, if any).
MEMBER_KEYS = ("seed", "from_offline")


def pack_difference(first: Mapping[str, Any], other: Mapping[str, Any]
                    ) -> tuple[str, Any, Any] | None:
    """(dotted setting, first's value, other's value) of the first setting in which two run
    configs (as dicts) may not differ within one pack; None when they can share one."""
    if (first.get("from_offline") is None) != (other.get("from_offline") is None):
        return "from_offline", first.get("from_offline"), other.get("from_offline")
    for key, value in first.items():
        if key in MEMBER_KEYS:
            continue
        if key == "agent":
            found = [d for k, v in value.items() if k not in PACKABLE
                     for d in _differences(f"agent.{k}", v, other[key].get(k))]
        else:
            found = _differences(key, value, other.get(key))
        if found:
            return found[0]
    return None


def packable(first: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether two run configs (as dicts) can share a pack."""
    return pack_difference(first, other) is None


def check_packable(configs: Sequence[RunConfig]) -> None:
    """Refuse, naming the setting, run configs that cannot share a pack."""
    if not configs:
        raise PackError("a pack needs at least one run")
    first = configs[0].to_dict()
    for index, config in enumerate(configs[1:], start=1):
        found = pack_difference(first, config.to_dict())
        if found is not None:
            name, mine, theirs = found
            raise PackError(
                f"pack member {index} differs from member 0 in {name!r} ({theirs!r} != "
                f"{mine!r}); runs in a pack may differ only in the seed and the packable "
                f"agent settings {list(PACKABLE)}")


def _differences(key: str, mine: Any, theirs: Any) -> list[tuple[str, Any, Any]]:
    """(dotted name, value, other value) of each differing leaf of two config sections."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return [d for k in mine for d in _differences(f"{key}.{k}", mine[k], theirs.get(k))]
    return [] if mine == theirs else [(key, mine, theirs)]
