"""Weights & Biases, offline: RUN_DIR/wandb/offline-run-*/, uploaded later with `wandb sync`.

Never touches the network and never prompts. Each attempt of a run (a resume) writes its own
offline-run folder under the same W&B run id, and `wandb sync` uploads them in order; W&B
cannot forget steps, so a resumed attempt appends from its checkpoint's step (what was logged
after it stays, and W&B drops steps below the last one it has)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fino.sinks import ENDED, RunEnd, require, writable_folder

if TYPE_CHECKING:
    from fino.train.config import RunConfig

# Offline means no network at all: W&B's service reports its own errors online unless told not
# to (and the user may still turn that on).
os.environ.setdefault("WANDB_ERROR_REPORTING", "false")

FOLDER = "wandb"
ID_FILE = "fino-run-id"  # the run's W&B id, shared by its attempts


class WandbSink:
    """Metrics as the run's history at their steps, the resolved config as its config, the
    curves as an image; the run finishes with `fino run`'s exit code."""

    requires = "wandb"

    def __init__(self, run_dir: Path, config: RunConfig) -> None:
        require(self.requires, "wandb")
        self.run_dir = run_dir
        self.folder = writable_folder(run_dir / FOLDER, "wandb")
        self.config = config
        self.status = RunEnd.FAILED
        self._run: Any = None
        self._step = 0

    def _open(self) -> Any:
        if self._run is None:
            import wandb

            self.folder.mkdir(parents=True, exist_ok=True)
            id_file = self.folder / ID_FILE
            run_id = id_file.read_text().strip() if id_file.exists() else ""
            if not run_id:
                run_id = secrets.token_hex(4)
                id_file.write_text(run_id + "\n")
            settings = wandb.Settings(console="off", silent=True, x_disable_stats=True,
                                      x_disable_machine_info=True, disable_git=True,
                                      save_code=False, disable_job_creation=True)
            self._run = wandb.init(
                mode="offline", dir=str(self.run_dir), id=run_id, name=self.run_dir.name,
                project=os.environ.get("WANDB_PROJECT") or "fino",
                config=self.config.to_dict(), reinit="create_new", settings=settings)
        return self._run

    def write(self, step: int, metrics: dict[str, float]) -> None:
        run = self._open()
        self._step = max(self._step, step)
        run.log(dict(metrics), step=step)

    def event(self, kind: str, message: str) -> None:
        self.status = ENDED.get(kind, self.status)
        self._open().summary["event"] = f"{kind}: {message}"

    def truncate_after(self, step: int) -> None:
        self._step = max(step, 0)

    def artifact(self, path: Path) -> None:
        """A PNG as an image in the run's last step; another file saved with the run."""
        import wandb

        run = self._open()
        if path.suffix.lower() == ".png":
            run.log({path.stem: wandb.Image(str(path))}, step=self._step)
        else:
            run.save(str(path), base_path=str(path.parent), policy="now")

    def close(self) -> None:
        if self._run is not None:
            run, self._run = self._run, None
            run.finish(exit_code=int(self.status.exit_code))

