"""`tgo attack` and `tgo verify` sharded across torchrun-style ranks (gloo, 2 CPU processes spawned here):
every per-sample result equals one process's bit for bit, rank 0 alone writes, and an error on one rank
stops both with the CLI's one-line error."""
import io
import json
import multiprocessing
import os
import socket
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from robust.options import AttackOptions, EngineBudget
from robust.sharding import Plan, block_seed
from tests.conftest import digits_config, train_quietly

WORLD = 2
N, BLOCK = 20, 8           # blocks of 8, 8, 4 samples: rank 0 runs the first, rank 1 the other two
TIMEOUT = 300              # seconds before a hung group fails the test (generous: a loaded CI machine)


def _attack_options(out: Path) -> AttackOptions:
    # eot_k of the engine is probed (doubling over all samples' scores): a decision shared by the ranks
    return AttackOptions(attacks="fgsm,eot-pgd5", eps="0.125", n=N, eot_k=2, repeats=3, surrogates="own",
                         sweep="own,ste", steps=3, search_queries=8, out=str(out), progress=False, block=BLOCK)


def _verify_options():
    from robust.verify_command import build_options
    return build_options(eps="0.125", surrogates="own,ste", twin_surrogates="own", default_alpha=2.0, n=N, lava_n=2,
                         repeats=3, tolerance=0.05, seed=3, budget=EngineBudget.quick(), block=BLOCK)


def _scrub(tree):
    """A report without what may differ between runs of equal results: timings, provenance, paths."""
    if isinstance(tree, dict):
        return {k: _scrub(v) for k, v in tree.items() if k not in ("seconds", "provenance", "processes", "out")}
    if isinstance(tree, list):
        return [_scrub(v) for v in tree]
    return tree


def _per_sample(results) -> dict:
    """Every per-sample tensor and list of `tgo attack`'s results, by name."""
    out = {}
    for result in results:
        out[f"{result.name}/clean"] = result.clean_scores
        out[f"{result.name}/zero"] = result.zero_gradients
        for eps_result in result.eps_results:
            out[f"{result.name}/{eps_result.eps}/worst"] = eps_result.worst_scores
            out[f"{result.name}/{eps_result.eps}/worst_by"] = eps_result.worst_by
            for run in eps_result.runs:
                out[f"{result.name}/{eps_result.eps}/{run.key}"] = run.scores
    return out


def _work(command: str, run: str, net: str, out: str):
    if command == "attack":
        from robust.command import run_attack
        returned = run_attack([Path(run)], _attack_options(Path(out)))
        return None if returned is None else _per_sample(returned["results"])
    from robust.verify_command import run_verify
    return run_verify(Path(run), Path(net), Path(out), _verify_options(), show_progress=False)


