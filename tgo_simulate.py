"""`tgo simulate`: run a .net file in hw_sim and/or Lava, print accuracy and spike statistics, write simulate.json.

Samples: by default the test split of the dataset a tgo file was trained on (its config_json); or .npy files:
for tgo files, float images in [0, 1] ([N, C, H, W] or [N, features]),
encoded as the file says; for other netx files, integer input spikes [N, steps, *input shape].
"""
from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hw_sim.compare import Mismatch, first_mismatch
from hw_sim.netfile import NetFile, load_net
from hw_sim.report import Tally, layer_type
from hw_sim.simulator import Run, encode_inputs, simulate
from tgo_errors import UsageError, unreadable_path
from tgo_files import check_output_dir, write_json_atomic
from tgo_provenance import provenance

BACKENDS = ("hwsim", "lava")
RESULT_FILE = "simulate.json"


def simulate_command(model: Path, inputs: Optional[Path], labels: Optional[Path], n: Optional[int], backend: str,
                     compare: bool, out: Optional[Path], batch: int, device: str,
                     console: Optional[Console] = None) -> int:
    """Run the command; returns the exit code (1 when --compare finds a mismatch). Raises UsageError."""
    console = console or Console()
    if backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if batch < 1:
        raise UsageError(f"--batch must be at least 1, got {batch}")
    if device != "cpu" and re.fullmatch(r"cuda(:\d+)?", device) is None:
        raise UsageError(f"--device must be cpu, cuda or cuda:N, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available here; use --device cpu")
    if out is not None:
        check_output_dir(out)
    net = load_net(model)
    spikes, truth = load_samples(net, inputs, labels, n)
    steps = net.window(spikes.shape[1])
    results: Dict[str, Dict] = {}
    mismatch: Optional[Mismatch] = None
    with _progress(console) as progress:
        lava_run = _run_lava(net, spikes, progress) if compare or backend == "lava" else None
        if lava_run is not None:
            tally = Tally()
            tally.add(net, lava_run)
            results["lava"] = tally.summary(net, truth)
        if compare or backend == "hwsim":
            tally, mismatch = _run_hwsim(net, spikes, steps, batch, device, progress, lava_run)
            results["hwsim"] = tally.summary(net, truth)
    report = {"model": str(model), "format": "tgo-net" if net.tgo else "netx", "samples": len(spikes),
              "steps_per_sample": steps, "backends": results, "provenance": provenance(device)}
    if compare:
        report["compare"] = {"equal": mismatch is None,
                             "first_mismatch": None if mismatch is None else vars(mismatch)}
    path = write_json(out if out is not None else model.parent, report)
    _print(console, net, report, mismatch, path)
    return 1 if mismatch is not None else 0


