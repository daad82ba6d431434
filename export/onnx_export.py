"""ONNX export of the float model: the deterministic network (threshold noise off) unrolled over its T steps,
image [batch, C, H, W] in [0, 1] -> logits [batch, classes], with a dynamic batch axis.

The graph is traced from `Unrolled`, which runs the same modules and the same `noisy_lif_step` as
`SpikingNetwork` step by step (direct encoding: the image enters every step); each LIF state starts as
zeros derived from the first step's input (h * 0), so that no batch size is baked into the graph. It is checked with `onnx.checker`
and against PyTorch in onnxruntime.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import List, Optional

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from export.calibrate import deterministic
from train.models import SpikingNetwork
from train.neuron import LIFState, NoisyLIF, noisy_lif_step

OPSET = 17


class Unrolled(nn.Module):
    """`model` (direct encoding, noise off) as a step-major loop: x [batch, C, H, W] -> logits [batch, classes]."""

    def __init__(self, model: SpikingNetwork):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states: List[Optional[LIFState]] = [None] * len(self.model.lif_layers())
        total = 0.0
        for _ in range(self.model.timesteps):
            h, k = x, 0
            for module in self.model.body:
                if not isinstance(module, NoisyLIF):
                    h = module.module(h)
                    continue
                current, bias = module.affine(h[None])  # batch norm (eval statistics) as in NoisyLIF
                state = LIFState(h * 0.0, h * 0.0) if states[k] is None else states[k]
                h, states[k], _ = noisy_lif_step(current[0], state, module.syn_decay, module.mem_decay, module.v_th,
                                                 module.surrogate, module.alpha, bias)
                k += 1
            total = total + h
        return self.model.readout((total / self.model.timesteps).flatten(1))


def write_onnx(model: SpikingNetwork, path: Path, check_inputs: torch.Tensor) -> float:
    """Write the unrolled graph to `path`; returns the max |logit difference| onnxruntime vs PyTorch on
    `check_inputs` [N, C, H, W] (the original model, noise off)."""
    with deterministic(model), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # norse's heaviside builds a constant 0.0
        buffer = io.BytesIO()
        torch.onnx.export(Unrolled(model).eval(), (check_inputs[:2],), buffer, input_names=["image"],
                          output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=OPSET)
        graph = onnx.load_from_string(buffer.getvalue())
        onnx.checker.check_model(graph, full_check=True)
        expected = model(check_inputs).numpy()
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"image": check_inputs.numpy().astype(np.float32)})[0]
    Path(path).write_bytes(buffer.getvalue())
    return float(np.abs(got - expected).max())
