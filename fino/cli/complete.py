"""Shell completion of values (`fino --install-completion`): task aliases, presets and run ids.
Each returns what starts with the word being completed and never fails: a completion that
raises would print a traceback into the user's shell."""

from __future__ import annotations

from typing import Any

RUN_IDS_SHOWN = 50  # the newest runs offered


def complete_task(incomplete: str) -> list[str]:
    """The task aliases of the installed backends (cube-single, antmaze-large, ...)."""
    try:
        from fino.backends.registry import task_aliases

        return [a for a in task_aliases() if a.startswith(incomplete)]
    except Exception:
        return []


def complete_preset(incomplete: str) -> list[str]:
    """Profiles (paper, quick), preset files (cube) and FILE:PROFILE pairs (cube:quick)."""
    try:
        from fino.train.presets import all_presets

        names: set[str] = set()
        for preset in all_presets():
            stem = preset.path.stem
            names.add(stem)
            for profile in preset.profile_names():
                names.update((profile, f"{stem}:{profile}"))
        return sorted(n for n in names if n.startswith(incomplete))
    except Exception:
        return []


def complete_run_id(ctx: Any, incomplete: str) -> list[tuple[str, str]]:
    """(id, name) of the newest runs of the store (--db if already typed, else $FINO_DB_URL or
    ./experiments.db), read only: a database that does not exist is not created."""
    try:
        from fino.store.db import Store
        from fino.store.queries import newest_names

        params = getattr(ctx, "params", None) or {}
        store = Store(params.get("db"), create=False)
        try:
            with store.read() as session:
                rows = newest_names(session, RUN_IDS_SHOWN)
        finally:
            store.dispose()
        return [(str(i), name) for i, name in rows if str(i).startswith(incomplete)]
    except Exception:
        return []
