"""One integer step per neuron type netx builds in fixed point, each a function of (state, input, params, ops)
returning (output, state) over NamedTuple states, like Norse's `*_step` functions.

The tensor operations are a parameter (`ops.NeuronOps`): `ops.ExactOps` is Lava's integer arithmetic
(integers held in float64, reusing the state's memory: the simulator's fast path); the differentiable twin
(`robust.twin`) passes straight-through operations with a surrogate spike. `cuba` is Loihi's CUBA LIF
(netx types CUBA/LOIHI), `sigma_delta` the sigma-delta neurons (netx type SDNN: Delta, SigmaDelta, Sigma),
`resonator` Lava's resonate-and-fire Izhikevich neuron (netx RF types behind complex weights).
`cuba_triton` runs a whole CUBA layer's window in one Triton kernel (CUDA; needs Triton), `cuba_numba` in one
numba loop (CPU; needs numba).
"""
