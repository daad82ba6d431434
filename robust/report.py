"""The evaluation's outputs: attack.json (everything), attack.md and a console table, attack.png."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from rich.table import Table

from robust.checks import CHECKS, Flag
from robust.evaluate import SCORING_RULE, AttackRun, EpsResult, ModelResult
from tgo_files import atomic_path, write_json_atomic, write_text_atomic

HEADLINE = ("worst-case robust accuracy: per sample, the minimum over the clean input and every (attack, surrogate) "
            "run of the fraction of noisy forwards that classify it correctly; averaged over samples")
STRICT = "strict: a sample counts only if all scoring forwards are correct under every attack"
FLAG_MARK = "!"


def _all_runs(results: Sequence[ModelResult]) -> List[AttackRun]:
    return [run for result in results for res in result.eps_results for run in res.runs]


def _attack_columns(results: Sequence[ModelResult]) -> List[str]:
    """The attack names in the order they ran (dict keys keep insertion order)."""
    return list(dict.fromkeys(run.attack for run in _all_runs(results) if not run.probe))


def _cell(res: EpsResult, attack: str, flags: Sequence[Flag]) -> str:
    """An attack's accuracy, worst over its surrogates, with the flag mark when one of its runs is flagged."""
    runs = [r for r in res.runs if r.attack == attack and not r.probe]
    if not runs:
        return "-"
    keys = {r.key for r in runs}
    mark = FLAG_MARK if any(f.eps == res.eps and f.run in keys for f in flags) else ""
    return f"{100 * min(r.accuracy for r in runs):.1f}{mark}"


def table_rows(results: Sequence[ModelResult], flags: Dict[str, List[Flag]]
               ) -> Tuple[List[str], List[List[str]]]:
    """Header and rows: model, eps, clean, each attack (worst over surrogates), worst case, strict, flags."""
    attacks = _attack_columns(results)
    header = ["model", "eps", "clean", *attacks, "worst case", "strict", "flags"]
    rows = []
    for result in results:
        model_flags = flags[result.name]
        for res in result.eps_results:
            here = [f for f in model_flags if f.eps in (None, res.eps)]
            names = sorted({f.check for f in here})
            mark = FLAG_MARK if here else ""
            rows.append([result.name, f"{res.eps:g}", f"{100 * result.clean_accuracy:.1f}",
                         *(_cell(res, a, here) for a in attacks),
                         f"{100 * res.accuracy:.1f}{mark}", f"{100 * res.strict_accuracy:.1f}",
                         ", ".join(names) or "none"])
    return header, rows


def surrogate_rows(results: Sequence[ModelResult]) -> Tuple[List[str], List[List[str]]]:
    """Per surrogate, the per-sample worst case over the gradient attacks run through it."""
    labels = list(dict.fromkeys(run.surrogate for run in _all_runs(results) if run.surrogate != "-"))
    rows = []
    for result in results:
        for res in result.eps_results:
            row = [result.name, f"{res.eps:g}"]
            for label in labels:
                runs = [r.scores for r in res.runs if r.surrogate == label]
                row.append(f"{100 * float(torch.stack(runs).min(0).values.mean()):.1f}" if runs else "-")
            row.append(", ".join(f"{label} {100 * frac:.1f}%" for label, frac in result.zero_gradients.items()) or "-")
            rows.append(row)
    return ["model", "eps", *labels, "zero-gradient samples"], rows


def markdown(results: Sequence[ModelResult], flags: Dict[str, List[Flag]], status: Dict[str, Dict[str, str]],
             settings: Dict[str, Any], models_info: Optional[Dict[str, Dict[str, Any]]] = None) -> str:
    """attack.md: the adaptive engine's headline, the classic suite's table, the surrogate table, red flags,
    check status and the settings."""
    def table(header, rows):
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    engine = {name: info["adaptive"] for name, info in (models_info or {}).items() if "adaptive" in info}
    parts = ["# Adversarial evaluation (`tgo attack`)", "",
             f"Accuracy in % on {settings['n']} test images of {settings['dataset']}, L-inf eps in input units [0, 1].",
             "", "## Headline: the adaptive engine (the engine and rule of `tgo verify`, float model)", "",
             *(f"- {name} eps {row['eps']:g}: **{100 * row['headline']:.1f}%** (per-image minimum "
               f"{100 * row['minimum']:.1f}%, strongest source {row['strongest']}, before the doubled budget "
               f"{100 * row['before_doubling']:.1f}%)" for name, adaptive in engine.items() for row in adaptive["eps"]),
             *(f"- red flag {name}: {flag}" for name, adaptive in engine.items() for flag in adaptive["flags"]),
             *([] if engine else ["- not run"]),
             "", "## Classic suite", "",
             f"Attack columns: worst over surrogates. **worst case**: {HEADLINE} (biased low: a minimum over noisy "
             f"scores; compare it with the engine's per-image minimum). {STRICT}. "
             f"`{FLAG_MARK}` marks a number with a red flag.", "", table(*table_rows(results, flags)), "",
             "## Per surrogate (worst case over the gradient attacks through it)", "", table(*surrogate_rows(results)),
             "", "## Red flags", ""]
    fired = [(name, f) for name, fl in flags.items() for f in fl]
    parts += [f"- **{name}** eps={f.eps if f.eps is not None else 'all'} `{f.check}`: {f.message}" for name, f in fired]
    parts += ["- none" if not fired else "", "", "## Checks", "",
              table(["check", "meaning", *status], [[c, CHECKS[c], *(status[m][c] for m in status)] for c in CHECKS]),
              "", "## Scoring rule", "", SCORING_RULE, "", "## Settings", "",
              *(f"- {key}: {value}" for key, value in settings.items()), ""]
    return "\n".join(parts)


