"""Lava-native loading of tgo `.net` files: `load_network` builds a netx-compatible Lava process graph whose
noisy layers are our `StochasticLIF` (hw_sim/lava_neuron/); `input_data` encodes images for its `inp`."""
from hw_sim.lava.loader import StochasticNetwork, input_data, load_network

__all__ = ["StochasticNetwork", "input_data", "load_network"]
