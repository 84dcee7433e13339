"""The whole update as one CUDA graph: losses, backward, target update and Adam replayed from
static input buffers, so one update costs one launch from the host.

The pattern is PyTorch's whole-network capture: warm up on a side stream (the compiled losses
compile, Adam creates its state), capture one update, then replay it after copying each new
batch and its draws into the static buffers. Warm-up updates really train, so everything they
change (parameters, targets, Adam's state, the divergence watch, the counters) is snapshotted
before and copied back in place after: the first replayed update is the pack's first update.
Acting and the entropy sampler run outside the graph (they allocate from the ordinary pool).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from fino.algo.agent import AgentPack, Batch, UpdateNoise

WARMUP_UPDATES = 3


def _state_tensors(pack: AgentPack) -> list[Tensor]:
    """Every tensor an update changes in place."""
    tensors = [p.data for net in pack._nets().values() for p in net.parameters()]
    for slot in pack.optimizer.state.values():
        tensors += [v for v in slot.values() if isinstance(v, Tensor)]
    return [*tensors, pack.first_nonfinite, pack._update_count]


def _copy_into(static: Batch | UpdateNoise, fresh: Batch | UpdateNoise) -> None:
    for name, buffer in static.__dict__.items():
        buffer.copy_(getattr(fresh, name), non_blocking=True)


class GraphedUpdate:
    """`pack.step` captured once; calling it copies (batch, noise) in and replays."""

    def __init__(self, pack: AgentPack, batch: Batch, noise: UpdateNoise) -> None:
        if pack.device.type != "cuda":
            raise RuntimeError("CUDA graphs need a CUDA device")
        self.static_batch = type(batch)(*(t.clone() for t in batch.__dict__.values()))
        self.static_noise = type(noise)(*(t.clone() for t in noise.__dict__.values()))
        pack._ensure_adam_state()  # so the snapshot below covers Adam's state too
        snapshot = [t.clone() for t in _state_tensors(pack)]
        num_updates = pack.num_updates
        try:
            side = torch.cuda.Stream(pack.device)
            side.wait_stream(torch.cuda.current_stream(pack.device))
            with torch.cuda.stream(side):
                for _ in range(WARMUP_UPDATES):
                    pack.step(self.static_batch, self.static_noise)
            torch.cuda.current_stream(pack.device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.static_metrics = pack.step(self.static_batch, self.static_noise)
        except Exception as exc:
            raise RuntimeError(
                f"capturing the update as a CUDA graph failed ({type(exc).__name__}: {exc}); "
                "the agent is unchanged: train without graphs (train.cuda_graphs=false, or "
                "AgentPack(..., cuda_graphs=False))") from exc
        finally:
            with torch.no_grad():
                for live, saved in zip(_state_tensors(pack), snapshot, strict=True):
                    live.copy_(saved)
            pack.num_updates = num_updates

    def __call__(self, batch: Batch, noise: UpdateNoise) -> Tensor:
        _copy_into(self.static_batch, batch)
        _copy_into(self.static_noise, noise)
        self.graph.replay()
        return self.static_metrics
