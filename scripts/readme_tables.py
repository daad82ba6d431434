"""Regenerate every results table of the README by running the commands that produce them (`make tables`).

Nothing is hard-coded: each table is read from the artifacts the commands write. Torch threads are pinned for
every command (OMP_NUM_THREADS, recorded in each artifact's provenance), because CPU numbers depend on them.
Writes OUT/tables.md (one section per README table) beside the runs; copy the sections into the README.
Usage: python scripts/readme_tables.py [--out runs/readme-tables] [--threads 2] [--only training,export,...]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

ROOT = Path(__file__).resolve().parents[1]
TRAINED = {"vanilla": ["--method", "vanilla"], "tgo": ["--method", "tgo"],
           "tgo-at": ["--method", "tgo", "--adv-train", "pgd", "--adv-eps", "0.1"]}


def run(args: List[str], threads: int) -> float:
    """Run a command from the repository root with pinned threads; its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run(args, cwd=ROOT, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return time.perf_counter() - started


def tgo(*args: str) -> List[str]:
    return [sys.executable, "-m", "tgo_cli", *args]


def training(out: Path, threads: int) -> str:
    lines = ["| model | clean test accuracy | threshold-neighbouring fraction (\\|V - V_th\\| < 0.3) | wall time |",
             "|---|---|---|---|"]
    for name, flags in TRAINED.items():
        run_dir = out / name
        seconds = 0.0 if (run_dir / "checkpoint.pt").is_file() else \
            run(tgo("train", "-o", str(run_dir), "--quiet", "--threads", str(threads), *flags), threads)
        last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
        wall = f"{seconds:.1f} s" if seconds else "(reused)"
        lines.append(f"| {name} | {100 * last['test_accuracy']:.2f}% | {last['near_threshold_fraction']:.4f} | {wall} |")
    return "\n".join(lines)


def attacks(out: Path, threads: int) -> str:
    study = out / "attack-seeds"
    run([sys.executable, "scripts/attack_seed_study.py", "--out", str(study), "--seeds", "0,1,2",
         "--eps", "0.05,0.1,0.2"], threads)
    return (study / "summary.md").read_text().strip()


def export(out: Path, threads: int) -> str:
    if not (out / "tgo" / "checkpoint.pt").is_file():
        training(out, threads)
    target = out / "tgo-export"
    run(tgo("export", str(out / "tgo"), "-o", str(target), "--format", "net", "--quiet"), threads)
    report = json.loads((target / "export.json").read_text())
    lines = ["| layer | S | vThMant | iDecay / vDecay | noise sigma (state units) | weights | clipped | weight error "
             "| threshold error |", "|---|---|---|---|---|---|---|---|---|"]
    for q in report["quantization"]["layers"]:
        lines.append(f"| {q['name']} | {q['S']:.2f} | {q['vThMant']} | {q['iDecay']} / {q['vDecay']} | "
                     f"{q['noise_sigma']} | [{q['weight_min']}, {q['weight_max']}] | {100 * q['clipped_fraction']:.0f}% | "
                     f"{100 * q['weight_rel_error']:.2f}% | {q['threshold_rel_error']} |")
    evaluation = json.dumps(report.get("evaluation", {}), sort_keys=True)
    return "\n".join(lines) + f"\n\nfloat vs fixed point (export.json 'evaluation'): {evaluation}"


def hw_sim(out: Path, threads: int) -> str:
    sections = []
    for count in sorted({1, threads}):
        text = subprocess.run([sys.executable, "bench/bench_hw_sim.py", "--threads", str(count)], cwd=ROOT,
                              check=True, capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": str(count)}).stdout
        sections.append(f"{count} torch thread(s):\n```\n{text.strip()}\n```")
    return "\n\n".join(sections)


def demo(out: Path, threads: int) -> str:
    run(tgo("demo", "-o", str(out / "demo"), "--quiet"), threads)
    return (out / "demo" / "demo.md").read_text().strip()


TABLES: Dict[str, Callable[[Path, int], str]] = {
    "training": training, "attacks": attacks, "export": export, "hw_sim": hw_sim, "demo": demo}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/readme-tables"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default=",".join(TABLES), help=f"comma-separated subset of {','.join(TABLES)}")
    args = parser.parse_args()
    chosen = [name for name in args.only.split(",") if name]
    unknown = [name for name in chosen if name not in TABLES]
    if unknown:
        parser.error(f"unknown tables {unknown}; choose from {','.join(TABLES)}")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    sections = [f"## {name}\n\n{TABLES[name](args.out, args.threads)}\n" for name in chosen]
    header = f"# README tables ({args.threads} torch threads; regenerate with `make tables`)\n\n"
    (args.out / "tables.md").write_text(header + "\n".join(sections))
    print(f"wrote {args.out / 'tables.md'}")


if __name__ == "__main__":
    main()
