"""hw_sim: run a .net file bit-exactly, batched in torch (`simulator`) or in Lava's fixed-point simulator
(`lava_runner`, the reference). `netfile` reads and validates the file, `fixed_point` holds Loihi's number
formats and wraps, `neurons` one integer step per neuron type (CUBA, sigma-delta, resonate-and-fire), `prng`
the threshold-noise generator, `lava_neuron` our Lava process and model, `lava` the public Lava-native loader
(`from hw_sim.lava import load_network`). Only `lava`, `lava_runner`, `lava_record` and `lava_neuron` import
Lava."""
