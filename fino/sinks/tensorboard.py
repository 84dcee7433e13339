"""TensorBoard: event files in RUN_DIR/tensorboard/ (`tensorboard --logdir runs`)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fino.metric_keys import EVAL_RETURN, EVAL_SCORE
from fino.sinks import flat_config, require, writable_folder

if TYPE_CHECKING:
    from fino.train.config import RunConfig

FOLDER = "tensorboard"
HPARAM_METRICS = (EVAL_SCORE, EVAL_RETURN)  # the columns of TensorBoard's HParams table


class TensorBoardSink:
    """Each metric as a scalar at its step; the resolved config as text and hparams; events
    as text; the run's curves as an image. A resumed run purges what was logged after its
    checkpoint, as the run's own files do."""

    requires = "tensorboard"

    def __init__(self, run_dir: Path, config: RunConfig) -> None:
        require(self.requires, "tensorboard")
        self.log_dir = writable_folder(run_dir / FOLDER, "tensorboard")
        self.config = config
        self._writer: Any = None
        self._purge_step: int | None = None  # the first step a resumed run writes again
        self._step = 0

    def _open(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            fresh = not any(self.log_dir.glob("events.out.tfevents.*"))
            self._writer = SummaryWriter(str(self.log_dir), purge_step=self._purge_step)
            if fresh:  # described once, by the run's first attempt with this sink
                self._describe(self._writer)
        return self._writer

    def _describe(self, writer: Any) -> None:
        from torch.utils.tensorboard.summary import hparams

        text = json.dumps(self.config.to_dict(), indent=2)
        writer.add_text("config", "\n".join("    " + line for line in text.splitlines()), 0)
        experiment, start, _end = hparams(flat_config(self.config),
                                          dict.fromkeys(HPARAM_METRICS, 0.0))
        for summary in (experiment, start):
            writer._get_file_writer().add_summary(summary)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        writer = self._open()
        self._step = step
        for key, value in metrics.items():
            writer.add_scalar(key, value, step)

    def event(self, kind: str, message: str) -> None:
        self._open().add_text("events", f"**{kind}**: {message}", self._step)

    def truncate_after(self, step: int) -> None:
        if step < 0:
            return
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._purge_step, self._step = step + 1, step

    def artifact(self, path: Path) -> None:
        """A PNG as an image at the last step (other files have no place in TensorBoard)."""
        if path.suffix.lower() != ".png":
            return
        from tensorboard.compat.proto.summary_pb2 import Summary

        data = path.read_bytes()
        width, height = struct.unpack(">II", data[16:24])  # the PNG header's IHDR chunk
        image = Summary.Image(height=height, width=width, colorspace=4,
                              encoded_image_string=data)
        self._open()._get_file_writer().add_summary(
            Summary(value=[Summary.Value(tag=path.stem, image=image)]), self._step)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
