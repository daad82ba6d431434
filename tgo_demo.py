"""`tgo demo`: the whole pipeline on bundled digits, for a vanilla and a TGO(+AT) model.

train -> export (.net, ONNX, NIR) -> simulate (hw_sim vs Lava, spike for spike) -> verify (float vs fixed
point under attack) -> one comparison table and the paper's Figure 4 (distance to threshold, vanilla vs TGO).
Everything lands in one folder. A stage is reused only when the fingerprint of its inputs and settings matches
the one recorded when it finished (`.stages.json`): a demo with other settings into the same folder redoes what
they change, and an interrupted training with the same settings resumes.
Torch threads are pinned (`DemoPlan.threads`), because CPU results depend on the thread count.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List

import torch
from rich.console import Console
from rich.table import Table

from robust.options import DEFAULT_SWEEP, DEFAULT_TWIN_SWEEP, EngineBudget

from tgo_files import write_json_atomic, write_text_atomic
from tgo_provenance import provenance
from train.checkpoint import CHECKPOINT_NAME, file_sha256, load_checkpoint
from train.config import ExperimentConfig, apply_method

STAGES_FILE = ".stages.json"


@dataclass
class DemoPlan:
    """What the demo runs; `quick` shrinks everything for tests."""
    epochs: int = 40
    n: int = 150                     # test samples verified
    lava_n: int = 20                 # samples re-run in Lava (clean and adversarial)
    eps: str = "0.0625,0.125"       # 1 and 2 of the digits' 16 grey levels: exact on the chip's input grid
    repeats: int = 20                # score seeds per input, as `tgo verify`
    budget: EngineBudget = field(default_factory=EngineBudget)   # the CLI's defaults
    surrogates: str = DEFAULT_SWEEP
    twin_surrogates: str = DEFAULT_TWIN_SWEEP
    adv_eps: float = 0.1
    threads: int = 2                 # torch CPU threads, fixed so that the numbers reproduce on other machines

    @classmethod
    def quick(cls) -> "DemoPlan":
        return cls(epochs=3, n=20, lava_n=3, eps="0.125", repeats=3, budget=EngineBudget.quick(),
                   surrogates="own,ste")


def model_configs(plan: DemoPlan) -> Dict[str, ExperimentConfig]:
    """The two models compared: plain BPTT, and TGO (constraint + noisy LIF) with PGD adversarial training."""
    configs = {}
    for name, method, adv in (("vanilla", "vanilla", "none"), ("tgo+at", "tgo", "pgd")):
        cfg = ExperimentConfig()
        cfg.tgo.method, cfg.optim.epochs, cfg.optim.device = method, plan.epochs, "cpu"
        cfg.adv.kind, cfg.adv.eps, cfg.optim.threads = adv, plan.adv_eps, plan.threads
        configs[name] = apply_method(cfg)
    return configs


def fingerprint(*parts: object) -> str:
    """SHA-256 of the JSON of `parts` (file hashes and settings)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Stages:
    """Fingerprints of finished stages, kept in `out/.stages.json`."""

    def __init__(self, out: Path):
        self.path = out / STAGES_FILE
        try:
            self.done = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except ValueError:
            self.done = {}
        self.done = self.done if isinstance(self.done, dict) else {}

    def run(self, name: str, key: str, output: Path, action: Callable[[], None]) -> None:
        """Run `action` unless stage `name` finished with the same `key` and its `output` still exists."""
        if self.done.get(name) == key and output.exists():
            return
        self.done.pop(name, None)
        action()
        self.done[name] = key
        write_json_atomic(self.path, self.done)


def _train_stage(cfg: ExperimentConfig, run: Path, show_progress: bool, console: Console) -> None:
    """Train `cfg` into `run`: resume a checkpoint of exactly this config, else start afresh."""
    from train.trainer import train
    ckpt = run / CHECKPOINT_NAME
    resume = ckpt.exists() and load_checkpoint(run).config.to_dict() == cfg.to_dict()
    if not resume:
        shutil.rmtree(run, ignore_errors=True)
    train(cfg, run, resume=resume, show_progress=show_progress, log=console.print)


