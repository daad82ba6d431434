"""The reliability promises: one error boundary, refused bad checkpoints, trustworthy runs (resume, lock,
divergence, permissions, strict JSON) and a demo that never reuses stale work."""
import errno
import fcntl
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import digits_config, train_quietly
from tgo_cli import app
from tgo_demo import Stages, fingerprint
from tgo_errors import UsageError
from tgo_files import atomic_dir, write_json_atomic, write_text_atomic
from train.checkpoint import load_checkpoint
from train.trainer import LOCK_NAME, resolve_device

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def one_error_line(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


# --- the boundary -------------------------------------------------------------------------------------------

def test_unexpected_exception_is_one_line_exit_3_with_the_traceback_in_a_log(tmp_path, monkeypatch):
    monkeypatch.setenv("TGO_CRASH_DIR", str(tmp_path / "crashes"))

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr("tgo_simulate.simulate_command", broken)
    line = one_error_line(runner.invoke(app, ["simulate", "model.net"]), code=3)
    logs = list((tmp_path / "crashes").glob("crash-*.log"))
    assert line.startswith("internal error: ZeroDivisionError: a bug") and str(logs[0]) in line
    assert "Traceback" in logs[0].read_text() and "broken" in logs[0].read_text()


def test_warnings_never_precede_the_error_line_and_follow_a_success(monkeypatch):
    def warns_then_fails(*_args, **_kwargs):
        import warnings
        warnings.warn("noisy library", UserWarning)
        raise UsageError("the real problem")
    monkeypatch.setattr("tgo_simulate.simulate_command", warns_then_fails)
    assert one_error_line(runner.invoke(app, ["simulate", "model.net"])) == "error: the real problem"


@pytest.mark.parametrize("code, word", [(errno.ENOTDIR, "Not a directory"), (errno.ENOSPC, "No space"),
                                        (errno.EACCES, "Permission denied"), (errno.ENAMETOOLONG, "too long")])
def test_path_and_disk_errors_are_user_errors(monkeypatch, code, word):
    def fails(*_args, **_kwargs):
        raise OSError(code, os.strerror(code), "out/sub")
    monkeypatch.setattr("tgo_simulate.simulate_command", fails)
    line = one_error_line(runner.invoke(app, ["simulate", "model.net"]))
    assert word in line and "'out/sub'" in line


def test_full_standard_output_is_one_error_line():
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "tgo_cli", "train", "--help"], cwd=ROOT, stdout=full,
                              stderr=subprocess.PIPE, text=True)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: cannot write"), done.stderr
    assert lines[0].endswith("No space left on device"), done.stderr


def test_click_errors_are_one_line():
    assert "Invalid value for '--epochs'" in one_error_line(runner.invoke(app, ["train", "-o", "x", "--epochs", "y"]))
    assert "No such command" in one_error_line(runner.invoke(app, ["trian"]))


