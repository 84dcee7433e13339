"""Logger sinks: one small `fino run` logs to TensorBoard, W&B (offline) and MLflow, each read
back with its own library; unusable sinks are errors before anything runs; a sink that fails
mid-run is dropped and the run goes on."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import fino.sinks
from fino.algo.config import ConfigError
from fino.backends.base import TaskConfig
from fino.cli.main import app
from fino.launch.worker import child_command
from fino.sinks import make_sinks, sink_names
from fino.train.config import RunConfig, TrainConfig, same_config
from fino.train.sinks import SinkGroup
from tests.queue_fixtures import tiny_sets

QUIET_WANDB = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def run_args(dataset: Path, out: Path, *sinks: str) -> list[str]:
    sets = tiny_sets(offline=20, online=20, save=20, log=10)
    return ["run", "--task", "Pendulum-v1", "--backend", "gymnasium", "--dataset", str(dataset),
            *[a for s in sets for a in ("--set", s)], "--out", str(out), "--quiet",
            *[a for s in sinks for a in ("--sink", s)]]


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def logged(tmp_path_factory, dataset) -> Path:
    """One run with the three built-in loggers (W&B starts slowly: shared by the tests)."""
    home = tmp_path_factory.mktemp("home")
    out = tmp_path_factory.mktemp("logged") / "run"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**QUIET_WANDB, "WANDB_CONFIG_DIR": str(home),
                           "WANDB_CACHE_DIR": str(home), "WANDB_DATA_DIR": str(home)}.items():
            mp.setenv(key, value)
        mp.delenv("FINO_MLFLOW_URI", raising=False)
        result = CliRunner().invoke(app, run_args(dataset, out, "tensorboard", "wandb", "mlflow"))
    assert result.exit_code == 0, result.output
    assert (out / "curves.png").exists()
    return out


def last_value(run_dir: Path, key: str) -> tuple[int, float]:
    row = [r for r in records(run_dir) if r.get(key) is not None][-1]
    return row["step"], row[key]


def test_tensorboard_holds_metrics_config_events_and_curves(logged):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logged / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    step, value = last_value(logged, "critic/loss")
    scalars = {e.step: e.value for e in events.Scalars("critic/loss")}
    assert scalars[step] == pytest.approx(value, rel=1e-6)
    assert sorted(scalars) == [r["step"] for r in records(logged) if "critic/loss" in r]
    assert "eval/score" in events.Tags()["scalars"]
    assert {"config/text_summary", "events/text_summary"} <= set(events.Tags()["tensors"])
    config = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"offline_steps": 20' in config
    image = events.Images("curves")[-1]
    assert image.encoded_image_string == (logged / "curves.png").read_bytes()


def wandb_records(path: Path) -> list:
    """The records of a W&B transaction log (`.wandb`: a LevelDB-style log of `Record`
    protobufs in 32 KiB blocks after a 7-byte header), decoded with wandb's own messages."""
    from wandb.proto.wandb_internal_pb2 import Record

    data, block, found, chunk = path.read_bytes(), 32768, [], b""
    assert data[:4] == b":W&B"
    pos = 7
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            break
        chunk += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or its last piece
            record = Record()
            record.ParseFromString(chunk)
            found.append(record)
            chunk = b""
    return found


