"""Attack cost per sample of each adaptive-engine source, on the demo's TGO+AT model (digits, 150 images).

Run `tgo demo` first (it writes runs/demo). Prints milliseconds per image for: the EOT probe, the float APGD
sweep, the twin's APGD, the hw_sim input-level search, and the candidate scoring (select, confirm and score
seeds), at eps 2/16 with the default budget (one thread; times include the doubled-budget round; sources
run as a cascade, so later ones see only the images still alive).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from hw_sim.netfile import load_net
from robust.deployed import DeployedTwin, logit_scale
from robust.engine import Side, run_engine
from robust.options import DEFAULT_SWEEP, DEFAULT_TWIN_SWEEP, EngineBudget
from robust.seeded import FloatModel, HwSimModel
from robust.surrogates import parse_surrogates
from train.checkpoint import load_checkpoint
from train.data import load_dataset


def main(root: Path = Path("runs/demo"), name: str = "tgo+at", n: int = 150) -> None:
    torch.set_num_threads(1)
    if not (root / name).exists():
        sys.exit(f"{root / name} not found: run `tgo demo` first")
    ckpt = load_checkpoint(root / name)
    data = load_dataset(ckpt.config.data)
    x, y = data.test_x[:n], data.test_y[:n]
    net_path = root / f"{name}-export" / "model.net"
    net = load_net(net_path)
    scale = logit_scale(net_path, net)
    model = ckpt.build_model("cpu").eval()
    alpha = ckpt.config.neuron.alpha
    hwsim = HwSimModel(net, scale)
    sides = [Side("float", FloatModel(model, x[:64]), model, parse_surrogates(DEFAULT_SWEEP, alpha), "float"),
             Side("fixed", hwsim, DeployedTwin(net, ckpt.config.neuron, scale),
                  parse_surrogates(DEFAULT_TWIN_SWEEP, alpha), "twin", eot_from="float")]
    started = time.perf_counter()
    result = run_engine(sides, Side("hw_sim", hwsim, origin="hw_sim"), x, y, [0.125], net.tgo.input_scale,
                        EngineBudget(), 0, 10)
    total = time.perf_counter() - started
    print(f"{name}, {n} images, eps 0.125, EOT k = {result.eot['float']['k']} (float) / "
          f"{result.eot['fixed']['k']} (fixed)")
    for source, seconds in sorted(result.seconds.items()):
        print(f"  {source:16s} {1000 * seconds / n:8.1f} ms per image")
    rest = total - sum(result.seconds.values())
    print(f"  {'scoring':16s} {1000 * rest / n:8.1f} ms per image")
    print(f"  {'total':16s} {1000 * total / n:8.1f} ms per image ({total:.0f} s)")


if __name__ == "__main__":
    main()
