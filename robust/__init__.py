"""Adversarial evaluation of spiking (or any) classifiers: `tgo attack`.

A model is anything that maps images x [batch, C, H, W] in [0, 1] to logits [batch, classes]: an
`nn.Module` for the gradient attacks, any callable for the black-box Square. Stochastic models are attacked
through their expectation (`robust.attacks.eot`) and scored over repeated noisy forwards.

Modules: `attacks/` (one attack per file behind `attacks.base.Attack`, built by name in `attacks`),
`surrogates` (which surrogate gradient an attack uses), `target` (adapters and probes of the attacked model),
`evaluate` (per-sample worst case over attacks, surrogates and eps), `checks` (red flags), `report`
(attack.json, attack.md, attack.png), `options` and `command` (`tgo attack`). The adaptive engine behind
both `tgo attack` and `tgo verify`: `engine` (candidate pool, disjoint seed roles, choice and headline,
budget doubling) with `attacks/adaptive` (APGD per-row losses, surrogate sweep), `attacks/grid` (the chip's
input grid and the level search), `attacks/losses` and `seeded` (models whose noisy forwards are named by
seeds: float, hw_sim, PCG64). None of these imports lava.
"""