def test_wandb_writes_an_offline_run_for_wandb_sync_with_history_and_config(logged):
    [log] = list((logged / "wandb").glob("offline-run-*/run-*.wandb"))
    dry_run = subprocess.run([sys.executable, "-m", "wandb", "sync", "--dry-run",
                              str(log.parent)], capture_output=True, text=True, timeout=60)
    assert "Would sync 1 run(s)" in dry_run.stdout + dry_run.stderr
    found = wandb_records(log)
    history = {}
    for r in found:
        if r.WhichOneof("record_type") == "history":
            row = {"/".join(i.nested_key) or i.key: json.loads(i.value_json)
                   for i in r.history.item}
            history[row["_step"]] = row
    step, value = last_value(logged, "critic/loss")
    assert history[step]["critic/loss"] == pytest.approx(value, rel=1e-6)
    assert history[max(history)]["curves/_type"] == "image-file"
    [run] = [r.run for r in found if r.WhichOneof("record_type") == "run"]
    config = {i.key: json.loads(i.value_json) for i in run.config.update}
    assert run.project == "fino" and run.display_name == "run"
    assert config["train"]["offline_steps"] == 20 and config["algo"] == "fino"
    [exit_record] = [r.exit for r in found if r.WhichOneof("record_type") == "exit"]
    assert exit_record.exit_code == 0


def test_mlflow_run_holds_params_metrics_and_curves(logged, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for it

    saved = json.loads((logged / "mlflow-run.json").read_text())
    assert saved["tracking_uri"] == (logged / "mlruns").resolve().as_uri()
    client = MlflowClient(tracking_uri=saved["tracking_uri"])
    run = client.get_run(saved["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["train.offline_steps"] == "20"
    assert run.data.params["agent.actor_hidden_dims"] == "[16]"
    step, value = last_value(logged, "critic/loss")
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "critic/loss")}
    assert history[step] == pytest.approx(value, rel=1e-6)
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["curves.png"]


def test_tensorboard_resume_purges_the_steps_after_the_checkpoint(tmp_path, dataset):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = RunConfig(TaskConfig("Pendulum-v1", backend="gymnasium", dataset=str(dataset)))
    [first] = make_sinks(["tensorboard"], tmp_path, config)
    for step in (10, 20, 30):
        first.write(step, {"critic/loss": float(step)})
    first.close()
    [again] = make_sinks(["tensorboard"], tmp_path, config)
    again.truncate_after(20)  # resumed from the checkpoint at step 20
    again.write(30, {"critic/loss": -3.0})
    again.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("critic/loss")] == \
        [(10, 10.0), (20, 20.0), (30, -3.0)]


def test_an_unknown_sink_is_refused_before_anything_runs_or_is_queued(tmp_path, dataset):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, run_args(dataset, out, "tensorboard", "tensorbored"))
    assert result.exit_code == 1
    assert "unknown sink 'tensorbored'; known: mlflow, tensorboard, wandb" in result.output
    assert not out.exists()
    db = tmp_path / "experiments.db"
    queued = runner.invoke(app, ["queue", "add", "--task", "Pendulum-v1", "--backend",
                                 "gymnasium", "--dataset", str(dataset), "--sink", "nope",
                                 "--db", str(db)])
    assert queued.exit_code == 1 and "unknown sink 'nope'" in queued.output
    assert not db.exists()
    worker = runner.invoke(app, ["worker", "--sink", "nope", "--db", str(db)])
    assert worker.exit_code == 1 and "unknown sink 'nope'" in worker.output
    with pytest.raises(ConfigError, match=r"train\.sinks"):
        TrainConfig(sinks="tensorboard")  # type: ignore[arg-type]  (a name, not a list)