def test_attack_output_inside_a_file_is_refused(tiny_run, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep")
    result = runner.invoke(app, ["attack", str(tiny_run), "--attacks", "fgsm", "--eps", "0.1", "--n", "4",
                                 "--surrogates", "own", "--repeats", "1", "--quiet", "-o", str(blocker / "sub")])
    assert "file" in one_error_line(result) and blocker.read_text() == "keep"


# --- checkpoints with the tgo marker but bad contents, in every command that reads one ----------------------

def _mutated(run: Path, target: Path, change) -> Path:
    raw = torch.load(run / "checkpoint.pt", weights_only=True)
    change(raw)
    target.mkdir(parents=True, exist_ok=True)
    torch.save(raw, target / "checkpoint.pt")
    return target


def _config(section: str, key: str, value):
    def change(raw):
        cfg = json.loads(raw["config"])
        cfg[section][key] = value
        raw["config"] = json.dumps(cfg)
    return change


BAD_CHECKPOINTS = {
    "unknown surrogate": (_config("neuron", "surrogate", "nope"), "unknown surrogate"),
    "T = 0": (_config("model", "timesteps", 0), "timesteps must be >= 1"),
    "v_th = 0": (_config("neuron", "v_th", 0.0), "v_th must be > 0"),
    "string number": (_config("optim", "lr", "0.01"), "optim.lr must be a finite number"),
    "negative sigma": (_config("tgo", "sigma", -0.1), "sigma must be >= 0"),
    "model None": (lambda raw: raw.update(model=None), "'model' must be a state dict"),
    "optimizer garbage": (lambda raw: raw.update(optimizer="x"), "'optimizer' must be a state dict"),
    "negative epoch": (lambda raw: raw.update(epoch=-5), "epoch must be an integer in [0, 1]"),
    "NaN weights": (lambda raw: next(iter(raw["model"].values())).fill_(math.nan), "not finite"),
    "memory bomb": (_config("model", "timesteps", 10 ** 12), "GiB"),
}
COMMANDS = {
    "export": lambda ckpt, tmp: ["export", str(ckpt), "-o", str(tmp / "exp"), "--quiet"],
    "attack": lambda ckpt, tmp: ["attack", str(ckpt), "-o", str(tmp / "atk"), "--quiet"],
    "verify": lambda ckpt, tmp: ["verify", str(ckpt), str(tmp / "model.net"), "-o", str(tmp / "ver"), "--quiet"],
    "train --resume": lambda ckpt, tmp: ["train", "-o", str(ckpt), "--resume", "--quiet"],
}


@pytest.mark.parametrize("case", BAD_CHECKPOINTS)
@pytest.mark.parametrize("command", COMMANDS)
def test_bad_checkpoint_contents_are_one_line_exit_2(tiny_run, tmp_path, case, command):
    change, message = BAD_CHECKPOINTS[case]
    ckpt = _mutated(tiny_run, tmp_path / "bad", change)
    before = (ckpt / "checkpoint.pt").read_bytes()
    line = one_error_line(runner.invoke(app, COMMANDS[command](ckpt, tmp_path)))
    assert line.startswith("error: ") and message in line
    assert (ckpt / "checkpoint.pt").read_bytes() == before
    assert not any((tmp_path / name).exists() for name in ("exp", "atk", "ver"))


def test_resume_guards_the_optimizer_state(tiny_run, tmp_path):
    def change(raw):
        first = next(iter(raw["optimizer"]["state"].values()))
        first["exp_avg"] = torch.zeros(3)
    ckpt = _mutated(tiny_run, tmp_path / "bad", change)
    line = one_error_line(runner.invoke(app, ["train", "-o", str(ckpt), "--resume", "--epochs", "2", "--quiet"]))
    assert "optimizer state 'exp_avg' does not fit" in line


# --- option values ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--lr", "inf"], "optim.lr must be a finite number"),
    (["--lambda-max", "inf"], "tgo.lambda_max must be a finite number"),
    (["--delta", "nan"], "tgo.delta must be a finite number"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--seed", str(2 ** 64)], "seed must be in [0, 2^63 - 1]"),
    (["--hidden", "16000000"], "GiB"),
    (["-T", "100000000"], "GiB"),
    (["--surrogate", "nope"], "unknown surrogate"),
    (["--dataset", "nope"], "unknown dataset"),
])
def test_bad_train_options_leave_no_folder(tmp_path, args, message):
    out = tmp_path / "deep" / "run"
    line = one_error_line(runner.invoke(app, ["train", "-o", str(out), "--epochs", "1", "--quiet", *args]))
    assert message in line
    assert not (tmp_path / "deep").exists()


def test_resolve_device_refuses_unknown_names():
    assert resolve_device("cpu").type == "cpu"
    for name in ("tpu", "cpu:1", "cuda:x", ""):
        with pytest.raises(UsageError, match="unknown device"):
            resolve_device(name)


# --- runs you can trust -------------------------------------------------------------------------------------

def _tiny(**optim):
    return digits_config("vanilla", epochs=optim.pop("epochs", 1), model={"hidden": [16], "timesteps": 2},
                         optim=optim)