def _worker(rank: int, port: int, command: str, run: str, net: str, out: str, dumps: str) -> None:
    """One rank with torchrun's environment; what it returns or prints goes to dumps/rank<r>.pt."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    multiprocessing.set_start_method(None, force=True)  # a plain process, as torchrun starts: Lava sets 'fork'
    if command == "fail":
        import robust.engine
        from tgo_cli import app, run_guarded
        from tgo_errors import UsageError

        def planted(*_args, **_kwargs):
            raise UsageError("planted failure on rank 1")
        if rank == 1:
            robust.engine._attack = planted
        sys.stderr = captured = io.StringIO()
        code = run_guarded(lambda: app(["verify", run, net, "-o", out, "--quiet", "--n", "8", "--block", "4",
                                        "--eps", "0.125", "--steps", "2", "--restarts", "1", "--eot-k", "2",
                                        "--search-queries", "4", "--surrogates", "own", "--repeats", "2",
                                        "--lava-n", "0"], standalone_mode=False))
        sys.stderr = sys.__stderr__
        returned = {"code": code, "stderr": captured.getvalue()}
    else:
        returned = _work(command, run, net, out)
    torch.save(returned, Path(dumps) / f"rank{rank}.pt")
    from tgo_cli import exit_process
    exit_process(0)  # as the CLI ends a rank (its group is still joined)


def _spawn(command: str, run: Path, net: Path, out: Path, dumps: Path) -> list:
    """Both ranks' returns; fails the test if the group is not done within TIMEOUT seconds."""
    dumps.mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = mp.start_processes(_worker, args=(port, command, str(run), str(net), str(out), str(dumps)),
                                 nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {WORLD} ranks of '{command}' did not finish within {TIMEOUT} s")
    return [torch.load(dumps / f"rank{rank}.pt") for rank in range(WORLD)]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The demo's digits MLP, trained briefly, and its export: (run folder, model.net)."""
    from export.pipeline import export_checkpoint
    run = tmp_path_factory.mktemp("shard") / "run"
    train_quietly(digits_config("tgo", epochs=3), run)
    export_checkpoint(run, run.parent / "export", formats=("net",))
    return run, run.parent / "export" / "model.net"


def test_blocks_are_dealt_in_contiguous_runs_and_seeded_by_their_index():
    assert [Plan(N, BLOCK, rank, WORLD).mine() for rank in range(WORLD)] == [[0], [1, 2]]
    plans = [Plan(N, BLOCK, rank, 4) for rank in range(4)]
    assert [p.mine() for p in plans] == [[], [0], [1], [2]] and plans[0].count == 3  # a rank may have none
    assert [plans[0].rows(b) for b in range(3)] == [slice(0, 8), slice(8, 16), slice(16, 20)]
    assert sorted(b for p in [Plan(1000, 7, r, 4) for r in range(4)] for b in p.mine()) == list(range(143))
    seeds = [block_seed(5, b) for b in range(4)]
    assert seeds[0] == 5 and len(set(seeds)) == 4


@pytest.mark.parametrize("command", ["attack", "verify"])
def test_two_ranks_give_one_process_results_and_only_rank_zero_writes(model, tmp_path, command):
    run, net = model
    single = _work(command, str(run), str(net), str(tmp_path / "one"))
    main, other = _spawn(command, run, net, tmp_path / "two", tmp_path / "dumps")
    assert other is None and sorted(p.name for p in (tmp_path / "two").iterdir()) == \
        sorted(p.name for p in (tmp_path / "one").iterdir())
    report = f"{command}.json"
    ours, theirs = (json.loads((tmp_path / folder / report).read_text()) for folder in ("one", "two"))
    assert _scrub(ours) == _scrub(theirs)
    if command == "attack":
        assert main.keys() == single.keys()
        for key, value in single.items():
            assert torch.equal(value, main[key]) if isinstance(value, torch.Tensor) else value == main[key], key
        assert ours["settings"]["processes"] == 1 and theirs["settings"]["processes"] == WORLD
    else:
        assert main["per_sample"] == single["per_sample"] and len(single["per_sample"]["clean"]["fixed"]) == N
        assert main["lava"]["checked"] and main["lava"]["agree"]


def test_an_error_on_one_rank_stops_every_rank_with_its_message(model, tmp_path):
    run, net = model
    returned = _spawn("fail", run, net, tmp_path / "out", tmp_path / "dumps")
    for rank, entry in enumerate(returned):
        assert entry["code"] == 2, entry
        lines = entry["stderr"].strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "planted failure on rank 1" in lines[0]
        assert ("rank 1: " in lines[0]) == (rank == 0)
    assert not (tmp_path / "out").exists()


def test_a_source_missing_from_a_block_takes_that_blocks_clean_scores_and_one_never_run_is_not_ranked():
    from robust.engine import Side, _fill, strongest
    from robust.surrogates import parse_surrogates
    # block 0: both sources ran; block 1: the cascade stopped before 'b' (nothing left alive there)
    parts = [{"a": torch.tensor([0.0, 1.0]), "b": torch.tensor([0.0, 0.0])}, {"a": torch.tensor([0.0])}]
    unattacked = [torch.tensor([1.0, 1.0]), torch.tensor([1.0])]
    filled = _fill(parts, unattacked)
    assert list(filled) == ["a", "b"] and filled["b"].tolist() == [0.0, 0.0, 1.0]
    own, ste, triangle = parse_surrogates("own,ste,triangle:4", 2.0)
    side = Side("float", None, torch.nn.Identity(), [own, ste, triangle], "float")
    minima = {"float": {"float|own": torch.tensor([0.0, 1.0, 1.0]),
                        f"float|{ste.label}": torch.tensor([0.0, 0.0, 1.0])}}
    assert strongest([side], minima, 2) == {"float": [ste, own]}         # triangle:4 attacked no image