def test_a_sink_whose_library_is_missing_names_the_extra(tmp_path, dataset, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` fails as if not installed
    result = CliRunner().invoke(app, run_args(dataset, tmp_path / "run", "wandb"))
    assert result.exit_code == 1
    assert "pip install 'fino[wandb]'" in result.output
    assert not (tmp_path / "run").exists()


def test_a_folder_a_sink_cannot_write_is_refused_before_training(tmp_path, dataset):
    out = tmp_path / "run"
    out.mkdir()
    (out / "tensorboard").write_text("not a folder")
    result = CliRunner().invoke(app, run_args(dataset, out, "tensorboard"))
    assert result.exit_code == 1 and "cannot write" in result.output
    assert not (out / "metrics.jsonl").exists()


class ExplodingSink:
    """A logger plugin that breaks at step 20."""

    def __init__(self, run_dir: Path, config: RunConfig) -> None:
        pass

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if step >= 20:
            raise RuntimeError("logger server gone")

    def event(self, kind: str, message: str) -> None:
        pass

    def truncate_after(self, step: int) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_sink_failing_mid_run_is_dropped_and_the_run_completes(tmp_path, dataset,
                                                                 monkeypatch):
    monkeypatch.setitem(fino.sinks.BUILTIN, "exploding", f"{__name__}:ExplodingSink")
    assert "exploding" in sink_names()
    out = tmp_path / "run"
    result = CliRunner().invoke(app, run_args(dataset, out, "exploding"))
    assert result.exit_code == 0, result.output
    assert result.output.count("ExplodingSink failed and was disabled") == 1
    assert [r["step"] for r in records(out) if "critic/loss" in r] == [10, 20, 30, 40]
    assert json.loads((out / "config.json").read_text())["train"]["sinks"] == ["exploding"]


def test_a_failing_artifact_drops_that_sink_only(capsys):
    class Keeps:
        def __init__(self) -> None:
            self.files: list[Path] = []

        def artifact(self, path: Path) -> None:
            self.files.append(path)

    class Breaks:
        def artifact(self, path: Path) -> None:
            raise OSError("disk full")

    keeps, breaks = Keeps(), Breaks()
    group = SinkGroup([breaks, object(), keeps])  # type: ignore[list-item]
    group.artifact(Path("curves.png"))
    group.artifact(Path("curves.png"))
    assert keeps.files == [Path("curves.png")] * 2 and breaks not in group.sinks
    assert capsys.readouterr().err.count("Breaks failed and was disabled") == 1


def test_queued_sinks_and_a_worker_s_extra_sink_log_each_member_of_a_pack(tmp_path, dataset,
                                                                          monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")

    from fino.store.db import Store
    from fino.store.queue import get_run

    runner, db = CliRunner(), str(tmp_path / "experiments.db")
    sets = tiny_sets(offline=10, online=10, save=20, log=10)
    queued = runner.invoke(app, ["queue", "add", "--task", "Pendulum-v1", "--backend",
                                 "gymnasium", "--dataset", str(dataset), "--seeds", "0-1",
                                 *[a for s in sets for a in ("--set", s)], "--sink",
                                 "tensorboard", "--runs-dir", str(tmp_path / "runs"),
                                 "--db", db])
    assert queued.exit_code == 0, queued.output
    store = Store(db, create=False)
    assert get_run(store, 1).config["train"]["sinks"] == ["tensorboard"]
    # What `fino worker --pack 2 --sink mlflow` starts:
    result = runner.invoke(app, ["run", "--run-id", "1", "--run-id", "2", "--sink", "mlflow",
                                 "--quiet", "--db", db])
    assert result.exit_code == 0, result.output
    for run_id in (1, 2):
        run_dir = Path(get_run(store, run_id).run_dir)
        assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
        saved = json.loads((run_dir / "mlflow-run.json").read_text())
        run = MlflowClient(tracking_uri=saved["tracking_uri"]).get_run(saved["run_id"])
        assert run.info.status == "FINISHED" and run.data.params["seed"] == str(run_id - 1)
        assert run.data.metrics["critic/loss"] == \
            pytest.approx(last_value(run_dir, "critic/loss")[1], rel=1e-6)


def test_sinks_are_bookkeeping_of_a_config():
    config = RunConfig.from_dict({"task": {"name": "Pendulum-v1", "backend": "gymnasium"},
                                  "train": {"sinks": ["wandb", "mlflow", "wandb"]}})
    assert config.train.sinks == ("wandb", "mlflow")
    assert same_config({**config.to_dict(), "train": {"sinks": []}}, config)
    assert child_command([3, 4], ("tensorboard",))[-5:] == \
        ["--run-id", "4", "--sink", "tensorboard", "--quiet"]
