"""Seconds per CIFAR-10-sized epoch (50,000 images, estimated from timed steps) of vgg11 with TGO, and the
TGO / vanilla step ratio, on synthetic CIFAR-shaped data (3x32x32, 10 classes): no dataset, no Lava needed.

Usage (repository root on PYTHONPATH): python bench/gpu_train.py [--device cuda] [--width 64] [--timesteps 4]
    [--batch 128] [--repeats 20] [--amp]        (--amp: bf16 autocast of the synaptic products only)
A tiny CPU check: python bench/gpu_train.py --device cpu --width 2 --batch 4 --repeats 2 --warmup 1
"""
from __future__ import annotations

import argparse

import torch

from bench_train_step import compare

EPOCH_IMAGES = 50_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--width", type=int, default=64, help="vgg11 base width (the paper's: 64)")
    parser.add_argument("--timesteps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--amp", action="store_true")
    args = parser.parse_args()
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    vanilla, tgo = compare("vgg11", [], (3, 32, 32), args.batch, args.device, args.repeats, args.warmup,
                           timesteps=args.timesteps, width=args.width, amp=args.amp)
    steps = -(-EPOCH_IMAGES // args.batch)
    print(f"device {name}, torch {torch.__version__}, vgg11 width {args.width}, T={args.timesteps}, batch {args.batch}, "
          f"amp {'bf16' if args.amp else 'off'}, median of {args.repeats} steps")
    print(f"step: vanilla {vanilla * 1e3:.1f} ms, TGO {tgo * 1e3:.1f} ms, TGO/vanilla {tgo / vanilla:.2f}x")
    print(f"CIFAR-10 epoch ({EPOCH_IMAGES} images, {steps} steps) with TGO: {tgo * steps:.1f} s "
          f"(vanilla {vanilla * steps:.1f} s)")


if __name__ == "__main__":
    main()
