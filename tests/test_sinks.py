"""File sinks survive a torn last line (a full disk or a kill in mid-write) when a resumed run
truncates them."""

from __future__ import annotations

import json

from fino.train.sinks import EvalCsvSink, JsonlSink


def test_truncating_drops_a_torn_jsonl_line_and_keeps_the_rest(tmp_path):
    path = tmp_path / "metrics.jsonl"
    sink = JsonlSink(path)
    for step in (10, 20, 30):
        sink.write(step, {"critic/loss": float(step)})
    sink.close()
    with path.open("a") as f:
        f.write('{"step": 40, "critic/lo')  # the disk filled up here
    sink = JsonlSink(path)
    sink.truncate_after(20)
    sink.write(30, {"critic/loss": 3.0})
    sink.close()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["step"], r["critic/loss"]) for r in rows] == [(10, 10.0), (20, 20.0), (30, 3.0)]


def test_truncating_drops_a_torn_csv_row(tmp_path):
    path = tmp_path / "eval.csv"
    sink = EvalCsvSink(path)
    sink.write(10, {"eval/score": 1.0})
    sink.close()
    with path.open("a") as f:
        f.write("2")  # torn before the first comma
    sink = EvalCsvSink(path)
    sink.truncate_after(10)
    sink.close()
    lines = path.read_text().splitlines()
    assert lines[0].startswith("step,") and [ln.split(",")[0] for ln in lines[1:]] == ["10"]
