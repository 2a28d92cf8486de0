"""What computing large convolutions in the frequency domain buys fp32 training on a CPU (training/spectral.py).

`python bench/spectral_conv.py` first checks that the spectral form gives F.conv2d's numbers, then times, with one
thread (as a study's trainings run, `--jobs 2` on 2 cores) and in fp32 (bf16 autocast keeps the direct form):
1. each convolution of the notebook's CNN at k = 3, 5, 7 alone, forward and backward, a batch of 128 in the
   trainer's channels_last layout, direct (oneDNN) and spectral: the table `spectral.spectral_is_faster` is read
   from;
2. the trainer's own training step (`speed.measure`: the same model, batch, layout, optimizer) of cnn k3/k5/k7 as
   `fmnist train` runs it now (spectral where it is faster) and with every convolution direct.
It prints each time and the speed-up (direct / spectral). Run it under the AVX2 approximation
(`ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2`) to stand for a CPU without
AVX-512. Options: `--threads`, `--steps`, `--batch`. The ratios are the answer; absolute times are this machine's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import step_time as speed  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from train_speed import cpu_kind  # noqa: E402

from fmnist_tui.core.config import TrainConfig  # noqa: E402
from fmnist_tui.training import step  # noqa: E402
from fmnist_tui.training.spectral import spectral_conv2d, spectral_is_faster  # noqa: E402

#: the notebook's CNN's convolutions: (in channels, out channels, map side)
LAYERS = {"conv1": (1, 32, 28), "conv2": (32, 64, 14)}


def layer_times(name: str, kernel: int, batch: int, steps: int) -> tuple[float, float]:
    """Forward + backward of one layer, direct and spectral; conv1's input needs no gradient (it is the image)."""
    c, o, side = LAYERS[name]
    x = torch.randn(batch, c, side, side).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(name != "conv1")
    w = torch.randn(o, c, kernel, kernel).contiguous(memory_format=torch.channels_last).requires_grad_()
    b = torch.randn(o, requires_grad=True)

    def run(conv: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> float:
        return speed.median_time(lambda: conv(x, w, b).square().mean().backward(), steps, 2)

    return run(lambda x, w, b: F.conv2d(x, w, b, padding=kernel // 2)), run(spectral_conv2d)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    x, w, b = torch.randn(16, 32, 14, 14), torch.randn(64, 32, 7, 7), torch.randn(64)
    ref = F.conv2d(x, w, b, padding=3)
    error = float((spectral_conv2d(x, w, b) - ref).abs().max() / ref.abs().max())
    assert error < 1e-5, error
    print(f"CPU: {cpu_kind()[0]}; {args.threads} thread(s), fp32, batch {args.batch}")
    print(f"spectral vs F.conv2d, 7x7 conv2: largest difference {error:.1e} of the largest output\n")

    print("one layer, forward + backward     direct     spectral   speed-up   spectral used")
    for kernel in (3, 5, 7):
        for name, (c, _, _) in LAYERS.items():
            direct, spectral = layer_times(name, kernel, args.batch, args.steps)
            used = "yes" if spectral_is_faster(kernel, c) else "no"
            times = f"{direct * 1e3:7.1f} ms {spectral * 1e3:7.1f} ms   {direct / spectral:5.2f}x"
            print(f"  {name} k{kernel}{'':21} {times}   {used}")

    print("\nthe trainer's step (speed.measure)  all direct  as trained  speed-up")
    real = step.use_spectral
    for kernel in (3, 5, 7):
        cfg = TrainConfig.create(arch="cnn", kernel=kernel, precision="fp32", device="cpu", batch_size=args.batch)
        step.use_spectral = lambda *a: []  # type: ignore[assignment]  # every convolution direct
        direct = speed.measure(cfg, args.threads, steps=args.steps).step_s
        step.use_spectral = real  # type: ignore[assignment]
        now = speed.measure(cfg, args.threads, steps=args.steps).step_s
        print(f"  cnn-k{kernel}{'':29} {direct * 1e3:7.1f} ms {now * 1e3:7.1f} ms   {direct / now:5.2f}x")


if __name__ == "__main__":
    main()
