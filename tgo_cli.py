"""`tgo`: the command-line entry point. Each command is a thin wrapper over a package function.

User mistakes raise `tgo_errors.UsageError`; `user_errors` turns them into one line on stderr and exit code 2.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, List, Optional

import typer

from tgo_errors import UsageError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Threshold Guarding Optimization: train robust SNNs, export to Loihi, verify bit-exactly.")


@app.callback()
def main() -> None:
    """Threshold Guarding Optimization: train robust SNNs, export to Loihi, verify bit-exactly."""


def user_errors(command: Callable) -> Callable:
    """Run `command`; a UsageError becomes `error: ...` on stderr and exit code 2 (never a traceback)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UsageError as err:
            typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
            raise typer.Exit(2)
    return wrapper


def _int_list(text: str, name: str) -> List[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{name} must be comma-separated integers, got '{text}'") from None


def _defaults():
    from train.config import ExperimentConfig
    return ExperimentConfig()


_DEF = _defaults()  # option defaults come from the config dataclasses


@app.command()
@user_errors
def train(
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: checkpoint.pt, config.json, metrics.jsonl."),
    dataset: str = typer.Option(_DEF.data.dataset, help="digits | mnist5k (bundled) | mnist | fashion-mnist | cifar10 | cifar100 (--data-dir)."),
    data_dir: Optional[Path] = typer.Option(None, help="Folder with torchvision-format files for folder datasets."),
    arch: str = typer.Option(_DEF.model.arch, help="mlp | convnet (Loihi-exportable) | vgg11 | wrn16."),
    hidden: str = typer.Option(",".join(map(str, _DEF.model.hidden)), help="mlp widths / convnet channels, comma-separated."),
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
    device: str = typer.Option(_DEF.optim.device, help="cpu | cuda | auto."),
    adv_train: str = typer.Option(_DEF.adv.kind, help="Adversarial training: none | fgsm | pgd."),
    adv_eps: float = typer.Option(_DEF.adv.eps, help="Adversarial training L-inf budget (input units [0, 1])."),
    adv_steps: int = typer.Option(_DEF.adv.steps, help="PGD steps for adversarial training."),
    resume: bool = typer.Option(False, help="Continue the checkpoint in --out exactly where it stopped."),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Train a spiking network with TGO (or an ablation) and print its clean accuracy and near-threshold fraction."""
    from train.config import apply_method
    from train.trainer import train as run_training
    cfg = _defaults()
    cfg.data.dataset, cfg.data.data_dir = dataset, None if data_dir is None else str(data_dir)
    cfg.model.arch, cfg.model.hidden = arch, _int_list(hidden, "--hidden")
    cfg.model.timesteps, cfg.model.encoding = timesteps, encoding
    cfg.tgo.method, cfg.tgo.lambda_max, cfg.tgo.delta, cfg.tgo.sigma = method, lambda_max, delta, sigma
    cfg.neuron.noise_at_inference, cfg.neuron.surrogate, cfg.neuron.alpha = noise_at_inference, surrogate, alpha
    cfg.optim.epochs, cfg.optim.batch_size, cfg.optim.lr = epochs, batch_size, lr
    cfg.optim.seed, cfg.optim.device = seed, device
    cfg.adv.kind, cfg.adv.eps, cfg.adv.steps = adv_train, adv_eps, adv_steps
    cfg.validate()
    metrics = run_training(apply_method(cfg), out, resume=resume, show_progress=not quiet, log=typer.echo)
    typer.echo(f"clean test accuracy {metrics['test_accuracy']:.4f}  near-threshold fraction "
               f"(|V - V_th| < {metrics['delta']}) {metrics['near_threshold_fraction']:.4f}  -> {out}")


if __name__ == "__main__":
    app()
