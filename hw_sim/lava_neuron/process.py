"""`StochasticLIF`: Loihi's CUBA LIF with a seeded integer noise term in the threshold comparison."""
from __future__ import annotations

from typing import Dict

from lava.magma.core.process.variable import Var
from lava.proc.lif.process import LIFReset

from hw_sim import prng

GENERATORS: Dict[str, int] = {prng.NAME: 1}  # noise_prng Var value of each known generator (0: none)


class StochasticLIF(LIFReset):
    """LIFReset whose spike test is `v + noise > vth << 6`, noise from `hw_sim.prng` (`tgo-hash32-gauss-v1`).

    Extra Vars, one value per population like du, dv and vth:
    - noise_sigma: std of the noise, state units (units of v), 0..2^23 - 1;
    - noise_seed: the generator's key (uint32);
    - noise_layer: the `/layer/<i>` index of the population in its .net file (a counter of the generator);
    - noise_prng: which generator, `GENERATORS[name]`.
    The step counter of the generator is the step within the sample: 0 at each state reset (`reset_interval`,
    `reset_offset` as in LIFReset), so samples run back to back draw the same noise.
    """

    def __init__(self, *, noise_sigma: int, noise_seed: int, noise_layer: int, noise_prng: str = prng.NAME,
                 **lif_reset_kwargs) -> None:
        if noise_prng not in GENERATORS:
            raise ValueError(f"unknown noise generator {noise_prng!r} (known: {', '.join(GENERATORS)})")
        super().__init__(**lif_reset_kwargs)
        self.noise_sigma = Var(shape=(1,), init=int(noise_sigma))
        self.noise_seed = Var(shape=(1,), init=int(noise_seed))
        self.noise_layer = Var(shape=(1,), init=int(noise_layer))
        self.noise_prng = Var(shape=(1,), init=GENERATORS[noise_prng])
