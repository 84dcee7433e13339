"""Faults a queue meets, each on real `fino worker` processes and a small real run.

Scenarios (each on a fresh store, the same run config and seed as an uninterrupted reference):

- `kill-worker`: SIGKILL the worker mid-run; its child checkpoints (SIGTERM from the kernel when
  its parent dies) and stops; another worker reaps the run after the expiry and resumes it.
- `kill-child`: SIGKILL the run's process; its worker records the failure and, with
  `--max-attempts 2`, requeues it; it resumes from its last checkpoint.
- `stall`: SIGSTOP the worker past its expiry while a second worker serves the queue; the first
  worker's child must stop itself within its lease (before the second claims the run), and the
  stalled worker, continued, must leave the run alone.
- `lock`: hold the SQLite write lock for twice the expiry; nobody may reap the healthy run.
- `full-disk`: the run folder on a 3 MiB tmpfs that fills up mid-run (needs `mount`, i.e. root;
  skipped otherwise); the run fails with "no space left on device" in its stored error, and
  `fino queue retry` after freeing space resumes it.

Printed per scenario: runs lost (not finished `done`), metric rows missing and duplicated (in
the store and in the run folder's metrics.jsonl), whether two processes trained the run at once,
and whether the resumed run's logged losses equal the uninterrupted run's, step for step.

    python benchmarks/faults.py [--scenarios kill-worker,stall,...] [--db URL] [--out FILE]

With `--db postgresql+psycopg://...` the scenarios that are not SQLite-specific run there (use a
throwaway database). Results: benchmarks/results/faults-cpu.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's test helpers
from tests.queue_fixtures import alive, children, pendulum_npz

SCENARIOS = ("kill-worker", "kill-child", "stall", "lock", "full-disk")
HEARTBEAT, EXPIRY = "0.5", "10"
OFFLINE, ONLINE, LOG, SAVE = 3000, 60, 10, 100
SETS = [f"train.offline_steps={OFFLINE}", f"train.online_steps={ONLINE}",
        f"train.eval_interval={OFFLINE + ONLINE}", "train.eval_episodes=1", "train.eval_envs=1",
        "train.compile=false", f"train.save_interval={SAVE}", f"train.log_interval={LOG}",
        "train.threads=1", "agent.actor_hidden_dims=[16]", "agent.value_hidden_dims=[16]",
        "agent.batch_size=16", "agent.entropy_samples=8", "agent.entropy_states=4",
        "task.options={max_episode_steps=20}"]


# ---- processes and the store ----------------------------------------------------------------

def worker(url: str, cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fino.cli.main", "worker", "--heartbeat", HEARTBEAT,
         "--expiry", EXPIRY, *args], cwd=cwd, env={**os.environ, "FINO_DB_URL": url},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
        process.send_signal(signal.SIGINT)
    try:
        return process.communicate(timeout=90)[0] or ""
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0] or ""


def queue_run(url: str, dataset: Path, runs_dir: Path) -> int:
    from fino.backends.base import TaskConfig
    from fino.store.db import Store
    from fino.store.queue import add_runs
    from fino.train.presets import build_run_config

    config = build_run_config(TaskConfig("Pendulum-v1", backend="gymnasium",
                                         dataset=str(dataset)), seed=0, overrides=SETS)
    store = Store(url)
    try:
        [run_id] = add_runs(store, [config], runs_dir=runs_dir)
    finally:
        store.dispose()
    return run_id


def run_row(url: str, run_id: int):
    from fino.store.db import Store
    from fino.store.queue import get_run

    store = Store(url)
    try:
        return get_run(store, run_id)
    finally:
        store.dispose()


def losses(url: str, run_id: int) -> dict[int, float | None]:
    from sqlalchemy import select

    from fino.store.db import Store
    from fino.store.models import Metric

    store = Store(url)
    try:
        with store.read() as session:
            rows = session.execute(select(Metric.step, Metric.value).where(
                Metric.run_id == run_id, Metric.key == "critic/loss")).all()
    finally:
        store.dispose()
    return dict(rows)


def wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def logged(url: str, run_id: int, at_least: int) -> Callable[[], bool]:
    return lambda: len(losses(url, run_id)) >= at_least


def wait_end(url: str, run_id: int) -> None:
    """Until the run has settled (done, failed, lost or cancelled)."""
    wait(status_is(url, run_id, "done", "failed", "lost", "cancelled"), 400, "the end")


def status_is(url: str, run_id: int, *wanted: str) -> Callable[[], bool]:
    return lambda: run_row(url, run_id).status in wanted


def claim_time(url: str, run_id: int, pid: int) -> float | None:
    from datetime import UTC

    from sqlalchemy import select

    from fino.store.db import Store
    from fino.store.models import Event

    store = Store(url)
    try:
        with store.read() as session:
            when = session.execute(select(Event.time).where(
                Event.run_id == run_id, Event.message.like(f"claimed by %:{pid}"))).scalar()
    finally:
        store.dispose()
    return None if when is None else (when if when.tzinfo else when.replace(tzinfo=UTC)
                                      ).timestamp()


# ---- scenarios: each leaves the run finished (or not) and returns its own facts --------------

def kill_worker(url: str, run_id: int, cwd: Path) -> dict:
    first = worker(url, cwd, "--max-attempts", "2")
    wait(logged(url, run_id, 50), 180, "training")
    first.kill()
    first.wait()
    second = worker(url, cwd, "--max-attempts", "2")
    try:
        wait_end(url, run_id)
    finally:
        stop(second)
    return {}


def kill_child(url: str, run_id: int, cwd: Path) -> dict:
    pool = worker(url, cwd, "--max-attempts", "2")
    try:
        wait(logged(url, run_id, 50), 180, "training")
        [child] = children(pool.pid)
        os.kill(child, signal.SIGKILL)
        wait_end(url, run_id)
    finally:
        stop(pool)
    return {}


def stall(url: str, run_id: int, cwd: Path) -> dict:
    first = worker(url, cwd, "--max-attempts", "2")
    second = None
    try:
        wait(logged(url, run_id, 50), 180, "training")
        [child] = children(first.pid)
        os.kill(first.pid, signal.SIGSTOP)
        stopped = time.time()
        second = worker(url, cwd)
        wait(lambda: not alive(child), 60, "the stalled worker's child to stop")
        child_gone = time.time()
        wait(lambda: claim_time(url, run_id, second.pid) is not None, 120, "the reclaim")
        claimed = claim_time(url, run_id, second.pid)
        wait_end(url, run_id)
    finally:
        said = stop(first)
        if second is not None:
            stop(second)
    return {"child_stopped_after_s": round(child_gone - stopped, 1),
            "overlap": child_gone >= claimed,
            "stalled_worker_left_it_alone": "no longer ours" in said
            and run_row(url, run_id).status == "done"}


def lock(url: str, run_id: int, cwd: Path) -> dict:
    if not url.startswith("sqlite"):
        raise NotImplementedError("the lock scenario holds SQLite's write lock")
    pools = [worker(url, cwd), worker(url, cwd)]
    try:
        wait(logged(url, run_id, 50), 180, "training")
        blocker = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=10,
                                  isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        time.sleep(2 * float(EXPIRY))
        blocker.execute("ROLLBACK")
        blocker.close()
        wait_end(url, run_id)
    finally:
        for pool in pools:
            stop(pool)
    return {"locked_s": 2 * float(EXPIRY)}


@contextlib.contextmanager
def tiny_disk(path: Path, size: str = "3m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise NotImplementedError(f"cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def full_disk(url: str, run_id: int, cwd: Path) -> dict:
    from fino.store.db import Store
    from fino.store.queue import retry

    disk = Path(run_row(url, run_id).run_dir).parent
    filler = disk / "filler"
    pool = worker(url, cwd)
    try:
        wait(logged(url, run_id, 50), 180, "training")
        with filler.open("wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        wait(status_is(url, run_id, "failed", "done"), 300, "the failure")
        error = run_row(url, run_id).error or ""
        filler.unlink()
        store = Store(url)
        retry(store, [run_id])
        store.dispose()
        wait_end(url, run_id)
    finally:
        stop(pool)
    first_line = error.strip().splitlines()[-1] if error.strip() else ""
    return {"stored_error": first_line[:160],
            "says_no_space": "no space left on device" in error}


RUNNERS = {"kill-worker": kill_worker, "kill-child": kill_child, "stall": stall, "lock": lock,
           "full-disk": full_disk}


# ---- measuring -------------------------------------------------------------------------------

def jsonl_duplicates(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    steps = [json.loads(line)["step"] for line in path.read_text().splitlines()
             if line.strip() and "critic/loss" in line]
    return sum(n - 1 for n in Counter(steps).values() if n > 1)


def reference(url: str, dataset: Path, root: Path) -> dict[int, float | None]:
    """The same run, uninterrupted, by one worker."""
    run_id = queue_run(url, dataset, root / "runs")
    pool = worker(url, root, "--until-empty")
    pool.communicate(timeout=600)
    if run_row(url, run_id).status != "done":
        raise RuntimeError("the reference run did not finish")
    return losses(url, run_id)


def scenario(name: str, db: str | None, dataset: Path, expected: dict[int, float | None]
             ) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"fino-fault-{name}-") as tmp:
        root = Path(tmp)
        url = db or f"sqlite:///{root / 'experiments.db'}"
        with contextlib.ExitStack() as stack:
            runs_dir = root / "runs"
            if name == "full-disk":
                runs_dir = stack.enter_context(tiny_disk(root / "disk"))
            run_id = queue_run(url, dataset, runs_dir)
            started = time.perf_counter()
            facts = RUNNERS[name](url, run_id, root)
            row = run_row(url, run_id)
            got = losses(url, run_id)
            same = got == expected
            result = {
                "scenario": name, "store": url.split(":", 1)[0], "status": row.status,
                "attempts": row.attempts, "runs_lost": int(row.status != "done"),
                "metrics_missing": len(set(expected) - set(got)),
                "metrics_extra": len(set(got) - set(expected)),
                "jsonl_duplicates": jsonl_duplicates(Path(row.run_dir)),
                "resumed_equals_uninterrupted": same,
                "max_abs_difference": max((abs((got[s] or 0) - (v or 0))
                                           for s, v in expected.items() if s in got),
                                          default=0.0),
                "seconds": round(time.perf_counter() - started, 1), **facts}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--db", default=None, help="a throwaway PostgreSQL URL (default: a "
                        "fresh SQLite file per scenario)")
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    args = parser.parse_args()
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    with tempfile.TemporaryDirectory(prefix="fino-fault-ref-") as tmp:
        dataset = pendulum_npz(Path(tmp) / "pendulum.npz")
        ref_url = args.db or f"sqlite:///{Path(tmp) / 'experiments.db'}"
        expected = reference(ref_url, dataset, Path(tmp))
        print(f"reference: {len(expected)} logged losses, steps {LOG}..{OFFLINE + ONLINE}",
              flush=True)
        for name in names:
            try:
                result = scenario(name, args.db, dataset, expected)
            except NotImplementedError as exc:
                result = {"scenario": name, "skipped": str(exc)}
            print(json.dumps(result), flush=True)
            if args.out:
                with args.out.open("a") as f:
                    f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
