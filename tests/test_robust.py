"""The evaluation around the attacks: per-sample worst case, stochastic scoring, red flags (a gradient-masking
model must trigger them), the report files and `tgo attack`'s error paths."""
import json
import subprocess
import sys

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from robust.attacks import AttackSettings, parse_attacks
from robust.checks import higher, run_checks
from robust.evaluate import AttackRun, EpsResult, ModelResult, evaluate_model
from robust.surrogates import SurrogateSpec, parse_surrogates
from tgo_cli import app
from tgo_errors import UsageError
from train.checkpoint import load_checkpoint
from train.config import DataConfig
from train.data import load_dataset

OWN = [SurrogateSpec(None, None)]
runner = CliRunner()


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig())


@pytest.fixture(scope="module")
def linear_digits(digits):
    """A logistic-regression classifier of the digits (about 95% test accuracy), trained in a second."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        nn.functional.cross_entropy(model(digits.train_x), digits.train_y).backward()
        opt.step()
    return model.eval()


class QuantizedInput(nn.Module):
    """Gradient masking by construction: the input is rounded to quarters, whose gradient is exactly zero."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(torch.round(x * 4) / 4)


def _evaluate(model, digits, names, eps=(0.2,), n=150, **kwargs):
    return evaluate_model(model, digits.test_x[:n], digits.test_y[:n], parse_attacks(names), list(eps), OWN,
                          AttackSettings(square_queries=400), **kwargs)


def test_gradient_masking_model_raises_the_red_flags(digits, linear_digits):
    masked = _evaluate(QuantizedInput(linear_digits), digits, "fgsm,pgd10,pgd20,square")
    flags, status = run_checks(masked)
    fired = {f.check for f in flags}
    assert masked.zero_gradients == {"own": 1.0}
    assert {"zero_gradients", "square_beats_whitebox", "square_finds_more"} <= fired
    assert status["zero_gradients"] == status["square_beats_whitebox"] == "FIRED"
    square = next(f for f in flags if f.check == "square_beats_whitebox")
    assert square.eps == 0.2 and square.run == "square@-"
    run = {r.attack: r for r in masked.eps_results[0].runs}
    assert run["fgsm"].accuracy == masked.clean_accuracy          # a zero gradient does not move FGSM at all
    assert run["square"].accuracy < run["pgd20"].accuracy - 0.2


def test_healthy_model_passes_the_same_checks(digits, linear_digits):
    healthy = _evaluate(linear_digits, digits, "fgsm,pgd10,pgd20,square", eps=(0.05, 0.1))
    flags, status = run_checks(healthy)
    assert flags == []
    assert status["zero_gradients"] == status["square_beats_whitebox"] == status["more_steps_higher"] == "passed"
    assert status["eot_k_unstable"].startswith("not applicable")
    worst = [r.accuracy for r in healthy.eps_results]
    assert worst[1] < worst[0] < healthy.clean_accuracy


def _fake(runs_by_eps, clean, stochastic=False):
    results = []
    for eps, runs in runs_by_eps.items():
        scores = torch.stack([clean] + [r.scores for r in runs]).min(0).values
        results.append(EpsResult(eps, runs, scores, ["clean"] * len(clean)))
    return ModelResult("m", stochastic, 1, clean, {"own": 0.0}, results, torch.arange(len(clean)) % 10)


def _scores(accuracy, n=400, offset=0):
    """n per-sample scores with the first round(accuracy * n) samples (rotated by offset) correct."""
    s = torch.zeros(n)
    s[:round(accuracy * n)] = 1
    return s.roll(offset)


def _run(attack, scores, eps=0.1, k=1, probe=False, surrogate="own"):
    return AttackRun(attack, surrogate, eps, k, scores, 0.0, probe)


def test_paired_test_ignores_noise_and_sees_real_gains():
    base = _scores(0.5)
    assert not higher(base, _scores(0.5, offset=3))        # same accuracy, different samples
    assert not higher(base, _scores(0.505))                 # +2 samples of 400
    assert higher(base, _scores(0.6))


def test_more_steps_and_larger_eps_must_not_help():
    clean = _scores(0.95)
    result = _fake({0.1: [_run("pgd10", _scores(0.4)), _run("pgd40", _scores(0.6))],
                    0.2: [_run("pgd10", _scores(0.5), 0.2), _run("pgd40", _scores(0.7), 0.2)]}, clean)
    flags, status = run_checks(result)
    steps = [f for f in flags if f.check == "more_steps_higher"]
    assert {(f.eps, f.run) for f in steps} == {(0.1, "pgd40@own"), (0.2, "pgd40@own")}
    assert {f.run for f in flags if f.check == "eps_raises_accuracy"} >= {"pgd10@own", "pgd40@own", None}
    fine = _fake({0.1: [_run("pgd10", _scores(0.5)), _run("pgd40", _scores(0.4))],
                  0.2: [_run("pgd10", _scores(0.2), 0.2), _run("pgd40", _scores(0.2), 0.2)]}, clean)
    assert run_checks(fine)[0] == []


