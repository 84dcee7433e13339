import pytest
import torch

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