def rich_table(results: Sequence[ModelResult], flags: Dict[str, List[Flag]]) -> Table:
    header, rows = table_rows(results, flags)
    out = Table(title="classic suite: robust accuracy (%), per-sample worst case (the engine's headline follows)")
    for name in header:
        out.add_column(name, justify="left" if name in ("model", "flags") else "right",
                       style="bold" if name == "worst case" else None)
    for row in rows:
        out.add_row(*row, style="red" if row[-1] != "none" else None)
    return out


def save_figure(fig, path: Path) -> None:
    """Write a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def plot(report: Dict[str, Any], path: Path) -> None:
    """attack.json's content -> robust accuracy (%) vs eps per model (eps 0 = clean): the adaptive engine's
    headline solid (where it ran), the classic suite's worst case dotted."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for model in report["models"]:
        color, adaptive = None, model.get("adaptive")
        if adaptive:
            line, = ax.plot([0.0] + [row["eps"] for row in adaptive["eps"]],
                            [100 * adaptive["clean"]] + [100 * row["headline"] for row in adaptive["eps"]],
                            marker="o", label=f"{model['name']}: adaptive engine")
            color = line.get_color()
        ax.plot([0.0] + [row["eps"] for row in model["eps"]],
                [100 * model["clean_accuracy"]] + [100 * row["worst_case_accuracy"] for row in model["eps"]],
                ls=":" if adaptive else "-", marker=".", color=color, label=f"{model['name']}: classic suite, worst case")
    ax.set_xlabel("eps (L-inf, input units)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def to_json(results: Sequence[ModelResult], flags: Dict[str, List[Flag]], status: Dict[str, Dict[str, str]],
            settings: Dict[str, Any], models_info: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """attack.json: settings, scoring rule, per model: clean, per eps every run, worst case per sample, flags."""
    def eps_entry(res: EpsResult) -> Dict[str, Any]:
        return {
            "eps": res.eps, "worst_case_accuracy": res.accuracy, "worst_case_strict_accuracy": res.strict_accuracy,
            "runs": [{"attack": r.attack, "surrogate": r.surrogate, "eot_k": r.eot_k, "probe": r.probe,
                      "accuracy": r.accuracy, "strict_accuracy": r.strict_accuracy, "seconds": round(r.seconds, 3)}
                     for r in res.runs],
            "per_sample": {"worst_score": [round(float(v), 4) for v in res.worst_scores],
                           "worst_by": res.worst_by},
        }
    return {
        "tool": "tgo attack", "format_version": 1, "settings": settings,
        "headline": HEADLINE, "strict": STRICT, "scoring_rule": SCORING_RULE,
        "models": [{"name": r.name, **models_info.get(r.name, {}), "stochastic": r.stochastic,
                    "score_repeats": r.repeats, "clean_accuracy": r.clean_accuracy,
                    "clean_strict_accuracy": r.strict_clean_accuracy,
                    "zero_gradient_fraction": r.zero_gradients,
                    "per_sample_clean_score": [round(float(v), 4) for v in r.clean_scores],
                    "eps": [eps_entry(res) for res in r.eps_results],
                    "checks": status[r.name], "flags": [asdict(f) for f in flags[r.name]]} for r in results],
    }


def write_report(out_dir: Path, results: Sequence[ModelResult], flags: Dict[str, List[Flag]],
                 status: Dict[str, Dict[str, str]], settings: Dict[str, Any],
                 models_info: Dict[str, Dict[str, Any]]) -> Dict[str, Path]:
    """Write attack.json, attack.md and attack.png into `out_dir` (each atomically). Returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "attack.json", "md": out_dir / "attack.md", "png": out_dir / "attack.png"}
    report = to_json(results, flags, status, settings, models_info)
    write_json_atomic(paths["json"], report)
    write_text_atomic(paths["md"], markdown(results, flags, status, settings, models_info))
    plot(report, paths["png"])
    return paths