def test_resume_refuses_other_flags_but_allows_longer_epochs_and_trims_metrics(tiny_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("checkpoint.pt", "metrics.jsonl"):
        (run / name).write_bytes((tiny_run / name).read_bytes())
    line = one_error_line(runner.invoke(app, ["train", "-o", str(run), "--resume", "--lr", "0.5", "--quiet"]))
    assert "optim.lr: 0.01 -> 0.5" in line and "only a longer --epochs" in line
    line = one_error_line(runner.invoke(app, ["train", "-o", str(run), "--resume", "--epochs", "0", "--quiet"]))
    assert "epochs must be in [1, " in line
    with open(run / "metrics.jsonl", "a") as fh:  # a kill between the row of epoch 2 and its checkpoint
        fh.write(json.dumps({"epoch": 2, "train_loss": 9.0}) + "\n")
    result = runner.invoke(app, ["train", "-o", str(run), "--resume", "--epochs", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2] and rows[1]["train_loss"] != 9.0
    assert load_checkpoint(run).epoch == 2 and load_checkpoint(run).config.optim.epochs == 2


def test_a_second_training_into_a_locked_folder_fails_clearly(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with open(run / LOCK_NAME, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(UsageError, match="another training is writing into"):
            train_quietly(_tiny(), run)
    assert not (run / "checkpoint.pt").exists()


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import train.trainer as trainer
    real, calls = trainer.F.cross_entropy, []

    def diverging(*args, **kwargs):  # epoch 2's first batch turns NaN (digits: 22 batches per epoch)
        calls.append(1)
        return real(*args, **kwargs) * (math.nan if len(calls) > 22 else 1.0)
    monkeypatch.setattr(trainer.F, "cross_entropy", diverging)
    with pytest.raises(UsageError, match=r"training diverged: the loss became nan at epoch 2, batch 1.*last good "
                                         r"epoch 1"):
        train_quietly(_tiny(epochs=3), tmp_path / "run")
    assert load_checkpoint(tmp_path / "run").epoch == 1
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


def test_artifacts_get_usual_permissions_and_strict_json(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        write_json_atomic(tmp_path / "a.json", {"bad": [math.nan, math.inf, 1.5]})
        with atomic_dir(tmp_path / "folder") as tmp:
            (tmp / "f").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o755
    assert json.loads((tmp_path / "a.json").read_text(), parse_constant=pytest.fail) == {"bad": [None, None, 1.5]}


def test_run_records_threads_versions_and_commit(tiny_run):
    ckpt = load_checkpoint(tiny_run)
    assert ckpt.config.optim.threads == ckpt.provenance["torch_threads"] >= 1
    assert ckpt.provenance["torch"] == torch.__version__ and ckpt.provenance["lava-dl"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True)
    if head.returncode == 0:  # a git checkout (not a copied tree): the checkpoint names the commit that wrote it
        assert ckpt.provenance["tgo_commit"].split("+")[0] == head.stdout.strip()
    for line in (tiny_run / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=pytest.fail)


def test_simulate_refuses_labels_without_inputs(tiny_export, tmp_path):
    import numpy as np
    np.save(tmp_path / "y.npy", np.zeros(3, dtype=np.int64))
    line = one_error_line(runner.invoke(app, ["simulate", str(tiny_export), "--labels", str(tmp_path / "y.npy")]))
    assert "--labels needs --inputs" in line


# --- the demo -----------------------------------------------------------------------------------------------

def test_demo_stages_rerun_when_inputs_or_settings_change(tmp_path):
    done = []
    output = tmp_path / "artifact"
    act = lambda: (done.append(1), output.write_text("x"))
    Stages(tmp_path).run("s", fingerprint({"epochs": 3}), output, act)
    Stages(tmp_path).run("s", fingerprint({"epochs": 3}), output, act)
    assert len(done) == 1
    Stages(tmp_path).run("s", fingerprint({"epochs": 40}), output, act)
    assert len(done) == 2
    output.unlink()
    Stages(tmp_path).run("s", fingerprint({"epochs": 40}), output, act)
    assert len(done) == 3


def test_demo_retrains_a_run_of_other_settings(tiny_run, tmp_path):
    from rich.console import Console
    from tgo_demo import _train_stage
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes((tiny_run / "checkpoint.pt").read_bytes())
    other = load_checkpoint(tiny_run).config
    other.optim.seed = 1
    _train_stage(other, tmp_path / "run", False, Console(quiet=True))
    assert load_checkpoint(tmp_path / "run").config.optim.seed == 1
