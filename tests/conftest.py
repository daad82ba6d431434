"""Shared fixtures: small trained digits checkpoints, built once per test session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Lava sets the global multiprocessing start method to 'fork' when its runtime is first imported and raises if
# anything set one before (torch.multiprocessing.spawn in test_distributed does): import it first, whatever
# order the tests run in. (A process spawned by test_distributed has its start method set and runs no Lava.)
try:
    import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: E402,F401
except RuntimeError:
    pass

from train.config import ExperimentConfig, apply_method
from train.trainer import train


def digits_config(method: str = "tgo", epochs: int = 40, seed: int = 0, **sections) -> ExperimentConfig:
    """The default digits MLP config for `method`; `sections` override fields, e.g. optim={'lr': 0.01}."""
    cfg = ExperimentConfig()
    cfg.tgo.method = method
    cfg.optim.epochs, cfg.optim.seed, cfg.optim.device = epochs, seed, "cpu"
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(cfg, section), key, value)
    return apply_method(cfg)


def train_quietly(cfg: ExperimentConfig, out: Path, **kwargs):
    return train(cfg, out, show_progress=False, log=lambda *_: None, **kwargs)


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> dict:
    """Full-length digits runs (about 4 s each): {'vanilla': (run_dir, metrics), 'tgo': (run_dir, metrics)}."""
    runs = {}
    for method in ("vanilla", "tgo"):
        out = tmp_path_factory.mktemp(f"run-{method}")
        runs[method] = (out, train_quietly(digits_config(method), out))
    return runs


@pytest.fixture(scope="session")
def exported_runs(trained_runs, tmp_path_factory) -> dict:
    """The trained runs exported: {'vanilla' | 'tgo': (run_dir, export_dir)} with model.net and export.json."""
    from export.pipeline import export_checkpoint
    out = {}
    for name, (run_dir, _) in trained_runs.items():
        target = tmp_path_factory.mktemp(f"session-export-{name}") / "out"
        export_checkpoint(run_dir, target, formats=("net",))
        out[name] = (run_dir, target)
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A one-epoch digits MLP (16 hidden, T = 2): a valid checkpoint in seconds, for error-path tests."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    train_quietly(digits_config("tgo", epochs=1, model={"hidden": [16], "timesteps": 2}), out)
    return out


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory) -> Path:
    """`tiny_run` exported (model.net only); returns the model.net path."""
    from export.pipeline import export_checkpoint
    target = tmp_path_factory.mktemp("tiny-export") / "out"
    export_checkpoint(tiny_run, target, formats=("net",))
    return target / "model.net"


@pytest.fixture(autouse=True, scope="session")
def crash_logs_in_a_temporary_folder(tmp_path_factory):
    """Internal-error tracebacks that tests provoke go to a temporary folder, not ~/.cache/tgo/crashes."""
    os.environ["TGO_CRASH_DIR"] = str(tmp_path_factory.mktemp("crashes"))
