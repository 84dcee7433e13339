"""`fino study`: a tiny real plan queued, served, reported; rerunning queues nothing new."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fino.backends.datagen.generate import generate_dataset
from fino.cli.main import app
from fino.provenance import MACHINE_MARK, machine, machine_of
from fino.study.plan import PlanError, load_plan
from fino.study.report import Cell, remaining_cost, runs_all_zero

TINY = ["train.offline_steps=40", "train.online_steps=40", "train.eval_interval=20",
        "train.eval_episodes=2", "train.eval_envs=2", "train.compile=false",
        "train.log_interval=20", "train.save_interval=40", "train.threads=1",
        "agent.actor_hidden_dims=[16]", "agent.value_hidden_dims=[16]", "agent.batch_size=16",
        "agent.entropy_samples=8", "agent.entropy_states=4",
        "task.options={max_episode_steps=20}"]


def write_plan(path: Path, data_dir: Path) -> Path:
    sets = [*TINY, f'task.dataset_dir="{data_dir}"']
    path.write_text(
        'name = "tiny"\ntasks = ["cube-single-play-singletask-task2-v0"]\nseeds = "0-1"\n'
        f"preset = \"quick\"\n[budgets]\ncpu = {sets!r}\n".replace("'", "'")
        + '[methods.fino]\ndescription = "FINO"\n'
        + '[methods.fql]\nalgo = "fql"\ndescription = "FQL"\n'
        + '[methods.fino-noise-only]\nset = ["agent.exploration=\\"none\\""]\n')
    return path


def test_a_tiny_study_runs_and_reports(tmp_path, monkeypatch):
    data = tmp_path / "data"
    generate_dataset("cube-single-play-v0", episodes=3, episode_length=61, out_dir=data,
                     workers=1)
    plan = write_plan(tmp_path / "plan.toml", data)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    db = str(tmp_path / "experiments.db")
    part = runner.invoke(app, ["study", "run", str(plan), "--method", "fql", "--method", "fino",
                               "--workers", "0", "--dataset-dir", str(data), "--db", db])
    said = " ".join(part.output.split())  # rich wraps long lines at the terminal's width
    assert part.exit_code == 0 and "4 runs selected" in said and "4 queued now" in said
    unknown = runner.invoke(app, ["study", "run", str(plan), "--method", "sac", "--db", db])
    assert unknown.exit_code != 0 and "no method(s) ['sac']" in " ".join(unknown.output.split())
    first = runner.invoke(app, ["study", "run", str(plan), "--dataset-dir", str(data),
                                "--db", db])
    assert first.exit_code == 0, first.output
    said = " ".join(first.output.split())
    # FINO without guidance trains FINO's offline phase: its runs wait for FINO's, then start
    # from their end-of-offline checkpoints (the same seed's).
    assert "4 already" in said and "0 queued now, 2 wait for the offline phase" in said
    assert "2 runs queued from the offline phase they share" in said
    from fino.store.db import Store
    from fino.store.queries import list_runs

    with Store(db).read() as session:  # methods share an algo: runs are named by method
        runs = {run.name: run for run in list_runs(session)}
    assert "cube-single-t2-quick-fql-s0" in runs
    follower = runs["cube-single-t2-quick-fino-noise-only-s1"]
    source = runs["cube-single-t2-quick-fino-s1"]
    assert follower.config["from_offline"] == str(Path(source.run_dir) / "offline.pt")
    assert runs["cube-single-t2-quick-fql-s1"].config["from_offline"] is None
    again = runner.invoke(app, ["study", "run", str(plan), "--workers", "0",
                                "--dataset-dir", str(data), "--db", db])
    said = " ".join(again.output.split())
    assert again.exit_code == 0 and "6 already" in said and "0 queued" in said
    out = tmp_path / "results"
    report = runner.invoke(app, ["study", "report", str(plan), "--out", str(out),
                                 "--dataset-dir", str(data), "--db", db])
    assert report.exit_code == 0, report.output
    text = (out / "report.md").read_text()
    assert "| task | fino | fql | fino-noise-only |" in text
    assert "| cube-single-play-singletask-task2-v0 |" in text
    assert "runs by status: done 6" in text
    assert ("- Shared offline phases (trained once, the same for the same seed): "
            "fino-noise-only from fino's (2 runs)") in text
    assert "transitions (3 episodes)" in text
    # 40 steps learn nothing: every run ends at 0%, which is said instead of comparing zeros;
    # the evaluation return is reported instead, as a secondary measure, in a section of its own.
    claims, _, partial = text.partition("## Partial progress where no run succeeds (secondary)")
    assert "every run (6) ends both phases at 0%" in claims and "FINO ≥ FQL online" not in claims
    assert "| cube-single-play-singletask-task2-v0 |" in partial
    from sqlalchemy import update

    from fino.store.models import Metric

    def report_text() -> str:
        runner.invoke(app, ["study", "report", str(plan), "--out", str(out), "--dataset-dir",
                            str(data), "--db", db])
        return (out / "report.md").read_text()

    with Store(db).write() as session:  # the same return everywhere: nothing to compare
        session.execute(update(Metric).where(Metric.key == "eval/return").values(value=-20.0))
        fql0 = next(r.id for r in list_runs(session) if r.name.endswith("-fql-s0"))
    partial = report_text().partition("## Partial progress")[2]
    assert "every run has the same return at the end of both phases" in partial
    assert "FINO ≥ FQL online" not in partial
    with Store(db).write() as session:  # one FQL seed ends online at −5: compare the returns
        session.execute(update(Metric).where(Metric.run_id == fql0, Metric.key == "eval/return",
                                             Metric.step == 80).values(value=-5.0))
    partial = report_text().partition("## Partial progress")[2]
    assert "**cube-single-play-singletask-task2-v0** (evaluation return)" in partial
    assert ("FINO ≥ FQL online: inconclusive (the interval holds 0; about 11 seeds per method "
            "would resolve a difference this large at this spread): fino -20.0 vs fql -12.5, "
            "difference -7.5 ± 95.3 (95% Welch CI, n=2/2)") in partial
    assert (out / "cube-single-play-return.png").stat().st_size > 10_000
    with Store(db).write() as session:  # one FQL seed ends online at 50%: now compare
        session.execute(update(Metric).where(Metric.run_id == fql0, Metric.key == "eval/score",
                                             Metric.step == 80).values(value=50.0))
    text = report_text()
    assert "FINO ≥ FQL online" in text and "every run (6)" not in text
    assert "## Partial progress" not in text  # a task with a success: the score says enough
    assert "online gain (online − offline), fino vs fql" in text
    assert ("entropy guidance matters (FINO vs noise only): fino and fino-noise-only are 0.0 on "
            "every seed (n=2/2): nothing to compare") in text
    assert "inconclusive (the interval holds 0; about " in text  # 50% vs 0% on one seed of two
    assert "seeds per method would resolve a difference this large" in text
    assert "offline phase, injected noise vs none" not in text  # no action-noise runs here
    assert (out / "cube-single-play.png").stat().st_size > 10_000
    assert f"- Runs made on: {machine()} (6 runs)" in text  # from each run's started event
    assert "median (range) by task: cube-single-play-singletask-task2-v0 " in text
    assert "still to do" not in text  # all 6 planned runs are done

    # Results travel: export, import into another store, the same report; nothing runs again.
    archive = tmp_path / "runs.jsonl.gz"
    exported = runner.invoke(app, ["study", "export", str(plan), "--out", str(archive),
                                   "--db", db])
    assert exported.exit_code == 0 and "6 done runs" in " ".join(exported.output.split())
    other = str(tmp_path / "other.db")
    for expected in ("6 runs added", "0 runs added"):
        imported = runner.invoke(app, ["study", "import", str(archive), "--db", other])
        assert imported.exit_code == 0 and expected in " ".join(imported.output.split())
    again = runner.invoke(app, ["study", "run", str(plan), "--workers", "0",
                                "--dataset-dir", str(data), "--db", other])
    assert "6 already" in " ".join(again.output.split())
    copy = tmp_path / "copy"
    runner.invoke(app, ["study", "report", str(plan), "--out", str(copy), "--dataset-dir",
                        str(data), "--db", other])
    table = [line for line in text.splitlines() if line.startswith("| ")]
    copied = (copy / "report.md").read_text()
    assert table == [line for line in copied.splitlines() if line.startswith("| ")]
    assert f"- Runs made on: {machine()} (6 runs)" in copied  # the machine travels too
    (tmp_path / "bad.jsonl").write_text("not json\n")
    bad = runner.invoke(app, ["study", "import", str(tmp_path / "bad.jsonl"), "--db", other])
    assert bad.exit_code == 1 and "not a study archive" in bad.output


def test_bad_plans_are_clear_errors(tmp_path):
    bad = tmp_path / "p.toml"
    bad.write_text('name = "x"\ntasks = ["cube-sigle"]\n[budgets]\ncpu = []\n[methods.fino]\n')
    with pytest.raises(PlanError, match="unknown task"):
        load_plan(bad)
    bad.write_text('name = "x"\ntasks = ["cube-single"]\n[budgets]\ncpu = ["agent.alpah=1"]\n'
                   "[methods.fino]\n")
    with pytest.raises(PlanError, match="alpah"):
        load_plan(bad)
    assert len(load_plan(Path("benchmarks/studies/repro.toml")).configs("cpu")) == 100


def test_a_bare_name_loads_the_plan_that_ships_with_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no benchmarks/ here: only the packaged plan can answer
    assert load_plan(Path("repro")).name == "repro"
    with pytest.raises(PlanError, match=r"ships with fino \(repro\)"):
        load_plan(Path("repo"))
    with pytest.raises(PlanError, match="does not exist"):
        load_plan(Path("repo.toml"))


def test_the_online_gain_is_each_seeds_online_minus_offline():
    from fino.study.report import Cell, _gains

    cell = Cell(offline=(0.0, 0.0, 0), online=(0.0, 0.0, 0), curves=[],
                per_seed={0: (10.0, 30.0), 1: (20.0, None), 2: (25.0, 5.0)})
    assert _gains(cell) == [20.0, -20.0]


def test_offline_scores_per_seed_pool_the_alike_methods_once_per_seed():
    from fino.study.report import Cell, offline_per_seed

    def cell(per_seed):
        return Cell(offline=(0.0, 0.0, 0), online=(0.0, 0.0, 0), curves=[], per_seed=per_seed)

    cells = {("t", "fino"): cell({0: (10.0, 50.0), 1: (20.0, 60.0)}),
             ("t", "fino-noise-only"): cell({0: (30.0, 40.0), 2: (None, 10.0)}),
             ("t", "fql"): cell({0: (90.0, 90.0)})}
    # seed 0: mean of 10 and 30; seed 1: 20; seed 2 has no offline score; fql is not asked for
    assert offline_per_seed(cells, "t", ("fino", "fino-noise-only", "fino-balanced")) == [
        20.0, 20.0]


def test_the_machine_is_read_back_from_an_event_message():
    assert machine_of(f"fino on cube, step 0/10, fino 0.1.0{MACHINE_MARK}Linux x86_64, X") == \
        "Linux x86_64, X"
    assert machine_of("fino on cube, step 0/10, fino 0.1.0") is None
    assert machine().startswith(platform.system()) and "torch " in machine()


def test_a_task_where_every_run_ends_at_zero_is_said_so_not_compared():
    def cell(*pairs):
        return Cell((0, 0, 0), (0, 0, 0), [], dict(enumerate(pairs)))

    cells = {("a", "fino"): cell((0.0, 0.0), (0.0, 0.0)), ("a", "fql"): cell((0.0, 0.0)),
             ("b", "fino"): cell((0.0, 0.0)), ("b", "fql"): cell((0.0, 2.0)),
             ("c", "fino"): cell((None, None))}
    assert runs_all_zero(cells, "a") == 3
    assert runs_all_zero(cells, "b") == 0  # one run reached 2%: compare as usual
    assert runs_all_zero(cells, "c") == 0  # nothing finished: nothing to say


def test_the_runs_still_to_do_cost_their_task_s_median_minutes():
    minutes = {"a": [10.0, 30.0, 11.0], "b": [4.0, 6.0]}  # medians 11 and 5, means 17 and 5
    assert remaining_cost(["a", "a", "b"], minutes) == (27.0, 0)
    assert remaining_cost(["a", "c", "c"], minutes) == (11.0, 2)  # c: nothing finished
    assert remaining_cost([], minutes) == (0.0, 0)