def load_samples(net: NetFile, inputs: Optional[Path], labels: Optional[Path],
                 n: Optional[int]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Input spikes [n, S, *input_shape] int32 and labels [n] (or None), validated against the network."""
    if inputs is None:
        if labels is not None:
            raise UsageError("--labels needs --inputs (the test split brings its own labels)")
        return _test_split(net, n)
    x = _load_npy(inputs, "--inputs")
    count = len(x) if x.ndim else 0
    n = count if n is None else n
    if not 1 <= n <= count:
        raise UsageError(f"--n {n}: {inputs} holds {count} samples")
    x = x[:n]
    if net.tgo is not None:
        shapes = (tuple(net.tgo.input_shape), (int(np.prod(net.tgo.input_shape)),))
        if x.dtype.kind not in "fiu" or tuple(x.shape[1:]) not in shapes:
            raise UsageError(f"--inputs {inputs}: shape {x.shape}, {x.dtype}; expected float images "
                             f"[N, {', '.join(map(str, net.tgo.input_shape))}] or [N, {shapes[1][0]}]")
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise UsageError(f"--inputs {inputs}: values must lie in [0, 1]")
        spikes = encode_inputs(net, torch.from_numpy(x.astype(np.float64)))
    else:
        if x.ndim != 2 + len(net.input_shape) or tuple(x.shape[2:]) != net.input_shape or x.dtype.kind not in "iub":
            raise UsageError(f"--inputs {inputs}: shape {x.shape}, {x.dtype}; this netx file takes integer spikes "
                             f"[N, steps, {', '.join(map(str, net.input_shape))}]")
        if x.size and (x.min() < np.iinfo(np.int32).min or x.max() > np.iinfo(np.int32).max):
            raise UsageError(f"--inputs {inputs}: spike values must fit int32")
        spikes = torch.from_numpy(x.astype(np.int32))
    if labels is None:
        return spikes, None
    y = _load_npy(labels, "--labels")
    classes = net.tgo.num_classes if net.tgo else net.layers[-1].size
    if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) < n:
        raise UsageError(f"--labels {labels}: expected {n} or more integer labels, got shape {y.shape}, {y.dtype}")
    y = y[:n]
    if y.min() < 0 or y.max() >= classes:
        raise UsageError(f"--labels {labels}: labels must lie in [0, {classes - 1}]")
    return spikes, torch.from_numpy(y.astype(np.int64))


def _test_split(net: NetFile, n: Optional[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """The test split of the dataset the exported model was trained on (from the file's config_json)."""
    from train.config import DataConfig, ExperimentConfig
    from train.data import load_dataset
    if net.tgo is None:
        raise UsageError(f"{net.path} is a plain netx file: give the samples with --inputs FILE.npy")
    try:
        data_cfg = ExperimentConfig(data=DataConfig(**json.loads(net.tgo.config_json)["checkpoint"]["data"]))
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{net.path}: its /tgo/config_json names no dataset; give --inputs FILE.npy") from None
    try:
        data = load_dataset(data_cfg.validate().data)
    except UsageError as err:
        raise UsageError(f"{net.path}: its /tgo/config_json: {err}") from None
    if data.test_x[0].numel() != int(np.prod(net.tgo.input_shape)):
        raise UsageError(f"{net.path}: its /tgo/config_json names dataset {data.name!r} of samples "
                         f"{tuple(data.test_x.shape[1:])}, the network takes {net.tgo.input_shape}")
    n = len(data.test_x) if n is None else n
    if not 1 <= n <= len(data.test_x):
        raise UsageError(f"--n {n}: the {data.name} test split has {len(data.test_x)} samples")
    return encode_inputs(net, data.test_x[:n].to(torch.float64)), data.test_y[:n]


def write_json(folder: Path, report: Dict) -> Path:
    """Write `report` to folder/simulate.json atomically (temporary file in the same folder, then rename)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / RESULT_FILE, report)
    except OSError as err:
        raise UsageError(f"cannot write {folder / RESULT_FILE}: {err}") from None
    return folder / RESULT_FILE


def _load_npy(path: Path, flag: str) -> np.ndarray:
    if not path.is_file():
        raise UsageError(f"{flag} {path}: {unreadable_path(path)}")
    try:
        return np.load(path, allow_pickle=False)  # never unpickles (runs) anything from the file
    except (ValueError, OSError) as err:
        raise UsageError(f"{flag} {path}: not a readable .npy array ({err})") from None


def _run_hwsim(net: NetFile, spikes: torch.Tensor, steps: int, batch: int, device: str, progress: Progress,
               reference: Optional[Run]) -> Tuple[Tally, Optional[Mismatch]]:
    """hw_sim in batches; with a reference run (Lava) of the same samples, also its first mismatch."""
    tally, mismatch = Tally(), None
    task = progress.add_task("hw_sim", total=len(spikes))
    for first in range(0, len(spikes), batch):
        rows = slice(first, first + batch)
        run = simulate(net, spikes[rows], steps=steps, device=device)
        tally.add(net, run)
        if reference is not None and mismatch is None:
            mismatch = first_mismatch(net, reference.select(rows), run, sample_offset=first)
        progress.update(task, completed=min(first + batch, len(spikes)))
    return tally, mismatch


def _run_lava(net: NetFile, spikes: torch.Tensor, progress: Progress) -> Run:
    try:
        notices = io.StringIO()  # lava-dl prints import-time notices
        with contextlib.redirect_stdout(notices), contextlib.redirect_stderr(notices):
            from hw_sim.lava_runner import run_lava
    except ImportError as err:
        raise UsageError(f"the Lava backend needs lava-nc and lava-dl ({err}); use --backend hwsim") from None
    task = progress.add_task("Lava", total=len(spikes))
    update: Callable[[int], None] = lambda done: progress.update(task, completed=done)
    return run_lava(net, spikes, progress=update)


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description:>7s}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


def _print(console: Console, net: NetFile, report: Dict, mismatch: Optional[Mismatch], path: Path) -> None:
    results = report["backends"]
    table = Table(title=f"spikes per neuron per step ({report['samples']} samples x "
                        f"{report['steps_per_sample']} steps)")
    table.add_column("layer")
    table.add_column("type")
    table.add_column("neurons", justify="right")
    for name in results:
        table.add_column(name, justify="right")
    for k, layer in enumerate(net.layers):
        table.add_row(str(layer.index), layer_type(layer), str(layer.size),
                      *(f"{result['layers'][k]['spikes_per_neuron_per_step']:.4f}" for result in results.values()))
    console.print(table)
    for name, result in results.items():
        if result["accuracy"] is not None:
            console.print(f"{name} accuracy: {result['accuracy']:.2%} ({result['correct']}/{report['samples']})")
    if "compare" in report:
        console.print("hw_sim and Lava agree spike for spike" if mismatch is None
                      else f"[red]MISMATCH[/red] first at {mismatch.describe()}")
    console.print(f"wrote {path}")
