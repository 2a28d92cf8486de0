"""An exponential moving average of a model's weights (`--ema`): the copy that is validated, saved and exported."""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightEma:
    """A copy of `model` whose floating-point state (weights and batch-norm statistics) follows the model's as
    ema ← d·ema + (1 − d)·model after every optimisation step, with d = min(decay, (1 + t) / (10 + t)) at step t.

    The ramp (TensorFlow's ExponentialMovingAverage with num_updates) keeps the first steps' random weights from
    dominating a short run: the average spans about the last t/9 steps until that reaches the horizon 1/(1 − d).
    The update is one fused kernel over all tensors, queued on the device: no host sync.
    Integer buffers (batch norm's step counter) are copied."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        # the state tensors alias the modules' own (load_state_dict copies into them), so these pairs stay valid
        ours, theirs = self.model.state_dict(), model.state_dict()
        self.floats = [(ours[k], theirs[k]) for k in ours if ours[k].is_floating_point()]
        self.others = [(ours[k], theirs[k]) for k in ours if not ours[k].is_floating_point()]

    def decay_at(self, step: int) -> float:
        """The decay used after global step `step` (1-based: the number of steps taken)."""
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the average towards the model's current state, after step `step`."""
        ours, theirs = [a for a, _ in self.floats], [b for _, b in self.floats]
        torch._foreach_lerp_(ours, theirs, 1 - self.decay_at(step))
        for a, b in self.others:
            a.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The average's weights on the CPU in float32 (for train_state.pt)."""
        return {
            k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
            for k, v in self.model.state_dict().items()
        }