def run_demo(out: Path, plan: DemoPlan, console: Console, show_progress: bool = True) -> Dict[str, object]:
    """Run everything into `out`; returns the summary also written to demo.json / demo.md."""
    from export.pipeline import export_checkpoint
    from tgo_simulate import simulate_command
    from robust.verify_command import build_options, run_verify

    torch.set_num_threads(plan.threads)
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(out)
    started = time.perf_counter()
    rows: List[Dict[str, object]] = []
    verify_reports: Dict[str, Dict] = {}
    for name, cfg in model_configs(plan).items():
        run, exported, verified = out / name, out / f"{name}-export", out / f"{name}-verify"
        console.rule(f"[bold]{name}[/bold]: train")
        stages.run(f"{name}/train", fingerprint(cfg.to_dict()), run / CHECKPOINT_NAME,
                   lambda: _train_stage(cfg, run, show_progress, console))
        console.rule(f"[bold]{name}[/bold]: export")
        stages.run(f"{name}/export", fingerprint(file_sha256(run / CHECKPOINT_NAME)), exported / "export.json",
                   lambda: export_checkpoint(run, exported))
        console.rule(f"[bold]{name}[/bold]: simulate (hw_sim vs Lava)")
        code = simulate_command(exported / "model.net", None, None, plan.lava_n, "hwsim", True, exported,
                                256, "cpu", console)
        console.rule(f"[bold]{name}[/bold]: verify")
        options = build_options(plan.eps, plan.surrogates, plan.twin_surrogates, cfg.neuron.alpha, plan.n,
                                plan.lava_n, plan.repeats, 0.02, 0, plan.budget)
        report = run_verify(run, exported / "model.net", verified, options, console, show_progress)
        verify_reports[name] = report
        rows.append(_row(name, load_checkpoint(run), report, code == 0))
    summary = {"rows": rows, "plan": asdict(plan), "seconds": time.perf_counter() - started,
               "provenance": provenance("cpu")}
    write_json_atomic(out / "demo.json", summary)
    write_text_atomic(out / "demo.md", markdown(rows))
    _figure4(verify_reports, out / "demo_potentials.png")
    console.print(table(rows))
    console.print(f"demo finished in {summary['seconds']:.0f} s; results in {out}/ (demo.md, demo.json, *.png)")
    return summary


def _row(name: str, ckpt, report: Dict, simulate_agrees: bool) -> Dict[str, object]:
    main = report["robust"][-1]
    return {"model": name, "method": ckpt.config.tgo.method, "adv": ckpt.config.adv.kind,
            "clean_float": report["clean"]["float"]["accuracy"], "clean_fixed": report["clean"]["fixed"]["accuracy"],
            "eps": main["eps"], "robust_float": main["float"]["accuracy"], "robust_fixed": main["fixed"]["accuracy"],
            "near_threshold": report["potentials"]["float"]["near_threshold_fraction"],
            "lava_agrees": bool(report["lava"]["agree"]) and simulate_agrees, "verdict": report["verdict"],
            "reasons": report["reasons"] + report["flags"]}


COLUMNS = ("model", "clean float/fixed", "eps", "robust float/fixed", "near-thr.", "Lava=hw_sim", "verdict")


def _cells(row: Dict[str, object]) -> List[str]:
    pct = lambda v: f"{100 * v:.1f}%"
    return [row["model"], f"{pct(row['clean_float'])} / {pct(row['clean_fixed'])}", f"{row['eps']:g}",
            f"{pct(row['robust_float'])} / {pct(row['robust_fixed'])}", f"{row['near_threshold']:.3f}",
            "yes" if row["lava_agrees"] else "NO", str(row["verdict"]).upper()]


def table(rows: List[Dict[str, object]]) -> Table:
    out = Table(title="tgo demo: float vs deployed fixed point (worst case over the attack suite)")
    for column in COLUMNS:
        out.add_column(column, justify="right")
    for row in rows:
        out.add_row(*_cells(row))
    return out


def markdown(rows: List[Dict[str, object]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    for row in rows:
        lines += [f"- {row['model']}: {reason}" for reason in row["reasons"]]
    return "\n".join(lines) + "\n"


def _figure4(reports: Dict[str, Dict], path: Path) -> None:
    """Distance to threshold of the float models, vanilla vs TGO (the paper's Figure 4)."""
    from robust.verify_report import plot_potentials
    curves = {}
    for name, report in reports.items():
        pot = report["potentials"]
        curves[f"{name} (near-threshold {pot['float']['near_threshold_fraction']:.3f})"] = (
            pot["float"]["counts"], pot["range"][0], pot["range"][1], pot["delta"])
    plot_potentials(curves, path, "membrane potential - threshold, vanilla vs TGO")
