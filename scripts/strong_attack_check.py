"""An attack check independent of the adaptive engine, on the demo models (for judging the engine's strength).

torchattacks-based suite (`robust.evaluate`, not `robust.engine`): APGD-CE, APGD-DLR, EOT-APGD-CE and Square
on the float model under a surrogate sweep; every example is then scored on hw_sim as well. Reports, per
model and eps, the per-sample worst case over all runs (float: on the float model; fixed: on hw_sim), the
same figure the issue's independent attacker reported. Usage (after `tgo demo`):

    .venv/bin/python scripts/strong_attack_check.py [runs/demo] [n]
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from hw_sim.netfile import load_net
from robust.attacks import AttackSettings, parse_attacks
from robust.deployed import logit_scale
from robust.evaluate import derive_seed, evaluate_model
from robust.seeded import HwSimModel, score
from robust.surrogates import parse_surrogates
from train.checkpoint import load_checkpoint
from train.data import load_dataset


def check(root: Path, name: str, n: int) -> None:
    ckpt = load_checkpoint(root / name)
    data = load_dataset(ckpt.config.data)
    x, y = data.test_x[:n], data.test_y[:n]
    net_path = root / f"{name}-export" / "model.net"
    net = load_net(net_path)
    hwsim = HwSimModel(net, logit_scale(net_path, net))
    model = ckpt.build_model("cpu").eval()
    result = evaluate_model(model, x, y, parse_attacks("apgd-ce,apgd-dlr,eot-apgd-ce,square"), [0.0625, 0.125],
                            parse_surrogates("own,superspike:10,superspike:30,arctan:10,ste", ckpt.config.neuron.alpha),
                            AttackSettings(eot_k=8, restarts=2, apgd_steps=50, square_queries=300), seed=1,
                            repeats=10, keep_examples=True)
    seeds = [derive_seed(1, "independent", i) for i in range(10)]
    for eps_result in result.eps_results:
        fixed = torch.stack([score(hwsim, x, y, seeds)[0]] +
                            [score(hwsim, run.examples, y, seeds)[0] for run in eps_result.runs if not run.probe])
        print(f"{name} eps {eps_result.eps:g}: independent per-sample worst, float {100 * eps_result.accuracy:.1f}%, "
              f"fixed (hw_sim) {100 * float(fixed.min(0).values.mean()):.1f}%", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/demo")
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 150
    for model_name in ("vanilla", "tgo+at"):
        check(root, model_name, count)
