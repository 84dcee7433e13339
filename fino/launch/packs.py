"""What a pack process tells its worker: per member, the exit code its run would have had
alone or a pack member's own code (`fino.exit_codes`), in a JSON result file the worker names
(FINO_PACK_RESULT)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESULT_ENV = "FINO_PACK_RESULT"  # where the pack's per-member outcomes go
FIT_ENV = "FINO_PACK_FIT"  # "1": release the members that do not fit in the device's memory


def write_outcomes(path: Path, outcomes: Mapping[int, Mapping[str, Any]]) -> None:
    """{run id: {"code": int, "error": str | None}}, replaced atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({str(k): dict(v) for k, v in outcomes.items()}))
    temporary.replace(path)


def read_outcome(path: Path | None, run_id: int) -> dict[str, Any] | None:
    """What a pack's result file says became of member `run_id` (None: nothing said)."""
    if path is None:
        return None
    try:
        found = json.loads(path.read_text()).get(str(run_id))
    except (OSError, ValueError, AttributeError):
        return None
    return found if isinstance(found, dict) and isinstance(found.get("code"), int) else None
