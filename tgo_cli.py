"""`tgo`: the command-line entry point. Each command is a thin wrapper over a package function.

One error boundary (`Boundary`) runs every command: a user mistake (`tgo_errors.UsageError`, a bad flag, a path
that cannot be written, a full disk) is one `error:` line on stderr and exit code 2; anything unexpected is one
`internal error:` line naming the log file that holds the traceback, and exit code 3. Exit code 1 is left to
verdicts (`tgo verify` fails, `tgo simulate --compare` finds a mismatch). Warnings raised while a command runs
are held back and shown after it succeeds, so they never precede the error line.
"""
from __future__ import annotations

import errno
import os
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, List, NoReturn, Optional

import typer
from typer.core import TyperGroup

from tgo_errors import UsageError

SEED_MAX = (1 << 63) - 1
# OSErrors about the user's paths and disks: reported as a user mistake (exit 2), not as an internal error.
USER_ERRNOS = {errno.ENOENT, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS,
               errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG, errno.ELOOP, errno.EFBIG, errno.ENOTEMPTY,
               errno.EBUSY, errno.ETXTBSY, errno.EXDEV}


def crash_dir() -> Path:
    """Where internal-error tracebacks go: $TGO_CRASH_DIR, else $XDG_CACHE_HOME/tgo/crashes (~/.cache/...)."""
    if os.environ.get("TGO_CRASH_DIR"):
        return Path(os.environ["TGO_CRASH_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tgo" / "crashes"


def write_crash_log(caught: List[warnings.WarningMessage]) -> str:
    """Write the current exception's traceback (with argv and the held warnings) to a new log file; its path.

    Falls back to the system's temporary folder when the crash folder cannot be written."""
    text = (f"tgo {' '.join(sys.argv[1:])}\n{time.strftime('%Y-%m-%d %H:%M:%S %z')}\n\n{traceback.format_exc()}"
            + "".join(f"\nwarning: {w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught))
    name = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    for folder in (crash_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
            return str(folder / name)
        except OSError:
            continue
    return "nowhere (no writable folder)"


def _one_line(text: str, limit: int = 0) -> str:
    """`text` on one line (whitespace runs collapsed), cut to `limit` characters when one is given."""
    line = " ".join(str(text).split())
    return line if not limit or len(line) <= limit else line[:limit - 3] + "..."


def _stdout_failure() -> Optional[str]:
    """Flush standard output; if it cannot be written (a full disk, /dev/full), silence it and say why."""
    try:
        sys.stdout.flush()
        return None
    except OSError as err:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return f"cannot write to standard output: {err.strerror or err}"


def _classify(err: BaseException, caught: List[warnings.WarningMessage]) -> tuple:
    """(exit code, one-line message) for an exception that escaped a command."""
    if isinstance(err, UsageError):
        return 2, f"error: {err}"
    if isinstance(err, typer.Abort):
        return 130, "error: aborted"
    if isinstance(err, typer.TyperException):  # click's own: a bad flag value, a missing argument...
        hint = f" (see '{err.ctx.command_path} --help')" if getattr(err, "ctx", None) is not None else ""
        return 2, f"error: {err.format_message()}{hint}"
    if isinstance(err, OSError) and err.errno in USER_ERRNOS:
        broken = _stdout_failure()
        if broken:
            return 2, f"error: {broken}"
        where = f"use '{err.filename}'" if err.filename else "write the output"
        return 2, f"error: cannot {where}: {err.strerror or err}"
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return 2, "error: out of memory: lower --batch-size, --hidden, --timesteps or --n"
    return 3, (f"internal error: {type(err).__name__}: {_one_line(err, 200)} -- the full traceback is in "
               f"{write_crash_log(caught)}; please report it")


def run_guarded(command: Callable[[], Any]) -> int:
    """Run `command` inside the error boundary; returns the exit code (see the module docstring)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            result = command()
            code, message = (result if isinstance(result, int) else 0), None
        except Exception as err:  # the boundary: nothing escapes as a traceback
            if type(err).__name__ == "NoArgsIsHelpError":
                err.show()
                return 2
            code, message = _classify(err, caught)
    if message is not None:
        typer.secho(_one_line(message), err=True, fg=typer.colors.RED)
        return code
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    broken = _stdout_failure()
    if broken:
        typer.secho(f"error: {broken}", err=True, fg=typer.colors.RED)
        return 2
    return code


def exit_process(code: int) -> NoReturn:
    """End the process with `code`. A rank of a torchrun group ends without Python's teardown: destroying a gloo
    group at interpreter exit can abort the process (SIGABRT, "terminate called without an active exception"),
    and `destroy_process_group` itself can hang (pytorch issue 75097); every rank is done by then."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


class Boundary(TyperGroup):
    """The `tgo` command group with one error boundary around every command (`run_guarded`)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        call = lambda: super(Boundary, self).main(args, prog_name, complete_var, standalone_mode=False, **extra)
        if not standalone_mode:
            return call()
        exit_process(run_guarded(call))


app = typer.Typer(cls=Boundary, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Threshold Guarding Optimization: train robust SNNs, export to Loihi, verify bit-exactly.")


@app.callback()
def main() -> None:
    """Threshold Guarding Optimization: train robust SNNs, export to Loihi, verify bit-exactly."""


def _int_list(text: str, name: str) -> List[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{name} must be comma-separated integers, got '{text}'") from None


def _defaults():
    from train.config import ExperimentConfig
    return ExperimentConfig()


_DEF = _defaults()  # option defaults come from the config dataclasses


# train's options and the config field each one sets (a resumed run compares the ones given with the checkpoint)
TRAIN_FIELDS = {
    "dataset": "data.dataset", "data_dir": "data.data_dir", "arch": "model.arch", "hidden": "model.hidden",
    "timesteps": "model.timesteps", "encoding": "model.encoding", "method": "tgo.method",
    "lambda_max": "tgo.lambda_max", "delta": "tgo.delta", "sigma": "tgo.sigma",
    "noise_at_inference": "neuron.noise_at_inference", "surrogate": "neuron.surrogate", "alpha": "neuron.alpha",
    "epochs": "optim.epochs", "batch_size": "optim.batch_size", "lr": "optim.lr", "seed": "optim.seed",
    "width": "model.width", "device": "optim.device", "amp": "optim.amp", "threads": "optim.threads",
    "adv_train": "adv.kind", "adv_eps": "adv.eps", "adv_steps": "adv.steps"}


def _train_config(ctx: typer.Context, out: Path, resume: bool):
    """The run's config: defaults plus the flags; with --resume, the checkpoint's config plus the flags given."""
    from train.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from train.config import apply_method
    saved = resume and (out / CHECKPOINT_NAME).is_file()
    cfg = load_checkpoint(out).config if saved else _defaults()
    convert = {"hidden": lambda text: _int_list(text, "--hidden"),
               "data_dir": lambda path: None if path is None else str(path)}
    for name, field in TRAIN_FIELDS.items():
        if not saved or ctx.get_parameter_source(name).name != "DEFAULT":
            section, key = field.split(".")
            setattr(getattr(cfg, section), key, convert.get(name, lambda v: v)(ctx.params[name]))
    return apply_method(cfg.validate())


@app.command()
def train(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: checkpoint.pt, config.json, metrics.jsonl."),
    dataset: str = typer.Option(_DEF.data.dataset, help="digits | mnist5k (bundled) | mnist | fashion-mnist | cifar10 | cifar100 (--data-dir)."),
    data_dir: Optional[Path] = typer.Option(None, help="Folder with torchvision-format files for folder datasets."),
    arch: str = typer.Option(_DEF.model.arch, help="mlp | convnet | pooled | vgg11 (Loihi-exportable) | wrn16 (training only)."),
    hidden: str = typer.Option(",".join(map(str, _DEF.model.hidden)), help="mlp widths / convnet, pooled channels, comma-separated."),
    width: int = typer.Option(_DEF.model.width, help="vgg11 base channel width (the paper's: 64)."),
    timesteps: int = typer.Option(_DEF.model.timesteps, "--timesteps", "-T", help="Time steps per sample."),
    encoding: str = typer.Option(_DEF.model.encoding, help="direct (analog current) | rate (Bernoulli spikes)."),
    method: str = typer.Option(_DEF.tgo.method, help="vanilla | mc (membrane constraint) | nlif (noisy LIF) | tgo (both)."),
    lambda_max: float = typer.Option(_DEF.tgo.lambda_max, help="Final weight of the membrane-potential constraint."),
    delta: float = typer.Option(_DEF.tgo.delta, help="Guarded band half-width around the threshold (membrane units)."),
    sigma: float = typer.Option(_DEF.tgo.sigma, help="Noisy-LIF noise std (membrane units; threshold is 1)."),
    noise_at_inference: bool = typer.Option(_DEF.neuron.noise_at_inference, help="Keep neuron noise on in eval()."),
    surrogate: str = typer.Option(_DEF.neuron.surrogate, help="Surrogate gradient (superspike, arctan, sigmoid, triangle, ste, super, tanh, ...)."),
    alpha: float = typer.Option(_DEF.neuron.alpha, help="Surrogate sharpness."),
    epochs: int = typer.Option(_DEF.optim.epochs),
    batch_size: int = typer.Option(_DEF.optim.batch_size),
    lr: float = typer.Option(_DEF.optim.lr),
    seed: int = typer.Option(_DEF.optim.seed, help="Seeds weights, shuffling and noise: same seed, same run."),
    device: str = typer.Option(_DEF.optim.device, help="cpu | cuda | cuda:N | auto."),
    amp: str = typer.Option(_DEF.optim.amp, help="off | bf16: autocast the synaptic products only (neurons, noise "
                                                 "and loss stay float32)."),
    threads: int = typer.Option(_DEF.optim.threads, help="Torch CPU threads; results depend on the count (0: this "
                                                       "machine's default). The count used is saved in the config."),
    adv_train: str = typer.Option(_DEF.adv.kind, help="Adversarial training: none | fgsm | pgd."),
    adv_eps: float = typer.Option(_DEF.adv.eps, help="Adversarial training L-inf budget (input units [0, 1])."),
    adv_steps: int = typer.Option(_DEF.adv.steps, help="PGD steps for adversarial training."),
    resume: bool = typer.Option(False, help="Continue the checkpoint in --out exactly where it stopped. Flags given "
                                            "must match its config; the one allowed change is a longer --epochs "
                                            "(the cosine schedules then stretch to the new length)."),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Train a spiking network with TGO (or an ablation) and print its clean accuracy and near-threshold fraction."""
    from train.distributed import main_only
    from train.trainer import train as run_training
    cfg = _train_config(ctx, out, resume)
    echo = main_only(typer.echo)  # under torchrun only rank 0 prints
    metrics = run_training(cfg, out, resume=resume, show_progress=not quiet, log=echo)
    echo(f"clean test accuracy {metrics['test_accuracy']:.4f}  near-threshold fraction "
         f"(|V - V_th| < {metrics['delta']}) {metrics['near_threshold_fraction']:.4f}  -> {out}")


from robust.options import DEFAULT_SWEEP, DEFAULT_TWIN_SWEEP, SAMPLE_BLOCK, AttackOptions, EngineBudget  # noqa: E402 (no torch)

_ATK, _BUDGET = AttackOptions(), EngineBudget()  # option defaults come from robust.options
BLOCK_HELP = ("Samples per block, the unit of seeding and of sharding across torchrun ranks (the results depend on "
              "it, not on the number of processes).")


@app.command()
def attack(
    checkpoints: List[Path] = typer.Argument(..., help="One or more checkpoint.pt files or run folders."),
    attacks: str = typer.Option(_ATK.attacks, help="Comma-separated: fgsm, rfgsm, pgd<steps>, apgd-ce, apgd-dlr, "
                                                   "square; prefix eot- to attack the noise-averaged model."),
    eps: str = typer.Option(_ATK.eps, help="Comma-separated L-inf budgets in input units [0, 1]."),
    n: Optional[int] = typer.Option(_ATK.n, "--n", help="Evaluate the first N test images (default: all)."),
    eot_k: int = typer.Option(_ATK.eot_k, help="Noise draws per gradient/query of eot- attacks (stochastic models)."),
    seed: int = typer.Option(_ATK.seed, min=0, max=SEED_MAX, help="Seeds every attack and the scoring noise."),
    surrogates: str = typer.Option(_ATK.surrogates, help="Surrogates the gradient attacks use: own, or name[:alpha] "
                                                         "(superspike, arctan, sigmoid, triangle, ste, ...)."),
    repeats: int = typer.Option(_ATK.repeats, help="Noisy forwards that score each input (stochastic models)."),
    restarts: int = typer.Option(_ATK.restarts, help="Random restarts of each randomized attack."),
    apgd_steps: int = typer.Option(_ATK.apgd_steps, help="APGD iterations."),
    square_queries: int = typer.Option(_ATK.square_queries, help="Square queries per sample."),
    batch_size: int = typer.Option(_ATK.batch_size, help="Images attacked at once."),
    dataset: Optional[str] = typer.Option(_ATK.dataset, help="Evaluate on this dataset instead of the checkpoint's."),
    data_dir: Optional[Path] = typer.Option(None, help="Folder for folder datasets (see tgo train)."),
    device: str = typer.Option(_ATK.device, help="cpu | cuda | auto."),
    out: Path = typer.Option(Path(_ATK.out), "--out", "-o", help="Folder for attack.json, attack.md, attack.png."),
    sweep: str = typer.Option(_ATK.sweep, help="Surrogates swept by the adaptive engine (as tgo verify)."),
    steps: int = typer.Option(_ATK.steps, help="Adaptive engine: APGD steps per start."),
    search_queries: int = typer.Option(_ATK.search_queries, help="Adaptive engine: queries per image of the "
                                                                 "input-level search."),
    input_levels: int = typer.Option(_ATK.input_levels, help="Adaptive engine: input grid Q of the level search."),
    block: int = typer.Option(SAMPLE_BLOCK, help=BLOCK_HELP),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Evaluate checkpoints under the attack suite and the adaptive engine of `tgo verify` (its headline)."""
    from robust.command import run_attack
    from robust.options import AttackOptions
    run_attack(checkpoints, AttackOptions(
        attacks=attacks, eps=eps, n=n, eot_k=eot_k, seed=seed, surrogates=surrogates, repeats=repeats,
        restarts=restarts, apgd_steps=apgd_steps, square_queries=square_queries, batch_size=batch_size,
        dataset=dataset, data_dir=None if data_dir is None else str(data_dir), device=device, out=str(out),
        progress=not quiet, sweep=sweep, steps=steps, search_queries=search_queries, input_levels=input_levels,
        block=block))


@app.command("export")
def export_command(
    checkpoint: Path = typer.Argument(..., help="Checkpoint file or run folder holding checkpoint.pt."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: model.net, model.onnx, model.nir, export.json."),
    formats: str = typer.Option("net,onnx,nir", "--format", help="Comma-separated subset of net,onnx,nir."),
    seed: int = typer.Option(0, help="Threshold-noise seed written to model.net (0..2^32-1)."),
    input_scale: Optional[int] = typer.Option(None, help="Input scale Q in 1..255: pixel x enters as round(x*Q) "
                                                         "(default: chosen by the quantizer)."),
    profile: str = typer.Option("loihi2", help="Chip profile of hardware.json (export/profiles/*.json)."),
    quiet: bool = typer.Option(False, help="No progress display."),
) -> None:
    """Quantize a checkpoint to Loihi fixed point and write the netx .net, ONNX and NIR graphs."""
    import json
    from rich.console import Console
    from export.pipeline import export_checkpoint, parse_formats
    from export.summary import evaluation_table, hardware_table, quantization_table
    console = Console()
    with console.status("exporting", spinner="dots") as status:
        report = export_checkpoint(checkpoint, out, parse_formats(formats), seed=seed, input_scale=input_scale,
                                   profile=profile,
                                   stage=(lambda msg: None) if quiet else (lambda msg: status.update(msg)))
    if "quantization" in report:
        console.print(quantization_table(report))
    if "evaluation" in report:
        console.print(evaluation_table(report))
    if "hardware" in report:
        console.print(hardware_table(json.loads((Path(out) / report["hardware"]["file"]).read_text())))
    if "lava" in report:
        typer.echo(f"note: {report['lava']['note']}")
    typer.echo(f"wrote {', '.join(sorted(p.name for p in Path(out).iterdir()))} to {out}")


@app.command("import")
def import_command(
    graph: Path = typer.Argument(..., help="A NIR graph file (e.g. written by Norse's to_nir, or tgo's model.nir)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write: checkpoint.pt and config.json."),
    dataset: str = typer.Option(_DEF.data.dataset, help="The data set the model takes (see tgo train)."),
    data_dir: Optional[Path] = typer.Option(None, help="Folder for folder datasets."),
    timesteps: int = typer.Option(_DEF.model.timesteps, "--timesteps", "-T", help="Time steps per sample."),
    sigma: float = typer.Option(0.0, help="Threshold-noise std of the deployed neuron (membrane units; 0: none)."),
    dt: float = typer.Option(_DEF.neuron.dt, help="Seconds per step, when the graph's metadata gives none."),
) -> None:
    """Turn a NIR graph into a tgo run folder that tgo export, attack and verify accept."""
    from train.nir_import import import_nir
    cfg = _defaults()
    cfg.data.dataset, cfg.data.data_dir = dataset, None if data_dir is None else str(data_dir)
    cfg.model.timesteps, cfg.tgo.sigma = timesteps, sigma
    typer.echo(f"wrote {import_nir(graph, out, cfg.validate(), dt)}")


@app.command()
def simulate(
    model: Path = typer.Argument(..., help="A .net file: a tgo export, or a lava-dl netx network (input, dense, "
                                           "dense_rec, conv, flatten layers; CUBA/LOIHI, SDNN or RF_IZ neurons; "
                                           "delays)."),
    backend: str = typer.Option("hwsim", help="hwsim (batched, bit-exact) | lava (Loihi2SimCfg fixed_pt)."),
    compare: bool = typer.Option(False, help="Run both backends on the same samples; exit 1 on the first mismatch."),
    n: Optional[int] = typer.Option(None, "--n", help="Number of samples (default: all)."),
    inputs: Optional[Path] = typer.Option(None, help="Samples .npy (default for tgo files: their test split)."),
    labels: Optional[Path] = typer.Option(None, help="Labels .npy for --inputs."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for simulate.json (default: beside MODEL)."),
    batch: int = typer.Option(256, help="hw_sim batch size."),
    device: str = typer.Option("cpu", help="hw_sim device: cpu | cuda."),
) -> None:
    """Run a .net in hw_sim or Lava: accuracy, spike statistics, and an exact cross-check with --compare."""
    from tgo_simulate import simulate_command
    code = simulate_command(model, inputs, labels, n, backend, compare, out, batch, device)
    if code:
        raise typer.Exit(code)


@app.command()
def hardware(
    model: Path = typer.Argument(..., help="A .net file (a tgo export or a netx network; see tgo simulate)."),
    profile: str = typer.Option("loihi2", help="Chip profile (export/profiles/*.json)."),
    n: Optional[int] = typer.Option(100, "--n", help="Samples whose hw_sim activity is measured."),
    inputs: Optional[Path] = typer.Option(None, help="Samples .npy (default for tgo files: their test split)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for hardware.json (default: beside MODEL)."),
) -> None:
    """Fit, cores, and per-inference activity, energy and latency of a .net under a chip profile."""
    from rich.console import Console
    from export.hardware import load_profile, measure
    from export.summary import hardware_table
    from hw_sim.netfile import load_net
    from tgo_files import write_json_atomic
    from tgo_simulate import load_samples
    chip = load_profile(profile)  # an unknown profile fails before any work
    net = load_net(model)
    spikes, _ = load_samples(net, inputs, None, n)
    report = measure(net, chip, spikes)
    path = (out if out is not None else model.parent) / "hardware.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, report)
    Console().print(hardware_table(report))
    typer.echo(f"wrote {path}")


@app.command()
def verify(
    checkpoint: Path = typer.Argument(..., help="The float model: checkpoint.pt or its run folder."),
    model: Path = typer.Argument(..., help="Its export: model.net, with the export.json written beside it."),
    out: Path = typer.Option(Path("runs/verify"), "--out", "-o", help="Folder for verify.json, verify.md, plots."),
    eps: str = typer.Option("0.0625,0.125", help="L-inf budgets in input units (digits: 1 and 2 of 16 grey levels)."),
    n: Optional[int] = typer.Option(None, "--n", help="First N test samples (default: all)."),
    lava_n: int = typer.Option(50, help="Samples re-run in Lava, clean and chosen adversarial (0: not checked)."),
    surrogates: str = typer.Option(DEFAULT_SWEEP, help="Surrogates swept by the float model's gradient attacks: own, or "
                                                "name[:alpha], comma-separated."),
    twin_surrogates: str = typer.Option(DEFAULT_TWIN_SWEEP, help="Surrogates swept on the fixed-point twin."),
    steps: int = typer.Option(_BUDGET.steps, help="APGD steps per start."),
    restarts: int = typer.Option(_BUDGET.restarts, help="Random starts per image and surrogate (losses ce, margin, dlr)."),
    eot_k: int = typer.Option(_BUDGET.eot_k, help="Noise draws per gradient (0: chosen by a doubling probe)."),
    search_queries: int = typer.Option(_BUDGET.search_queries, help="hw_sim queries per image of the grid search."),
    repeats: int = typer.Option(20, help="Noisy forwards (score seeds) scoring each input."),
    tolerance: float = typer.Option(0.02, help="Allowed robust-accuracy gap, fixed vs float (0.02 = 2 points)."),
    seed: int = typer.Option(0, min=0, max=SEED_MAX, help="Seeds attacks, search, choice and scoring."),
    allow_unpaired: bool = typer.Option(False, help="Verify a .net without export.json, or exported from another "
                                                    "checkpoint."),
    block: int = typer.Option(SAMPLE_BLOCK, help=BLOCK_HELP),
    quiet: bool = typer.Option(False, help="No progress messages."),
) -> None:
    """Is the deployed fixed-point model as robust as the float one? Exit 0 on pass, 1 otherwise."""
    from robust.verify_command import build_options, run_verify
    from train.checkpoint import load_checkpoint
    budget = EngineBudget(steps=steps, restarts=restarts, eot_k=eot_k, search_queries=search_queries)
    options = build_options(eps, surrogates, twin_surrogates, load_checkpoint(checkpoint).config.neuron.alpha, n,
                            lava_n, repeats, tolerance, seed, budget, allow_unpaired, block)
    report = run_verify(checkpoint, model, out, options, show_progress=not quiet)
    if report is not None and report["verdict"] != "pass":
        raise typer.Exit(1)


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Folder for every artifact of the demo."),
    quick: bool = typer.Option(False, help="A tiny version (seconds, for tests): 3 epochs, few samples and attacks."),
    quiet: bool = typer.Option(False, help="No progress bars."),
) -> None:
    """Everything on bundled digits: train vanilla and TGO+AT, export, simulate (hw_sim vs Lava), verify."""
    from rich.console import Console
    from tgo_demo import DemoPlan, run_demo
    if out.exists() and not out.is_dir():
        raise UsageError(f"output folder '{out}' is a file")
    run_demo(out, DemoPlan.quick() if quick else DemoPlan(), Console(), show_progress=not quiet)


if __name__ == "__main__":
    app()
