"""The seed study behind the README's attack table: reading reports, reusing them, and the verdict."""
import importlib.util
import json
import statistics
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location("attack_seed_study", ROOT / "scripts" / "attack_seed_study.py")
study = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(study)


def _report(path: Path, runs, eps, n, headline, minimum, worst) -> Path:
    """A minimal attack.json: per model the engine's headline and minimum and the suite's worst case."""
    models = [{"name": run.name, "sha256": study.file_sha256(run / study.CHECKPOINT_NAME),
               "adaptive": {"eps": [{"eps": e, "headline": headline[run.name], "minimum": minimum[run.name]}
                                    for e in eps]},
               "eps": [{"eps": e, "worst_case_accuracy": worst[run.name]} for e in eps]} for run in runs]
    path.write_text(json.dumps({"models": models, "settings": {"eps": eps, "n": n}}))
    return path


@pytest.fixture
def runs(tmp_path):
    out = []
    for name in ("vanilla", "tgo_at"):
        (tmp_path / name).mkdir()
        (tmp_path / name / study.CHECKPOINT_NAME).write_bytes(name.encode())
        out.append(tmp_path / name)
    return out


def test_figures_and_reuse(tmp_path, runs):
    report = _report(tmp_path / "attack.json", runs, [0.05, 0.1], 450, {"vanilla": 0.33, "tgo_at": 0.79},
                     {"vanilla": 0.33, "tgo_at": 0.77}, {"vanilla": 0.35, "tgo_at": 0.78})
    figures = study.figures(report)
    assert set(figures) == set(study.FIGURES)
    assert figures["engine"]["tgo_at"] == {0.05: 0.79, 0.1: 0.79}
    assert figures["engine_minimum"]["tgo_at"][0.1] == 0.77 and figures["suite"]["vanilla"][0.1] == 0.35
    assert study.finished_report(report, runs, "0.05,0.1", 450)
    assert not study.finished_report(report, runs, "0.05,0.2", 450)   # other eps
    assert not study.finished_report(report, runs, "0.05,0.1", 150)   # other images
    assert not study.finished_report(report, runs[::-1], "0.05,0.1", 450)
    (runs[1] / study.CHECKPOINT_NAME).write_bytes(b"retrained")       # another checkpoint: attack again
    assert not study.finished_report(report, runs, "0.05,0.1", 450)
    assert not study.finished_report(tmp_path / "absent.json", runs, "0.05,0.1", 450)


@pytest.mark.parametrize("tgo_at, holds", [([0.786, 0.788, 0.791], True), ([0.40, 0.31, 0.36], False)])
def test_summary_statistics_and_verdict(tgo_at, holds):
    vanilla = [0.333, 0.291, 0.336]
    summary = study.summarize({"vanilla": {0.1: vanilla}, "tgo_at": {0.1: tgo_at}}, 0.1, [0, 1, 2])
    cell = summary["models"]["tgo_at"][0.1]
    assert cell["mean"] == pytest.approx(statistics.mean(tgo_at)) and cell["std"] == pytest.approx(statistics.stdev(tgo_at))
    assert cell["range"] == pytest.approx(max(tgo_at) - min(tgo_at))
    verdict = summary["verdict"]
    assert verdict["tgo_at_minus_vanilla"] == pytest.approx(statistics.mean(tgo_at) - statistics.mean(vanilla))
    assert verdict["seed_spread"] == pytest.approx(max(max(tgo_at) - min(tgo_at), max(vanilla) - min(vanilla)))
    assert verdict["paired_differences"] == pytest.approx([a - v for a, v in zip(tgo_at, vanilla)])
    assert verdict["holds"] is holds
    table = study.markdown({"engine": summary})
    assert ("holds." if holds else "DOES NOT hold.") in table
    assert f"| tgo_at | {100 * statistics.mean(tgo_at):.1f} ± {100 * statistics.stdev(tgo_at):.1f}" in table
