"""MLflow: a file store in RUN_DIR/mlruns, or the store `$FINO_MLFLOW_URI` names (e.g.
sqlite:///runs/mlflow.db: all runs in one place).

MLflow 3 keeps its file store in maintenance mode behind `MLFLOW_ALLOW_FILE_STORE=true` (set
here unless the user set it): a new SQLite store takes MLflow's schema migrations, seconds
per run, where a file store costs nothing (`mlflow migrate-filestore` turns one into a
database).

Through `MlflowClient` only, never MLflow's global active run, so the members of a pack log to
their own runs. A resumed run logs to the same MLflow run; MLflow cannot forget metrics, so
the steps logged after the checkpoint appear twice (the later values last)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from fino.sinks import ENDED, RunEnd, SinkError, flat_config, require, writable_folder

if TYPE_CHECKING:
    from fino.train.config import RunConfig

# A run's logger never phones home: MLflow's usage telemetry (sent from `import mlflow` on)
# stays off unless the user turned it on.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

URI_ENV = "FINO_MLFLOW_URI"
EXPERIMENT = "fino"
FOLDER = "mlruns"
RUN_FILE = "mlflow-run.json"  # which MLflow run this run folder logs to
# MLflow's RunStatus names for each end.
STATUS = {RunEnd.FINISHED: "FINISHED", RunEnd.INTERRUPTED: "KILLED", RunEnd.FAILED: "FAILED"}
PARAM_LENGTH = 6000  # MLflow's limit on a parameter's value
PARAMS_PER_BATCH = 100  # and on parameters per call


class MlflowSink:
    """Metrics at their steps, the flattened resolved config as parameters, events as the
    run's `event` tag, the curves as an artifact; the run ends FINISHED, KILLED (stopped,
    resumable) or FAILED."""

    requires = "mlflow"

    def __init__(self, run_dir: Path, config: RunConfig) -> None:
        require(self.requires, "mlflow")
        self.run_dir = run_dir
        self.config = config
        self.uri = os.environ.get(URI_ENV) or (run_dir / FOLDER).resolve().as_uri()
        local = _local_path(self.uri)
        if local is not None:
            writable_folder(local, "mlflow")
        self.status = RunEnd.FAILED
        self._client: Any = None
        self._run_id = ""

    def _open(self) -> tuple[Any, str]:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            if urlparse(self.uri).scheme in ("", "file"):
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            client = MlflowClient(tracking_uri=self.uri)
            self._run_id = self._previous_run(client) or self._new_run(client)
            self._client = client
        return self._client, self._run_id

    def _previous_run(self, client: Any) -> str | None:
        """The MLflow run of an earlier attempt, marked running again."""
        from mlflow.exceptions import MlflowException

        try:
            saved = json.loads((self.run_dir / RUN_FILE).read_text())
        except (OSError, ValueError):
            return None
        if saved.get("tracking_uri") != self.uri:
            return None
        try:
            client.update_run(saved["run_id"], status="RUNNING")
        except (MlflowException, KeyError):
            return None
        return saved["run_id"]

    def _new_run(self, client: Any) -> str:
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            try:
                experiment_id = client.create_experiment(
                    EXPERIMENT, artifact_location=_artifact_root(self.uri))
            except MlflowException:  # another run made it meanwhile
                experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
        c = self.config
        run = client.create_run(experiment_id, run_name=self.run_dir.name, tags={
            "fino.run_dir": str(self.run_dir.resolve()), "fino.algo": c.algo,
            "fino.task": c.task.name, "fino.seed": str(c.seed)})
        run_id = run.info.run_id
        params = [Param(key, str(value)[:PARAM_LENGTH])
                  for key, value in flat_config(c).items()]
        for start in range(0, len(params), PARAMS_PER_BATCH):
            client.log_batch(run_id, params=params[start:start + PARAMS_PER_BATCH])
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / RUN_FILE).write_text(json.dumps({"tracking_uri": self.uri,
                                                         "run_id": run_id}) + "\n")
        return run_id

    def write(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        client, run_id = self._open()
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(_metric_key(k), float(v), now, step)
                                          for k, v in metrics.items()])

    def event(self, kind: str, message: str) -> None:
        self.status = ENDED.get(kind, self.status)
        client, run_id = self._open()
        client.set_tag(run_id, "event", f"{kind}: {message}")

    def truncate_after(self, step: int) -> None:
        pass

    def artifact(self, path: Path) -> None:
        client, run_id = self._open()
        client.log_artifact(run_id, str(path))

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.set_terminated(self._run_id, status=STATUS[self.status])


def _metric_key(key: str) -> str:
    """A metric name MLflow takes (letters, digits and _ - . / : and spaces)."""
    return re.sub(r"[^\w\-./: ]", "_", key)


def _artifact_root(uri: str) -> str | None:
    """Where a SQLite store's runs keep their files: beside the database, not in the working
    folder (MLflow's default); other stores choose for themselves."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()


def _local_path(uri: str) -> Path | None:
    """The folder a local tracking store writes to (a file store's root, a SQLite file's
    folder); None for a server."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else uri)
    if parsed.scheme == "sqlite":
        name = uri.removeprefix("sqlite:///")
        if not name or name == ":memory:":
            raise SinkError(f"{URI_ENV}={uri}: the mlflow sink needs a SQLite file")
        return Path(name).parent
    return None
