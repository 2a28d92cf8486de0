"""What the locally connected layer's batched-product formulation buys: the `lcn` training step, timed.

`python bench/lcn_speed.py` times the trainer's own step (training/step.py through `speed.measure`: the same
model, batch, precision, layout, optimizer and augmentation as `fmnist train`) of `lcn-k3` with the layer as it is
(`LocallyConnected2d.forward`: position-first patches, one batched matrix product, a channels_last output) and
with the einsum formulation it replaced (kept below as `einsum_forward`, the reference), and `cnn-k3`'s step
for scale. One thread, as a study's trainings run (`--jobs 2` on 2 cores); fp32, and bf16 autocast where the CPU
has it (not under the AVX2 approximation `ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`, where studies run
fp32). It checks first that both formulations give the same output, then prints each step time, the speed-up
(einsum / now) and how many cnn-k3 steps an lcn-k3 step costs; then the validation pass (1,000 images a batch, as
the trainer evaluates) with the einsum, with the batched product on the whole batch, and as the layer runs it
(in parts of LOCAL_CHUNK images). Options: `--threads`, `--steps`, `--kernel`,
`--device`. The ratios are the answer; absolute times are this machine's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from step_time import measure  # noqa: E402
from train_speed import cpu_kind  # noqa: E402

from fmnist_tui.core.config import TrainConfig  # noqa: E402
from fmnist_tui.training import models  # noqa: E402
from fmnist_tui.training.device import resolve_bf16, resolve_device  # noqa: E402
from fmnist_tui.training.models import LocallyConnected2d  # noqa: E402


def einsum_forward(self: LocallyConnected2d, x: torch.Tensor) -> torch.Tensor:
    """The layer's first formulation: [N, in, k², H, W] patches and one einsum (same numbers, the baseline)."""
    k, pad, h, w = self.kernel_size, self.kernel_size // 2, self.size, self.size
    padded = F.pad(x, (pad, pad, pad, pad))
    patches = torch.stack([padded[:, :, i : i + h, j : j + w] for i in range(k) for j in range(k)], dim=2)
    return torch.einsum("nckhw,hwock->nohw", patches, self.weight.flatten(4)) + self.bias


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--kernel", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.manual_seed(0)
    layer = LocallyConnected2d(32, 64, args.kernel, 14)
    x = torch.randn(8, 32, 14, 14).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(layer(x), einsum_forward(layer, x), atol=1e-4, rtol=1e-4)

    device = resolve_device(args.device)
    kind = cpu_kind()[0] if device.type == "cpu" else str(device)
    bf16 = resolve_bf16(device, "auto") and "emulated" not in kind  # no bf16 under the AVX2 approximation
    precisions = ["fp32"] + (["bf16"] if bf16 else [])
    print(f"{kind}; {args.threads} thread(s), batch 128, {args.steps} steps")
    now, chunk = LocallyConnected2d.forward, models.LOCAL_CHUNK
    for precision in precisions:
        lcn = TrainConfig.create(arch="lcn", kernel=args.kernel, precision=precision, device=args.device)
        cnn = TrainConfig.create(arch="cnn", kernel=args.kernel, precision=precision, device=args.device)
        try:
            LocallyConnected2d.forward = einsum_forward  # type: ignore[method-assign]
            before = measure(lcn, args.threads, args.steps)
            LocallyConnected2d.forward = now  # type: ignore[method-assign]
            models.LOCAL_CHUNK = 1 << 30  # the batched product without parts: the whole validation batch at once
            whole = measure(lcn, args.threads, args.steps)
        finally:
            LocallyConnected2d.forward, models.LOCAL_CHUNK = now, chunk  # type: ignore[method-assign]
        after = measure(lcn, args.threads, args.steps)
        base = measure(cnn, args.threads, args.steps)
        print(
            f"{precision:>4}: lcn-k{args.kernel} training step {before.step_s * 1e3:.0f} ms (einsum) -> "
            f"{after.step_s * 1e3:.0f} ms: {before.step_s / after.step_s:.2f}x faster; cnn-k{args.kernel} "
            f"{base.step_s * 1e3:.0f} ms, lcn/cnn {before.step_s / base.step_s:.1f}x -> "
            f"{after.step_s / base.step_s:.1f}x"
        )
        print(
            f"{'':>4}  validation, 1,000 images: {before.eval_s:.2f} s (einsum) -> {whole.eval_s:.2f} s (one "
            f"product) -> {after.eval_s:.2f} s (parts of {chunk}): {before.eval_s / after.eval_s:.2f}x faster; "
            f"cnn-k{args.kernel} {base.eval_s:.2f} s"
        )


if __name__ == "__main__":
    main()
