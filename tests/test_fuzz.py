"""Property-based fuzzing (hypothesis): mutated checkpoints, configs, `.npy` inputs and `.net` files, and every
option of every command with bad values. The outcome is always a valid load or one `error:` line with exit
code 2, never another exception, never a traceback."""
import inspect
import io
import json
import typing
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.models import OptionInfo
from typer.testing import CliRunner

from tgo_simulate import load_samples
from hw_sim.netfile import load_net
from tests.hw_sim_nets import random_images, tgo_mlp
from tgo_cli import app
from tgo_errors import UsageError
from train.budget import run_bytes
from train.checkpoint import load_checkpoint
from train.config import ExperimentConfig

runner = CliRunner()
FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# JSON-like values a hostile file may hold where something else belongs
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True),
                    st.text(max_size=6), st.sampled_from([0, -1, 1e308, "nan", "superspike"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                      max_leaves=6)
CONFIG_FIELDS = [(section, key) for section, fields in ExperimentConfig().to_dict().items() for key in fields]


def _one_line_exit_2(result) -> None:
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("error: "), result.output


# --- configs ------------------------------------------------------------------------------------------------

@FUZZ
@given(field=st.sampled_from(CONFIG_FIELDS + [("model", None), ("nosuch", "x")]), value=values,
       drop=st.booleans())
def test_mutated_configs_validate_or_raise_usage_error(field, value, drop):
    raw = ExperimentConfig().to_dict()
    section, key = field
    if key is None:
        raw[section] = value
    elif drop and section in raw:
        raw[section].pop(key, None)
    else:
        raw.setdefault(section, {})[key] = value
    try:
        cfg = ExperimentConfig.from_dict(raw).validate()
    except UsageError:
        return
    assert run_bytes(cfg, (1, 8, 8), 10, 1) > 0  # a config that validates also builds


# --- checkpoints --------------------------------------------------------------------------------------------

def _restore(ckpt) -> None:
    """What `train --resume` does with a loaded checkpoint."""
    from train.models import build_model
    model = build_model(ckpt.config.model, ckpt.config.neuron, ckpt.input_shape, ckpt.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=ckpt.config.optim.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=ckpt.config.optim.epochs)
    ckpt.restore_training(model, optimizer, scheduler)


def _mutate_payload(raw: dict, target: str, value) -> None:
    if target.startswith("config."):
        _, section, key = target.split(".")
        cfg = json.loads(raw["config"])
        cfg[section][key] = value
        raw["config"] = json.dumps(cfg)
    elif target == "model.entry":
        key = next(iter(raw["model"]))
        raw["model"][key] = value if not isinstance(value, (int, float)) or isinstance(value, bool) \
            else torch.full((2,), float(value))
    elif target == "optimizer.lr":
        raw["optimizer"]["param_groups"][0]["lr"] = value
    elif target == "optimizer.moment":
        state = next(iter(raw["optimizer"]["state"].values()))
        state["exp_avg"] = value if not isinstance(value, list) else torch.tensor([float(len(value))])
    else:
        raw[target] = value


CHECKPOINT_TARGETS = (["config", "input_shape", "num_classes", "epoch", "model", "optimizer", "scheduler",
                       "metrics", "provenance", "format", "version", "model.entry", "optimizer.lr",
                       "optimizer.moment"] + [f"config.{s}.{k}" for s, k in CONFIG_FIELDS])


@FUZZ
@given(target=st.sampled_from(CHECKPOINT_TARGETS), value=values)
def test_mutated_checkpoints_load_or_raise_usage_error(tiny_run, tmp_path, target, value):
    raw = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    _mutate_payload(raw, target, value)
    path = tmp_path / "checkpoint.pt"
    torch.save(raw, path)
    try:
        ckpt = load_checkpoint(path)
        ckpt.build_model()
        _restore(ckpt)
    except UsageError:
        pass


@FUZZ
@given(offset=st.integers(0, 10 ** 6), cut=st.booleans(), byte=st.integers(0, 255))
def test_damaged_checkpoint_bytes_are_refused(tiny_run, tmp_path, offset, cut, byte):
    data = bytearray((tiny_run / "checkpoint.pt").read_bytes())
    offset %= len(data)
    data = data[:offset] if cut else data[:offset] + bytes([byte]) + data[offset + 1:]
    (tmp_path / "checkpoint.pt").write_bytes(bytes(data))
    try:
        load_checkpoint(tmp_path / "checkpoint.pt").build_model()
    except UsageError:
        pass


# --- .npy inputs --------------------------------------------------------------------------------------------

DTYPES = ["float64", "float32", "float16", "int64", "int8", "uint8", "bool", "complex64", "object", "U3"]


def _array(dtype: str, shape: tuple, fill) -> np.ndarray:
    if dtype == "object":
        return np.full(shape, None, dtype=object)
    with np.errstate(all="ignore"):
        return np.full(shape, fill).astype(dtype)


arrays = st.builds(_array, st.sampled_from(DTYPES),
                   st.lists(st.integers(0, 5), max_size=4).map(tuple) | st.sampled_from([(3, 48), (3, 3, 4, 4)]),
                   st.one_of(st.floats(allow_nan=True), st.integers(-300, 300), st.sampled_from([0.5, 1, 0])))


@pytest.fixture(scope="module")
def small_net(tmp_path_factory):
    return load_net(tgo_mlp(tmp_path_factory.mktemp("fuzz-net") / "m.net"))


@FUZZ
@given(x=arrays, y=st.none() | arrays, n=st.none() | st.integers(-2, 6), corrupt=st.integers(-1, 200))
def test_fuzzed_npy_inputs_load_or_raise_usage_error(small_net, tmp_path, x, y, n, corrupt):
    inputs = tmp_path / "x.npy"
    buffer = io.BytesIO()
    np.save(buffer, x, allow_pickle=True)
    data = bytearray(buffer.getvalue())
    if 0 <= corrupt < len(data):
        data[corrupt] ^= 0xFF
    inputs.write_bytes(bytes(data))
    labels = None
    if y is not None:
        labels = tmp_path / "y.npy"
        np.save(labels, y, allow_pickle=True)
    try:
        spikes, truth = load_samples(small_net, inputs, labels, n)
    except UsageError:
        return
    assert spikes.dtype == torch.int32 and (truth is None or len(truth) == len(spikes))


# --- .net files (the reader's hardening is the sim helper's work) -------------------------------------------

def _names(handle: h5py.File) -> list:
    names = []
    handle.visit(names.append)
    return sorted(names)


def _mutate_net(path: Path, mutation: str, pick: int, value) -> None:
    """One edit of a valid tgo .net file: a value replaced, a key deleted, a group turned into a dataset, a
    link put in its place, or a flipped byte."""
    if mutation == "byte":
        data = bytearray(path.read_bytes())
        data[pick % len(data)] ^= 0xFF
        path.write_bytes(bytes(data))
        return
    with h5py.File(path, "r+") as handle:
        names = _names(handle)
        if mutation in ("replace", "group-to-array"):  # leaves only, or groups only
            names = [n for n in names if isinstance(handle[n], h5py.Group) == (mutation == "group-to-array")]
        name = names[pick % len(names)]
        del handle[name]
        if mutation == "replace":
            try:
                handle.create_dataset(name, data=value)
            except (TypeError, ValueError):
                handle.create_dataset(name, data=str(value))
        elif mutation == "group-to-array":
            handle.create_dataset(name, data=np.zeros(3))
        elif mutation == "group-to-scalar":
            handle.create_dataset(name, data=0)
        elif mutation == "soft-loop":
            handle[name] = h5py.SoftLink("/" + name)
        elif mutation == "external":
            handle[name] = h5py.ExternalLink(str(path.with_name("missing.h5")), "/x")


def _simulate_mutated(tmp_path: Path, mutation: str, pick: int, value) -> None:
    net = tgo_mlp(tmp_path / "m.net")
    np.save(tmp_path / "x.npy", random_images(2, (3, 4, 4)))
    _mutate_net(net, mutation, pick, value)
    result = runner.invoke(app, ["simulate", str(net), "--inputs", str(tmp_path / "x.npy"), "-o", str(tmp_path)])
    if result.exit_code != 0:
        _one_line_exit_2(result)


NET_FUZZ = settings(FUZZ, max_examples=15, phases=[Phase.explicit, Phase.generate])  # no shrinking: keep it fast


@NET_FUZZ
@given(mutation=st.sampled_from(["replace", "delete", "group-to-array", "byte"]), pick=st.integers(0, 10 ** 6),
       value=values)
def test_fuzzed_net_files_simulate_or_exit_2(tmp_path, mutation, pick, value):
    _simulate_mutated(tmp_path, mutation, pick, value)


@NET_FUZZ
@given(mutation=st.sampled_from(["soft-loop", "external", "group-to-scalar"]), pick=st.integers(0, 10 ** 6))
def test_linked_or_reshaped_net_files_simulate_or_exit_2(tmp_path, mutation, pick):
    _simulate_mutated(tmp_path, mutation, pick, None)


# --- every option of every command with bad values -----------------------------------------------------------

BAD = {"int": ["-1", "x", str(2 ** 70)], "float": ["nan", "-inf", "x"], "text": ["", "nope"]}


@pytest.fixture(scope="module")
def tiny_graph(tiny_run, tmp_path_factory) -> Path:
    """`tiny_run` exported as a NIR graph (model.nir), for `tgo import`."""
    from export.pipeline import export_checkpoint
    target = tmp_path_factory.mktemp("tiny-nir") / "out"
    export_checkpoint(tiny_run, target, formats=("nir",))
    return target / "model.nir"


def _base(command: str, run: Path, net: Path, graph: Path, tmp: Path) -> list:
    fast = {
        "train": ["-o", str(tmp / "run"), "--epochs", "1", "--hidden", "4", "-T", "1", "--quiet"],
        "attack": [str(run), "--attacks", "fgsm", "--eps", "0.1", "--n", "3", "--surrogates", "own",
                   "--repeats", "1", "--quiet", "-o", str(tmp / "atk")],
        "export": [str(run), "-o", str(tmp / "exp"), "--format", "net", "--quiet"],
        "simulate": [str(net), "--n", "3", "-o", str(tmp / "sim")],
        "hardware": [str(net), "--n", "3", "-o", str(tmp / "hw")],
        "import": [str(graph), "-o", str(tmp / "run")],
        "verify": [str(run), str(net), "--attacks", "fgsm", "--eps", "0.0625", "--n", "3", "--lava-n", "0",
                   "--repeats", "1", "--eot-k", "1", "--apgd-steps", "1", "--square-queries", "1", "--quiet",
                   "-o", str(tmp / "ver")],
    }
    return [command, *fast[command]]


def _bad_cases():
    """(command, --option, bad value) for every non-flag option of every command but demo (read from the CLI)."""
    for info in app.registered_commands:
        name = info.name or info.callback.__name__
        if name == "demo":
            continue
        hints = typing.get_type_hints(info.callback)
        for pname, param in inspect.signature(info.callback).parameters.items():
            kind = hints[pname]
            kind = next((k for k in typing.get_args(kind) if k is not type(None)), kind)
            if not isinstance(param.default, OptionInfo) or pname == "out" or kind is bool:
                continue
            flag = next((d for d in param.default.param_decls if d.startswith("--")), "--" + pname.replace("_", "-"))
            for value in BAD.get(kind.__name__, BAD["text"]):
                yield pytest.param(name, flag, value, id=f"{name}{flag}={value or 'empty'}")


class Accepted(UsageError):
    """Raised in place of the long work of a command: every option was accepted."""


@pytest.mark.parametrize("command, option, value", list(_bad_cases()))
def test_every_option_with_a_bad_value_is_refused_or_harmless(tiny_run, tiny_export, tiny_graph, tmp_path,
                                                              monkeypatch, command, option, value):
    def accepted(*_args, **_kwargs):
        raise Accepted("accepted")
    for work in ("train.trainer._train", "robust.command.evaluate_model", "robust.verify_command.verify"):
        monkeypatch.setattr(work, accepted)
    result = runner.invoke(app, _base(command, tiny_run, tiny_export, tiny_graph, tmp_path) + [option, value])
    assert result.exit_code in (0, 1, 2) and "Traceback" not in result.output, result.output
    if result.exit_code == 2:
        _one_line_exit_2(result)
    # train and import write a run folder: every bad value is refused before it exists
    if command in ("train", "import") and value and option != "--data-dir":  # (bundled sets ignore --data-dir)
        assert result.exit_code == 2 and "accepted" not in result.output, result.output
        assert not (tmp_path / "run").exists(), result.output