def test_eot_probe_above_clean_large_eps_and_missing_eot():
    clean = _scores(0.9)
    result = _fake({0.1: [_run("eot-pgd20", _scores(0.6), k=8), _run("eot-pgd20", _scores(0.4), k=16, probe=True),
                          _run("fgsm", _scores(0.97))],
                    0.5: [_run("eot-pgd20", _scores(0.8), 0.5, k=8)]}, clean, stochastic=True)
    fired = {f.check: f for f in run_checks(result)[0]}
    assert fired["eot_k_unstable"].run == "eot-pgd20@own"
    assert fired["above_clean"].run == "fgsm@own"
    assert fired["large_eps_not_broken"].eps == 0.5
    assert "stochastic_without_eot" not in fired
    no_eot = _fake({0.1: [_run("pgd20", _scores(0.5))]}, clean, stochastic=True)
    assert [f.check for f in run_checks(no_eot)[0]] == ["stochastic_without_eot"]


def test_worst_case_and_stochastic_scoring_on_spiking_networks(trained_runs, digits):
    x, y = digits.test_x[:60], digits.test_y[:60]
    surrogates = parse_surrogates("own,ste", default_alpha=2.0)
    settings = AttackSettings(eot_k=4)
    out = {}
    for method in ("vanilla", "tgo"):
        model = load_checkpoint(trained_runs[method][0]).build_model()
        out[method] = evaluate_model(model, x, y, parse_attacks("fgsm,pgd5,eot-pgd5"), [0.1], surrogates,
                                     settings, seed=1, repeats=5)
        assert model.training      # handed back in the mode it came in (a fresh model is in train mode)
    vanilla, tgo = out["vanilla"], out["tgo"]
    assert (vanilla.stochastic, vanilla.repeats, tgo.stochastic, tgo.repeats) == (False, 1, True, 5)
    assert set(vanilla.clean_scores.tolist()) <= {0.0, 1.0}
    assert set((tgo.clean_scores * 5).tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}
    for result in (vanilla, tgo):
        res = result.eps_results[0]
        keys = [r.key for r in res.runs]
        assert keys[:6] == ["fgsm@own", "fgsm@ste:2", "pgd5@own", "pgd5@ste:2", "eot-pgd5@own", "eot-pgd5@ste:2"]
        for run in res.runs:
            assert bool((res.worst_scores <= run.scores).all())
        assert bool((res.worst_scores <= result.clean_scores).all())
        assert res.accuracy == pytest.approx(float(res.worst_scores.mean()))
        assert res.accuracy < min(r.accuracy for r in res.runs) + 1e-9 < result.clean_accuracy
        assert set(res.worst_by) <= {"clean", *keys}
    assert [r.eot_k for r in vanilla.eps_results[0].runs] == [1] * 6
    tgo_runs = tgo.eps_results[0].runs
    assert [r.eot_k for r in tgo_runs] == [1, 1, 1, 1, 4, 4, 8] and tgo_runs[-1].probe
    assert tgo.eps_results[0].strict_accuracy <= tgo.eps_results[0].accuracy


def test_plain_callable_gets_square_only(digits, linear_digits):
    def black_box(images):
        with torch.no_grad():
            return linear_digits(images)
    result = _evaluate(black_box, digits, "square", eps=(0.1,), n=50)
    assert result.zero_gradients == {} and result.eps_results[0].accuracy < result.clean_accuracy
    with pytest.raises(UsageError, match="need gradients"):
        _evaluate(black_box, digits, "pgd10,square", n=50)


def test_surrogate_names():
    specs = parse_surrogates("own, superspike:8,ste,own", default_alpha=3.0)
    assert [s.label for s in specs] == ["own", "superspike:8", "ste:3"]
    for bad in ("nope", "superspike:-1", "ste:x", "", "superspike:inf", "arctan:nan"):
        with pytest.raises(UsageError):
            parse_surrogates(bad, 2.0)


