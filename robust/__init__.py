"""Adversarial evaluation of spiking (or any) classifiers: `tgo attack`.

A model is anything that maps images x [batch, C, H, W] in [0, 1] to logits [batch, classes]: an
`nn.Module` for the gradient attacks, any callable for the black-box Square. Stochastic models are attacked
through their expectation (`robust.attacks.eot`) and scored over repeated noisy forwards.

Modules: `attacks/` (one attack per file behind `attacks.base.Attack`, built by name in `attacks`),
`surrogates` (which surrogate gradient an attack uses), `target` (adapters and probes of the attacked model),
`evaluate` (per-sample worst case over attacks, surrogates and eps), `checks` (red flags), `report`
(attack.json, attack.md, attack.png), `options` and `command` (`tgo attack`). None of these imports lava:
the fixed-point twin of `tgo verify` is attacked with the same suite.
"""
