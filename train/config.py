"""Configuration dataclasses. The whole `ExperimentConfig` is saved with every checkpoint (as JSON)."""
from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from tgo_errors import UsageError

METHODS = ("vanilla", "mc", "nlif", "tgo")  # the paper's ablation: no TGO, membrane constraint only, noisy LIF only, both
ARCHS = ("mlp", "convnet", "pooled", "vgg11", "wrn16")
AMP_MODES = ("off", "bf16")  # bf16: autocast the synaptic products only (neurons, noise and loss stay float32)
ENCODINGS = ("direct", "rate")
ADV_KINDS = ("none", "fgsm", "pgd")
DEVICES = ("cpu", "cuda", "auto")         # or cuda:N
SEED_MAX = (1 << 63) - 1           # torch generators take 64-bit seeds; epoch seeds stay below 2^63
SPLIT_SEED_MAX = (1 << 32) - 1     # scikit-learn's random_state range
MAX_EPOCHS, MAX_ADV_STEPS = 1_000_000, 10_000  # beyond these a run never ends: a typo, not a plan
MAX_THREADS = 4096
MAX_WIDTH = 1 << 16  # vgg11 base width: at 2^16 channels its weights alone exceed any device's memory
MAX_HIDDEN = 1 << 24  # far wider layers overflow torch's int64 storage sizes (out x in x bytes); the memory
                      # check (train.budget) refuses much narrower ones, saying how many GiB they would need


@dataclass
class DataConfig:
    dataset: str = "digits"
    data_dir: Optional[str] = None      # folder for torchvision datasets (MNIST, Fashion-MNIST, CIFAR)
    test_fraction: float = 0.25          # bundled sets only: held-out stratified split
    split_seed: int = 0                  # bundled sets only: the split is fixed by this seed, not by the run seed


@dataclass
class NeuronConfig:
    """Norse LIF parameters (units: 1/s, s, and membrane units with v_leak = v_reset = 0)."""
    tau_syn_inv: float = 200.0
    tau_mem_inv: float = 100.0
    dt: float = 1e-3
    v_th: float = 1.0
    sigma: float = 0.0                  # std of the Gaussian threshold noise (set from tgo.sigma by the method)
    noise_at_inference: bool = True     # the deployed neuron is stochastic, so noise stays on in eval() by default
    surrogate: str = "superspike"       # see train.surrogate.SURROGATES
    alpha: float = 2.0                  # surrogate sharpness (in 1/membrane units)


@dataclass
class ModelConfig:
    arch: str = "mlp"
    hidden: List[int] = field(default_factory=lambda: [128])   # mlp: hidden widths; convnet, pooled: channels
    width: int = 64                      # vgg11: base channel width (the paper's: 64)
    timesteps: int = 8
    encoding: str = "direct"


@dataclass
class TGOConfig:
    method: str = "tgo"
    lambda_max: float = 8.0              # weight of sum_l C_l at the end of the ramp (C_l is a per-neuron mean)
    delta: float = 0.3                   # half-width of the guarded band around the threshold (membrane units)
    sigma: float = 0.15                  # NLIF noise std (membrane units) for methods nlif and tgo
    ramp_epochs: Optional[int] = None    # cosine ramp length; None = over all epochs


@dataclass
class AdvTrainConfig:
    kind: str = "none"                   # none | fgsm | pgd
    eps: float = 0.1                     # L-inf, input units [0, 1]
    steps: int = 5                       # pgd only
    step_size: Optional[float] = None    # pgd only; None = 2.5 * eps / steps


@dataclass
class OptimConfig:
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-2
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"                 # cpu | cuda | cuda:N | auto
    amp: str = "off"                     # off | bf16 (synaptic products only; see AMP_MODES)
    threads: int = 0                     # torch CPU threads; 0 = this machine's default, resolved when training starts


