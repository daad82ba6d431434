"""`tgo verify CHECKPOINT MODEL.net`: options, loading, report files and the console summary."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hw_sim.netfile import load_net
from robust.attacks import AttackSettings, parse_attacks
from robust.command import parse_eps
from robust.flips import measure_flips
from robust.surrogates import parse_surrogates
from robust.verify import VerifyOptions, verify
from robust.verify_report import to_report, write_verify_report
from tgo_errors import UsageError
from tgo_files import check_output_dir
from tgo_provenance import provenance
from train.checkpoint import file_sha256, load_checkpoint, resolve_checkpoint_path
from train.data import load_dataset

def build_options(attacks: str, eps: str, surrogates: str, default_alpha: float, n: Optional[int], lava_n: int,
                  eot_k: int, repeats: int, tolerance: float, seed: int, apgd_steps: int,
                  square_queries: int) -> VerifyOptions:
    """Parse and check the CLI values (UsageError on a bad one)."""
    if not 0 <= tolerance <= 1:
        raise UsageError(f"--tolerance must be in [0, 1] (a fraction: 0.02 = 2 points), got {tolerance}")
    for name, value, low in (("--eot-k", eot_k, 1), ("--repeats", repeats, 1), ("--lava-n", lava_n, 0),
                             ("--apgd-steps", apgd_steps, 1), ("--square-queries", square_queries, 1)):
        if value < low:
            raise UsageError(f"{name} must be >= {low}, got {value}")
    return VerifyOptions(parse_attacks(attacks), parse_eps(eps), parse_surrogates(surrogates, default_alpha),
                         AttackSettings(eot_k=eot_k, apgd_steps=apgd_steps, square_queries=square_queries),
                         n=n, lava_n=lava_n, repeats=repeats, tolerance=tolerance, seed=seed)


def verdict_table(report: Dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    for column in ("eps", "float worst-case", "fixed point (hw_sim)", "gap"):
        table.add_column(column, justify="right")
    fmt = lambda e: f"{100 * e['accuracy']:.1f}% [{100 * e['ci_low']:.0f}-{100 * e['ci_high']:.0f}]"
    clean = report["clean"]
    table.add_row("clean", fmt(clean["float"]), fmt(clean["fixed"]),
                  f"{100 * (clean['float']['accuracy'] - clean['fixed']['accuracy']):+.1f}")
    for row in report["robust"]:
        table.add_row(f"{row['eps']:g}", fmt(row["float"]), fmt(row["fixed"]), f"{100 * row['gap']:+.1f}")
    return table


def run_verify(checkpoint: Path, net_path: Path, out: Path, options: VerifyOptions,
               console: Optional[Console] = None, show_progress: bool = True) -> Dict[str, Any]:
    """Verify, write verify.json/.md/.png into `out`, print the verdict; returns the report."""
    console = console or Console()
    check_output_dir(out)
    ckpt = load_checkpoint(checkpoint)
    net = load_net(net_path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"output folder '{out}' is a file")
    data = load_dataset(ckpt.config.data)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not show_progress, transient=True) as progress:
        result = verify(ckpt, net_path, data, options, progress, log=lambda msg: console.print(f"[dim]{msg}[/dim]"))
    n = len(result.fixed_clean)
    settings = {**{k: v for k, v in asdict(options).items() if k not in ("attacks", "surrogates", "settings")},
                **asdict(options.settings), "n": n, "attacks": [a.name for a in options.attacks],
                "surrogates": [s.label for s in options.surrogates], "dataset": data.name,
                "provenance": provenance("cpu")}
    sources = {"checkpoint": str(checkpoint), "checkpoint_sha256": file_sha256(resolve_checkpoint_path(checkpoint)),
               "net": str(net_path), "net_sha256": file_sha256(net_path)}
    report = to_report(result, settings, sources, measure_flips(net, data.test_x[:n]))
    write_verify_report(out, report)
    console.print(verdict_table(report, f"tgo verify: {report['verdict'].upper()}"))
    for reason in report["reasons"]:
        console.print(f"[red]fail[/red]: {reason}")
    for note in report["notes"]:
        console.print(f"[yellow]note[/yellow]: {note}")
    lava = report["lava"]
    console.print(f"Lava agreement on {lava['samples']} samples: {'exact' if lava['agree'] else lava['mismatch']}")
    console.print(f"wrote {out / 'verify.json'}, {out / 'verify.md'} and plots")
    return report
