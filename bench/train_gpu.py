"""Training throughput on a GPU: images/s and peak GPU memory of the real model code
(jobs/learn/models.py) in the seed's Gen-2 set-up — ConvNeXt-Tiny, bf16 autocast, batch 512, AdamW —
with ResNet18-64 (the seed's Gen-1 architecture, at the same batch) in the same run as the
reference. Synthetic 3×64×64 batches already on the GPU: this measures the model's step, not
the loader (bench/loader.py measures that).

    python bench/train_gpu.py [--steps 30] [--batch 512]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jobs.learn.models import build  # noqa: E402


def measure(arch: str, batch: int, steps: int, channels_last: bool) -> tuple[float, float]:
    device = torch.device("cuda")
    model = build(arch, channels_last=channels_last).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-2)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x = torch.randn(batch, 3, 64, 64, device=device)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    y = (torch.rand(batch, device=device) > 0.5).float()
    torch.cuda.reset_peak_memory_stats()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return batch * steps / elapsed, torch.cuda.max_memory_allocated() / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench/train_gpu.py needs a CUDA GPU")
    torch.backends.cudnn.benchmark = True
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    results = {}
    for arch in ("resnet18", "convnext_tiny"):
        for channels_last in (False, True):
            rate, peak = measure(arch, args.batch, args.steps, channels_last)
            results[arch, channels_last] = rate
            layout = "channels_last" if channels_last else "NCHW"
            print(
                f"{arch:14s} bf16 batch {args.batch} {layout:13s}: {rate:9.0f} images/s, peak {peak:5.2f} GiB"
            )
    base = results["resnet18", False]
    for (arch, cl), rate in results.items():
        print(f"ratio to resnet18 NCHW: {arch} {'channels_last' if cl else 'NCHW'} {rate / base:.2f}")


if __name__ == "__main__":
    main()
