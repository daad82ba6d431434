"""verify.json, verify.md and the plots of `tgo verify`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import matplotlib
import torch

from robust.checks import run_checks
from robust.flips import FlipCurve
from robust.report import save_figure, to_json
from robust.verify import Verification, accuracy_with_interval
from tgo_files import write_json_atomic, write_text_atomic

matplotlib.use("Agg")


def _pct(entry: Dict[str, float]) -> str:
    return f"{100 * entry['accuracy']:.1f}% [{100 * entry['ci_low']:.1f}, {100 * entry['ci_high']:.1f}]"


def summary(result: Verification) -> Dict[str, Any]:
    """The headline numbers: clean and worst-case robust accuracy with 95% Wilson intervals, per eps."""
    rows = []
    for f_eps, fixed in zip(result.float_result.eps_results, result.fixed):
        rows.append({"eps": fixed.eps, "float": accuracy_with_interval(f_eps.worst_scores),
                     "fixed": accuracy_with_interval(fixed.worst_scores),
                     "gap": f_eps.accuracy - fixed.accuracy, "fixed_per_source": fixed.per_attack,
                     "fixed_worst_by": fixed.worst_by})
    return {"clean": {"float": accuracy_with_interval(result.float_result.clean_scores),
                      "fixed": accuracy_with_interval(result.fixed_clean)},
            "robust": rows}


def to_report(result: Verification, settings: Dict[str, Any], sources: Dict[str, Any],
              flips: FlipCurve | None) -> Dict[str, Any]:
    flags, status = run_checks(result.float_result)
    float_json = to_json([result.float_result], {result.float_result.name: flags},
                         {result.float_result.name: status}, settings, {})
    return {"tool": "tgo verify", "format_version": 1, "verdict": "pass" if result.passed else "fail",
            "reasons": result.reasons, "notes": result.notes, "sources": sources, "settings": settings, **summary(result),
            "lava": result.lava, "layers": result.layers, "potentials": result.histograms,
            "flips": None if flips is None else flips.__dict__,
            "float_model": float_json["models"][0], "scoring_rule": float_json["scoring_rule"]}


def markdown(report: Dict[str, Any]) -> str:
    lines = [f"# tgo verify: **{report['verdict'].upper()}**", ""]
    lines += [f"- {reason}" for reason in report["reasons"]] or ["- fixed-point robustness holds and Lava agrees"]
    lines += [f"- note: {note}" for note in report["notes"]]
    clean = report["clean"]
    lines += ["", f"Checkpoint `{report['sources']['checkpoint']}`, network `{report['sources']['net']}`, "
              f"{report['settings']['n']} test samples, tolerance {100 * report['settings']['tolerance']:.1f} points.",
              "", "| eps | float worst-case | fixed-point worst-case (hw_sim) | gap |", "|---|---|---|---|",
              f"| clean | {_pct(clean['float'])} | {_pct(clean['fixed'])} | "
              f"{100 * (clean['float']['accuracy'] - clean['fixed']['accuracy']):+.1f} |"]
    for row in report["robust"]:
        lines.append(f"| {row['eps']:g} | {_pct(row['float'])} | {_pct(row['fixed'])} | {100 * row['gap']:+.1f} |")
    lines += ["", "Accuracy [95% Wilson interval]. Fixed-point sources (accuracy on hw_sim):", ""]
    for row in report["robust"]:
        parts = ", ".join(f"{k} {100 * v:.1f}%" for k, v in row["fixed_per_source"].items())
        lines.append(f"- eps {row['eps']:g}: {parts}")
    lava = report["lava"]
    lines += ["", f"Lava (Loihi2SimCfg, fixed_pt) on {lava['samples']} samples (clean and worst-case adversarial): "
              + ("every spike of every layer agrees with hw_sim." if lava["agree"] else f"MISMATCH: {lava['mismatch']}"),
              "", "| layer | float spikes/neuron/step | fixed-point | change |", "|---|---|---|---|"]
    lines += [f"| {r['layer']} {r['name']} | {r['float_rate']:.4f} | {r['fixed_rate']:.4f} | {r['rate_change']:+.4f} |"
              for r in report["layers"]]
    pot = report["potentials"]
    lines += ["", f"Near-threshold fraction (|V - V_th| < {pot['delta']}): float {pot['float']['near_threshold_fraction']:.4f}, "
              f"fixed point {pot['fixed']['near_threshold_fraction']:.4f}.", "",
              "Plots: verify_robustness.png, verify_potentials.png" + (", verify_flips.png" if report["flips"] else ""), ""]
    return "\n".join(lines)


def plot_robustness(report: Dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    eps = [0.0] + [row["eps"] for row in report["robust"]]
    for side, style in (("float", "o-"), ("fixed", "s--")):
        entries = [report["clean"][side]] + [row[side] for row in report["robust"]]
        acc = [100 * e["accuracy"] for e in entries]
        err = [[100 * (e["accuracy"] - e["ci_low"]) for e in entries], [100 * (e["ci_high"] - e["accuracy"]) for e in entries]]
        ax.errorbar(eps, acc, yerr=err, fmt=style, capsize=3, label="float (Norse)" if side == "float" else "fixed point (hw_sim)")
    ax.set(xlabel="eps (L-inf, input units)", ylabel="worst-case robust accuracy (%)", ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_potentials(histograms: Dict[str, Dict[str, Any]], path: Path, title: str) -> None:
    """Histograms of V - V_th; `histograms` maps a label to a `potentials` entry's side (counts, range...)."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (hist, low, high, delta) in histograms.items():
        counts = torch.tensor(hist, dtype=torch.float64)
        edges = torch.linspace(low, high, len(hist) + 1)
        ax.stairs((counts / counts.sum()).tolist(), edges.tolist(), label=label)
    ax.axvspan(-delta, delta, color="grey", alpha=0.15, label=rf"$|V - V_{{th}}| < {delta}$")
    ax.set(xlabel=r"$V - V_{th}$ (membrane units)", ylabel="fraction of (step, neuron) entries", title=title)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_flips(flips: Dict[str, List[float]], path: Path) -> None:
    import matplotlib.pyplot as plt
    edges = flips["bin_edges"]
    centres = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(centres, flips["theory"], "-", label=r"Theorem 1: $\Phi(-|V - V_{th}| / \sigma)$")
    ax.plot(centres, flips["flip_rate"], "o", label="measured on hw_sim (integer PRNG noise)")
    ax.set(xlabel=r"$|V - V_{th}| / \sigma$", ylabel="P(flip)", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def write_verify_report(out_dir: Path, report: Dict[str, Any]) -> None:
    """verify.json, verify.md and the PNGs in `out_dir`, each written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "verify.json", report)
    write_text_atomic(out_dir / "verify.md", markdown(report))
    plot_robustness(report, out_dir / "verify_robustness.png")
    pot = report["potentials"]
    low, high = pot["range"]
    plot_potentials({side: (pot[side]["counts"], low, high, pot["delta"]) for side in ("float", "fixed")},
                    out_dir / "verify_potentials.png", "distance to threshold, float vs fixed point")
    if report["flips"]:
        plot_flips(report["flips"], out_dir / "verify_flips.png")
