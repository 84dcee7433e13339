import errno
import os

import pytest
import torch

from fino.train import checkpoint
from fino.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


class _Payload:
    def __reduce__(self):
        return (print, ("code ran from a checkpoint",))


def test_a_crafted_checkpoint_cannot_run_code(tmp_path, capsys):
    path = tmp_path / "checkpoint.pt"
    torch.save({"step": 1, "payload": _Payload()}, path)
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(path)
    assert "code ran" not in capsys.readouterr().out


def test_a_plain_checkpoint_round_trips(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 3, "weights": torch.ones(2), "config": {"dims": (4, 4)}})
    state = load_checkpoint(path)
    assert state["step"] == 3 and torch.equal(state["weights"], torch.ones(2))


def _full_disk_while_writing(state, f):
    f.write(b"partial checkpoint bytes")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _torch_writer_failure(state, f):
    f.write(b"partial checkpoint bytes")
    raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed "
                       "writing file data/0: file write failed")


def _quota_at_fsync(fd):
    raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))


def _read_only_folder(*args, **kwargs):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))


@pytest.mark.parametrize(("target", "fault", "reason"), [
    ("torch.save", _full_disk_while_writing, "no space left on device; free space"),
    ("torch.save", _torch_writer_failure, "no space left on device; free space"),
    ("os.fsync", _quota_at_fsync, "disk quota exceeded"),
    ("tempfile.mkstemp", _read_only_folder, "read-only file system"),
])
def test_a_failed_write_names_the_reason_and_keeps_the_previous_checkpoint(
        tmp_path, monkeypatch, target, fault, reason):
    path = tmp_path / "run" / "checkpoint.pt"
    save_checkpoint(path, {"step": 1, "weights": torch.ones(3)})
    before = path.read_bytes()
    monkeypatch.setattr(target, fault)
    monkeypatch.setattr(checkpoint, "_available_bytes", lambda folder: 0)  # the disk is full
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(path, {"step": 2, "weights": torch.zeros(3)})
    message = str(info.value)
    assert f"cannot write checkpoint {path}: {reason}" in message and "\n" not in message
    assert "previous checkpoint.pt is intact" in message
    assert f"fino run --resume {path.parent}" in message
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # no .tmp left


def test_a_first_checkpoint_on_a_full_disk_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    monkeypatch.setattr("torch.save", _full_disk_while_writing)
    with pytest.raises(CheckpointError, match=r"no space left on device.*none was written yet"):
        save_checkpoint(path, {"step": 1})
    assert list(tmp_path.iterdir()) == []


def test_a_writer_failure_with_free_space_is_not_called_a_full_disk(tmp_path, monkeypatch):
    monkeypatch.setattr("torch.save", _torch_writer_failure)
    with pytest.raises(RuntimeError, match="PytorchStreamWriter") as info:
        save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    assert not isinstance(info.value, CheckpointError)
    assert list(tmp_path.iterdir()) == []


def test_the_last_checkpoints_are_kept_and_an_abandoned_attempt_s_later_ones_go(tmp_path,
                                                                              monkeypatch):
    path = tmp_path / checkpoint.CHECKPOINT_NAME
    for step in (10, 20, 30):
        save_checkpoint(path, {"step": step})
        checkpoint.keep_checkpoint(path, step, keep=2)
    kept = checkpoint.kept_checkpoints(tmp_path)
    assert [s for s, _ in kept] == [20, 30]
    assert [load_checkpoint(p)["step"] for _, p in kept] == [20, 30]  # the link keeps step 20
    assert os.path.samefile(kept[-1][1], path)
    # A new attempt that starts afresh: its step 10 replaces the kept later steps.
    monkeypatch.setattr(checkpoint.os, "link", _no_links)  # a file system without hard links
    save_checkpoint(path, {"step": 10})
    checkpoint.keep_checkpoint(path, 10, keep=2)
    kept = checkpoint.kept_checkpoints(tmp_path)
    assert [s for s, _ in kept] == [10] and load_checkpoint(kept[0][1])["step"] == 10


def _no_links(src, dst):
    raise OSError(errno.EPERM, "hard links not supported")


def test_runs_show_lists_the_kept_checkpoints(tmp_path):
    from fino.cli.runs import checkpoints_text

    assert checkpoints_text(None) == "-" and checkpoints_text(str(tmp_path)) == "-"
    path = tmp_path / checkpoint.CHECKPOINT_NAME
    save_checkpoint(path, {"step": 5})
    assert checkpoints_text(str(tmp_path)) == "checkpoint.pt"  # an older run folder
    checkpoint.keep_checkpoint(path, 5, keep=2)
    save_checkpoint(tmp_path / "offline.pt", {"step": 5})
    assert checkpoints_text(str(tmp_path)) == (
        "step 5 (checkpoints/step-000000005.pt), end of offline (offline.pt)")
