"""`StochasticLIF`: Loihi's CUBA LIF with a seeded integer noise term in the threshold comparison."""
from __future__ import annotations

from typing import Tuple

from lava.proc.lif.process import LIFReset


class StochasticLIF(LIFReset):
    """LIFReset whose spike test is `v + noise > vth << 6`, noise from `hw_sim.prng` (`tgo-hash32-gauss-v1`).

    The extra parameters travel in `proc_params`: noise_sigma (std, state units), noise_seed (uint32) and
    noise_layer (the `/layer/<i>` index). The noise counter is the step within the sample, 0 at each state
    reset (`reset_interval`, `reset_offset` as in LIFReset), so back-to-back samples draw the same noise.
    """

    NOISE_KEYS: Tuple[str, ...] = ("noise_sigma", "noise_seed", "noise_layer")

    def __init__(self, *, noise_sigma: int, noise_seed: int, noise_layer: int, **lif_reset_kwargs) -> None:
        super().__init__(**lif_reset_kwargs)
        for key, value in zip(self.NOISE_KEYS, (noise_sigma, noise_seed, noise_layer)):
            self.proc_params[key] = int(value)