@dataclass
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    neuron: NeuronConfig = field(default_factory=NeuronConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tgo: TGOConfig = field(default_factory=TGOConfig)
    adv: AdvTrainConfig = field(default_factory=AdvTrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: Dict[str, Any]) -> "ExperimentConfig":
        """Rebuild from `to_dict()` output; unknown or missing fields are a UsageError."""
        try:
            return cls(**{name: kind(**raw[name]) for name, kind in _SECTIONS.items()})
        except (KeyError, TypeError, AttributeError) as err:
            raise UsageError(f"configuration is not a tgo ExperimentConfig ({err})") from None

    def validate(self) -> "ExperimentConfig":
        """Check the whole config (types, finiteness, ranges, names); raise UsageError naming the first bad value.

        The one check for configs from flags, from checkpoints and from files alike.
        """
        for name, section in _SECTIONS.items():
            _check_types(name, getattr(self, name), section)
        from train.surrogate import SURROGATES  # lazily: the CLI reads the defaults without loading torch
        d, n, m, t, a, o = self.data, self.neuron, self.model, self.tgo, self.adv, self.optim
        checks = [
            (m.arch in ARCHS, f"unknown architecture '{m.arch}' (choose from {', '.join(ARCHS)})"),
            (m.encoding in ENCODINGS, f"unknown encoding '{m.encoding}' (choose from {', '.join(ENCODINGS)})"),
            (t.method in METHODS, f"unknown method '{t.method}' (choose from {', '.join(METHODS)})"),
            (a.kind in ADV_KINDS, f"unknown adversarial training '{a.kind}' (choose from {', '.join(ADV_KINDS)})"),
            (o.amp in AMP_MODES, f"unknown --amp '{o.amp}' (choose from {', '.join(AMP_MODES)})"),
            (1 <= m.width <= MAX_WIDTH, f"width must be in [1, {MAX_WIDTH}], got {m.width}"),
            (n.surrogate in SURROGATES, f"unknown surrogate '{n.surrogate}' (choose from {', '.join(SURROGATES)})"),
            (m.timesteps >= 1, f"timesteps must be >= 1, got {m.timesteps}"),
            (all(1 <= h <= MAX_HIDDEN for h in m.hidden) and len(m.hidden) >= 1,
             f"hidden sizes must be in [1, {MAX_HIDDEN}], got {m.hidden}"),
            (n.sigma >= 0 and t.sigma >= 0, f"sigma must be >= 0, got {min(n.sigma, t.sigma)}"),
            (n.v_th > 0, f"v_th must be > 0, got {n.v_th}"),
            (n.alpha > 0, f"surrogate alpha must be > 0, got {n.alpha}"),
            (n.dt > 0 and n.tau_syn_inv > 0 and n.tau_mem_inv > 0, "dt, tau_syn_inv and tau_mem_inv must be > 0"),
            (n.dt * n.tau_syn_inv <= 1 and n.dt * n.tau_mem_inv <= 1,
             "dt * tau_inv must be <= 1 (a decay of more than 4096/4096 per step cannot map to Loihi)"),
            (t.lambda_max >= 0, f"lambda_max must be >= 0, got {t.lambda_max}"),
            (t.delta > 0, f"delta must be > 0, got {t.delta}"),
            (t.ramp_epochs is None or t.ramp_epochs >= 1, f"ramp_epochs must be >= 1, got {t.ramp_epochs}"),
            (0 <= a.eps <= 1, f"adversarial eps must be in [0, 1], got {a.eps}"),
            (1 <= a.steps <= MAX_ADV_STEPS, f"adversarial steps must be in [1, {MAX_ADV_STEPS}], got {a.steps}"),
            (a.step_size is None or a.step_size > 0, f"adversarial step size must be > 0, got {a.step_size}"),
            (1 <= o.epochs <= MAX_EPOCHS, f"epochs must be in [1, {MAX_EPOCHS}], got {o.epochs}"),
            (o.batch_size >= 1, f"batch size must be >= 1, got {o.batch_size}"),
            (o.lr > 0, f"learning rate must be > 0, got {o.lr}"),
            (o.weight_decay >= 0, f"weight decay must be >= 0, got {o.weight_decay}"),
            (0 <= o.seed <= SEED_MAX, f"seed must be in [0, 2^63 - 1], got {o.seed}"),
            (0 <= o.threads <= MAX_THREADS, f"threads must be in [0, {MAX_THREADS}] (0: this machine's default), "
                                            f"got {o.threads}"),
            (o.device in DEVICES or re.fullmatch(r"cuda:\d+", o.device) is not None,
             f"unknown device '{o.device}' (choose cpu, cuda, cuda:N or auto)"),
            (0 < d.test_fraction < 1, f"data 'test_fraction' must be in (0, 1), got {d.test_fraction}"),
            (0 <= d.split_seed <= SPLIT_SEED_MAX, f"data 'split_seed' must be in [0, 2^32 - 1], got {d.split_seed}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        return self

    def differences(self, other: "ExperimentConfig") -> List[str]:
        """'section.field: mine -> theirs' for every field that differs from `other`."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{section}.{key}: {value!r} -> {theirs[section][key]!r}"
                for section, values in mine.items() for key, value in values.items()
                if value != theirs[section][key]]


def _type_ok(value: Any, kind: Any) -> bool:
    """Does `value` (from JSON or flags) fit the annotation `kind`? Floats must be finite; bools are not ints."""
    origin = typing.get_origin(kind)
    if origin is typing.Union:
        return any(_type_ok(value, option) for option in typing.get_args(kind))
    if origin in (list, List):
        return isinstance(value, list) and all(_type_ok(v, typing.get_args(kind)[0]) for v in value)
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, kind)


_KIND_NAMES = {float: "a finite number", int: "an integer", bool: "true or false", str: "a string",
               type(None): "null"}


def _describe(kind: Any) -> str:
    """A type annotation in words, e.g. Optional[int] -> 'an integer or null'."""
    if typing.get_origin(kind) is typing.Union:
        return " or ".join(_describe(option) for option in typing.get_args(kind))
    if typing.get_origin(kind) in (list, List):
        return f"a list whose items are each {_describe(typing.get_args(kind)[0])}"
    return _KIND_NAMES.get(kind, getattr(kind, "__name__", str(kind)))


def _check_types(name: str, section: Any, kind: type) -> None:
    for key, annotation in typing.get_type_hints(kind).items():
        value = getattr(section, key)
        if not _type_ok(value, annotation):
            raise UsageError(f"{name}.{key} must be {_describe(annotation)}, got {value!r} "
                             f"(key '{key}' of the config's '{name}' section)")


_SECTIONS = {"data": DataConfig, "neuron": NeuronConfig, "model": ModelConfig,
             "tgo": TGOConfig, "adv": AdvTrainConfig, "optim": OptimConfig}


def apply_method(cfg: ExperimentConfig) -> ExperimentConfig:
    """Resolve `cfg.tgo.method` into the two knobs: constraint weight and neuron noise.

    vanilla: lambda_max = 0, sigma = 0; mc: sigma = 0; nlif: lambda_max = 0; tgo: both as configured.
    """
    method = cfg.tgo.method
    if method in ("vanilla", "nlif"):
        cfg.tgo.lambda_max = 0.0
    cfg.neuron.sigma = cfg.tgo.sigma if method in ("nlif", "tgo") else 0.0
    return cfg
