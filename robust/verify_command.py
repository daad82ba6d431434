"""`tgo verify CHECKPOINT MODEL.net`: options, loading, report files and the console summary."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Optional

from rich.console import Console
from rich.table import Table

from hw_sim.netfile import NetFile, load_net
from robust.command import check_budget, parse_eps
from robust.flips import measure_flips
from robust.options import EngineBudget
from robust.surrogates import parse_surrogates
from robust.options import SAMPLE_BLOCK
from robust.sharding import sharded
from robust.verify import Verification, VerifyOptions, refuse_unvouched, sample_count, verify
from robust.verify_report import to_report, write_verify_report
from tgo_errors import UsageError
from tgo_files import check_output_dir
from tgo_provenance import provenance
from train.checkpoint import file_sha256, load_checkpoint, resolve_checkpoint_path
from train.data import Dataset, load_dataset

def build_options(eps: str, surrogates: str, twin_surrogates: str, default_alpha: float, n: Optional[int],
                  lava_n: int, repeats: int, tolerance: float, seed: int, budget: EngineBudget,
                  allow_unpaired: bool = False, block: int = SAMPLE_BLOCK) -> VerifyOptions:
    """Parse and check the CLI values (UsageError on a bad one)."""
    if not 0 <= tolerance <= 1:
        raise UsageError(f"--tolerance must be in [0, 1] (a fraction: 0.02 = 2 points), got {tolerance}")
    for name, value, low in (("--repeats", repeats, 1), ("--lava-n", lava_n, 0), ("--block", block, 1)):
        if value < low:
            raise UsageError(f"{name} must be >= {low}, got {value}")
    check_budget(budget)
    return VerifyOptions(parse_eps(eps), parse_surrogates(surrogates, default_alpha),
                         parse_surrogates(twin_surrogates, default_alpha), budget, n=n, lava_n=lava_n,
                         repeats=repeats, tolerance=tolerance, seed=seed, allow_unpaired=allow_unpaired, block=block)


def verdict_table(report: Dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    for column in ("eps", "float worst-case", "fixed point (hw_sim)", "gap"):
        table.add_column(column, justify="right")
    fmt = lambda e: f"{100 * e['accuracy']:.1f}% [{100 * e['ci_low']:.0f}-{100 * e['ci_high']:.0f}]"
    table.add_column("fixed, PCG64 noise", justify="right")
    clean = report["clean"]
    table.add_row("clean", fmt(clean["float"]), fmt(clean["fixed"]),
                  f"{100 * (clean['float']['accuracy'] - clean['fixed']['accuracy']):+.1f}", fmt(clean["fixed_pcg64"]))
    for row in report["robust"]:
        table.add_row(f"{row['eps']:g}", fmt(row["float"]), fmt(row["fixed"]), f"{100 * row['gap']:+.1f}",
                      fmt(row["fixed_pcg64"]))
    return table


def run_verify(checkpoint: Path, net_path: Path, out: Path, options: VerifyOptions,
               console: Optional[Console] = None, show_progress: bool = True) -> Optional[Dict[str, Any]]:
    """Verify, write verify.json/.md/.png into `out`, print the verdict; returns the report. Under torchrun
    the samples are sharded by blocks across the ranks (`robust.sharding`); rank 0 alone prints, checks Lava
    and writes (the other ranks return None)."""
    console = console or Console()
    check_output_dir(out)
    ckpt = load_checkpoint(checkpoint)
    net = load_net(net_path)
    refuse_unvouched(checkpoint, net_path, ckpt, net, options.allow_unpaired)
    data = load_dataset(ckpt.config.data)
    ckpt.check_data(data, checkpoint)
    with sharded("cpu", sample_count(options, data), options.block) as plan:
        log = (lambda msg: console.print(f"[dim]{msg}[/dim]")) if show_progress and plan.is_main else (lambda _: None)
        result = verify(ckpt, net_path, data, options, log=log, plan=plan)
        return None if result is None else _finish(result, checkpoint, net_path, out, options, data, net, console)


def _finish(result: Verification, checkpoint: Path, net_path: Path, out: Path, options: VerifyOptions,
            data: Dataset, net: NetFile, console: Console) -> Dict[str, Any]:
    """Write verify.json/.md and plots, print the verdict; returns the report."""
    n = len(result.engine.clean["fixed"])
    settings = {**{k: v for k, v in asdict(options).items() if k not in ("surrogates", "twin_surrogates", "budget")},
                "budget": asdict(options.budget), "n": n, "surrogates": [s.label for s in options.surrogates],
                "twin_surrogates": [s.label for s in options.twin_surrogates], "dataset": data.name,
                "provenance": provenance("cpu")}
    sources = {"checkpoint": str(checkpoint), "checkpoint_sha256": file_sha256(resolve_checkpoint_path(checkpoint)),
               "net": str(net_path), "net_sha256": file_sha256(net_path)}
    report = to_report(result, settings, sources, measure_flips(net, data.test_x[:n]))
    write_verify_report(out, report)
    console.print(verdict_table(report, f"tgo verify: {report['verdict'].upper()}"))
    for reason in report["reasons"]:
        console.print(f"[red]fail[/red]: {reason}")
    for flag in report["flags"]:
        console.print(f"[red]red flag[/red]: {flag}")
    for note in report["notes"]:
        console.print(f"[yellow]note[/yellow]: {note}")
    lava = report["lava"]
    console.print("Lava: not checked (--lava-n 0)" if not lava["checked"] else
                  f"Lava agreement on {lava['samples']} samples: {'exact' if lava['agree'] else lava['mismatch']}")
    console.print(f"wrote {out / 'verify.json'}, {out / 'verify.md'} and plots")
    return report
