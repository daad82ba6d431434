"""hw_sim: run a .net file bit-exactly, batched in torch (`simulator`) or in Lava's fixed-point simulator
(`lava_runner`, the reference). `netfile` reads and validates the file, `fixed_point` holds Loihi's number
formats and wraps, `neurons` one integer step per neuron type (CUBA, sigma-delta), `prng` the threshold-noise generator, `lava_neuron` our Lava process and model. Only `lava_runner`,
`lava_record` and `lava_neuron` import Lava."""