def test_tgo_attack_end_to_end(trained_runs, tmp_path):
    runs = [str(trained_runs[m][0]) for m in ("vanilla", "tgo")]
    out = tmp_path / "report"
    result = runner.invoke(app, ["attack", *runs, "--n", "40", "--attacks", "fgsm,pgd5,eot-pgd5,square",
                                 "--square-queries", "50", "--eps", "0.1,0.05", "--eot-k", "2", "--repeats", "4",
                                 "--surrogates", "own", "--seed", "3", "--out", str(out), "--quiet",
                                 "--sweep", "own", "--steps", "2", "--search-queries", "8"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "attack.json").read_text())
    assert report["settings"]["seed"] == 3 and report["settings"]["eot_k"] == 2 and report["settings"]["n"] == 40
    assert report["settings"]["eps"] == [0.05, 0.1]
    names = [m["name"] for m in report["models"]]
    assert len(names) == 2 and report["models"][1]["stochastic"] and not report["models"][0]["stochastic"]
    for model in report["models"]:
        assert model["sha256"] and model["checks"]["zero_gradients"] == "passed"
        for entry in model["eps"]:
            assert len(entry["per_sample"]["worst_score"]) == 40 == len(entry["per_sample"]["worst_by"])
            assert entry["worst_case_accuracy"] == pytest.approx(sum(entry["per_sample"]["worst_score"]) / 40,
                                                                 abs=1e-3)
            assert entry["worst_case_accuracy"] <= min(r["accuracy"] for r in entry["runs"]) + 1e-9
        adaptive = model["adaptive"]
        assert [row["eps"] for row in adaptive["eps"]] == [0.05, 0.1] and adaptive["budget"]["steps"] == 2
        assert all(row["minimum"] <= row["headline"] <= adaptive["clean"] + 0.05 for row in adaptive["eps"])
    markdown = (out / "attack.md").read_text()
    headline, suite = markdown.split("## Classic suite")
    for model in report["models"]:
        name = model["name"]
        assert f"| {name} | 0.05 |" in suite and f"| {name} | 0.1 |" in suite
        for row in model["adaptive"]["eps"]:
            assert f"- {name} eps {row['eps']:g}: **{100 * row['headline']:.1f}%**" in headline
    assert (out / "attack.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "worst case" in result.output


@pytest.mark.parametrize("args, message", [
    (["--eps", "0.1,1.5"], "outside [0, 1]"),
    (["--eps", "abc"], "not a number"),
    (["--attacks", "fgsm,cw"], "unknown attack 'cw'"),
    (["--n", "100000"], "larger than the test split"),
    (["--surrogates", "bogus"], "unknown surrogate"),
    (["--eot-k", "0"], "--eot-k must be in 1..1,000,000, got 0"),
    (["--eot-k", "99999999999999999999"], "--eot-k must be in 1..1,000,000"),
    (["--repeats", "1000001"], "--repeats must be in 1..1,000,000"),
    (["--input-levels", "99999999999999999999"], "--input-levels must be in 1..65,535"),
    (["--attacks", "fgsm,pgd99999999999999999999"], "PGD takes 1..1,000,000 steps"),
    (["--dataset", "mnist5k"], "expects inputs (1, 8, 8)"),
])
def test_tgo_attack_usage_errors(trained_runs, tmp_path, args, message):
    result = runner.invoke(app, ["attack", str(trained_runs["vanilla"][0]), "--out", str(tmp_path), "--quiet", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_tgo_attack_missing_checkpoint(tmp_path):
    result = runner.invoke(app, ["attack", str(tmp_path / "nothing"), "--quiet"])
    assert result.exit_code == 2 and "no checkpoint" in result.output


def test_robust_never_imports_lava():
    """The suite must also attack models where Lava is not installed (GPU machines, the fixed-point twin)."""
    code = ("import sys, robust.command, robust.checks, robust.report; "
            "sys.exit(any(m == 'lava' or m.startswith('lava.') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_scorer_and_kept_examples(digits, linear_digits):
    """Attack one model, score its examples on another (how `tgo verify` scores twin attacks on hw_sim)."""
    masked = QuantizedInput(linear_digits)
    result = _evaluate(linear_digits, digits, "pgd10", eps=(0.1,), n=80, scorer=masked, keep_examples=True)
    run = result.eps_results[0].runs[0]
    x, y = digits.test_x[:80], digits.test_y[:80]
    with torch.no_grad():
        assert torch.equal(result.clean_scores, (masked(x).argmax(1) == y).double())
        assert torch.equal(run.scores, (masked(run.examples).argmax(1) == y).double())
    assert run.examples.shape == x.shape and float((run.examples - x).abs().max()) <= 0.1 + 1e-6
