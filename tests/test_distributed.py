"""torchrun-style DistributedDataParallel training on the CPU (gloo, 2 processes spawned here): it reaches the
accuracy of one process and a resumed run continues exactly."""
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from tests.conftest import digits_config, train_quietly
from train.checkpoint import load_checkpoint
from train.config import ExperimentConfig
from train.distributed import rank_seed
from train.trainer import train

WORLD = 2


class _Stop(Exception):
    pass


def _worker(rank: int, port: int, config: dict, out: str, resume: bool, stop_after: int) -> None:
    """One rank, with the environment torchrun would give it."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    epochs_logged = []

    def log(_line: str) -> None:
        epochs_logged.append(_line)
        if len(epochs_logged) == stop_after:
            raise _Stop

    try:
        train(ExperimentConfig.from_dict(config), Path(out), resume=resume, show_progress=False, log=log)
    except _Stop:
        pass
    from tgo_cli import exit_process
    exit_process(0)  # as the CLI ends a rank: an interrupted run still holds its group


def _spawn(config: ExperimentConfig, out: Path, resume: bool = False, stop_after: int = 0) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_worker, args=(port, config.to_dict(), str(out), resume, stop_after), nprocs=WORLD, join=True)


@pytest.fixture(scope="module")
def config():
    return digits_config("tgo", epochs=3, model={"hidden": [32], "timesteps": 4}, optim={"batch_size": 32})


def test_two_processes_train_like_one_and_resume_exactly(config, tmp_path):
    single = train_quietly(config, tmp_path / "one")
    _spawn(config, tmp_path / "two")
    straight = load_checkpoint(tmp_path / "two")
    assert straight.epoch == 3 and abs(straight.metrics["test_accuracy"] - single["test_accuracy"]) <= 0.04
    assert straight.metrics["test_accuracy"] > 0.8
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3  # rank 0 alone writes

    _spawn(config, tmp_path / "resumed", stop_after=1)
    assert load_checkpoint(tmp_path / "resumed").epoch == 1
    _spawn(config, tmp_path / "resumed", resume=True)
    resumed = load_checkpoint(tmp_path / "resumed")
    assert resumed.epoch == 3 and resumed.metrics == straight.metrics
    for key, value in straight.model_state.items():
        assert torch.equal(value, resumed.model_state[key]), key


def test_rank_seeds_keep_rank_zero_and_differ_elsewhere():
    seeds = [rank_seed(12345, rank) for rank in range(4)]
    assert seeds[0] == 12345 and len(set(seeds)) == 4 and all(0 <= s < 2 ** 63 for s in seeds)
