"""verify.json, verify.md and the plots of `tgo verify`."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List

import matplotlib
import torch

from robust.flips import FlipCurve
from robust.engine import SCORING_RULE
from robust.report import save_figure
from robust.verify import Verification, accuracy_with_interval, rows
from tgo_files import write_json_atomic, write_text_atomic

matplotlib.use("Agg")


def _pct(entry: Dict[str, float]) -> str:
    return f"{100 * entry['accuracy']:.1f}% [{100 * entry['ci_low']:.1f}, {100 * entry['ci_high']:.1f}]"


def _per_sample(result: Verification) -> Dict[str, Any]:
    """Every image's scores, for audits: clean, and per eps the headline, the minimum and the chosen source."""
    engine = result.engine
    out: Dict[str, Any] = {"clean": {side: scores.tolist() for side, scores in engine.clean.items()},
                           "clean_fixed_pcg64": result.pcg64["clean"].tolist(), "eps": []}
    for index, eps in enumerate(e.eps for e in engine.eps["fixed"]):
        entry: Dict[str, Any] = {"eps": eps, "fixed_pcg64": result.pcg64[f"{eps:g}"].tolist()}
        for side, side_rows in engine.eps.items():
            row = side_rows[index]
            entry[side] = {"headline": row.headline.tolist(), "minimum": row.minimum.tolist(), "chosen": row.chosen}
        out["eps"].append(entry)
    return out


def summary(result: Verification) -> Dict[str, Any]:
    """The headline numbers with 95% intervals per eps, the strongest sources, convergence and the EOT probe."""
    robust = []
    for row, f_eps, fixed in zip(rows(result), result.engine.eps["float"], result.engine.eps["fixed"]):
        robust.append({**row, "float_minimum": float(f_eps.minimum.mean()), "fixed_minimum": float(fixed.minimum.mean()),
                       "strongest": {"float": f_eps.strongest, "fixed": fixed.strongest},
                       "per_source": {"float": f_eps.per_source, "fixed": fixed.per_source},
                       "before_doubling": {"float": f_eps.base_headline, "fixed": fixed.base_headline}})
    return {"clean": {"float": accuracy_with_interval(result.engine.clean["float"]),
                      "fixed": accuracy_with_interval(result.engine.clean["fixed"]),
                      "fixed_pcg64": accuracy_with_interval(result.pcg64["clean"])},
            "robust": robust}


def to_report(result: Verification, settings: Dict[str, Any], sources: Dict[str, Any],
              flips: FlipCurve | None) -> Dict[str, Any]:
    engine = result.engine
    return {"tool": "tgo verify", "format_version": 2, "verdict": result.verdict, "reasons": result.reasons,
            "flags": result.flags, "notes": result.notes, "sources": sources, "settings": settings, **summary(result),
            "eot": engine.eot, "seeds": asdict(engine.seeds), "doubled_budget": asdict(engine.budget.doubled(
                max(int(entry["k"]) for entry in engine.eot.values()))), "seconds": engine.seconds,
            "lava": result.lava, "layers": result.layers, "potentials": result.histograms,
            "flips": None if flips is None else flips.__dict__, "per_sample": _per_sample(result),
            "scoring_rule": SCORING_RULE}


def markdown(report: Dict[str, Any]) -> str:
    lines = [f"# tgo verify: **{report['verdict'].upper()}**", ""]
    lines += [f"- fail: {reason}" for reason in report["reasons"]]
    lines += [f"- red flag: {flag}" for flag in report["flags"]]
    if report["verdict"] == "pass":
        lines.append("- fixed-point robustness holds, under both noise generators, and Lava agrees")
    lines += [f"- note: {note}" for note in report["notes"]]
    clean, settings = report["clean"], report["settings"]
    lines += ["", f"Checkpoint `{report['sources']['checkpoint']}`, network `{report['sources']['net']}`, "
              f"{settings['n']} test samples, tolerance {100 * settings['tolerance']:.1f} points.", "",
              "| eps | float | fixed point (hw_sim) | gap [95% CI] | fixed, PCG64 noise | per-image minimum float / fixed |",
              "|---|---|---|---|---|---|",
              f"| clean | {_pct(clean['float'])} | {_pct(clean['fixed'])} | "
              f"{100 * (clean['float']['accuracy'] - clean['fixed']['accuracy']):+.1f} | {_pct(clean['fixed_pcg64'])} | |"]
    for row in report["robust"]:
        lines.append(f"| {row['eps']:g} | {_pct(row['float'])} | {_pct(row['fixed'])} | {100 * row['gap']:+.1f} "
                     f"[{100 * row['gap_ci'][0]:+.1f}, {100 * row['gap_ci'][1]:+.1f}] | {_pct(row['fixed_pcg64'])} | "
                     f"{100 * row['float_minimum']:.1f}% / {100 * row['fixed_minimum']:.1f}% |")
    lines += ["", "Headline: one example chosen per image on the select seeds, scored on the disjoint score seeds "
              "[95% Wilson interval]. Per-image minimum: the lowest score of any candidate on the score seeds "
              "(biased low).", "", "Strongest source per eps (accuracy of its per-image minimum):", ""]
    for row in report["robust"]:
        for side in ("float", "fixed"):
            best = row["strongest"][side]
            lines.append(f"- eps {row['eps']:g}, {side}: **{best}** ({100 * row['per_source'][side].get(best, 1.0):.1f}%); "
                         f"before the doubled-budget round {100 * row['before_doubling'][side]:.1f}%")
    lines += ["", "EOT draws per gradient: " + "; ".join(
        f"{side} k={entry['k']} ({entry['chosen_by']}" + (
            f", probe at eps {entry['eps']:g}: " + ", ".join(f"k={k}: {100 * a:.1f}%" for k, a in entry["probe"])
            if entry["probe"] else "") + ")"
        for side, entry in report["eot"].items())]
    lava = report["lava"]
    lines += ["", "Lava: not checked (--lava-n 0)." if not lava["checked"] else
              f"Lava (Loihi2SimCfg, fixed_pt) on {lava['samples']} samples (clean and chosen adversarial): "
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
