"""Run an exported tgo model in Lava's own simulator, threshold noise included.

    .venv/bin/python examples/lava_native.py runs/demo/tgo-export/model.net

`load_network` returns a lava-dl netx `Network` (ports `inp`, `out`) whose noisy layers are tgo's
`StochasticLIF` processes; run it with your own RunConfig and run conditions. Each sample takes one window
of `net.reset_interval` steps (L + T), at the end of which the readout's v holds the logits.
"""
import sys

import numpy as np
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc import io
from sklearn.datasets import load_digits

from hw_sim.lava import input_data, load_network

net = load_network(sys.argv[1])
images = load_digits().images[:3, None] / 16.0                    # [N, 1, 8, 8], pixels in [0, 1]
source = io.source.RingBuffer(data=input_data(net, images))        # graded input spikes, one window per image
hidden = io.sink.RingBuffer(shape=net.layers[0].out.shape, buffer=len(images) * net.reset_interval)
source.s_out.connect(net.inp)
net.layers[0].out.connect(hidden.a_in)                             # record the first hidden layer's spikes
logits = []
for _ in images:
    net.run(condition=RunSteps(num_steps=net.reset_interval), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    logits.append(net.out_layer.neuron.v.get())
spikes = hidden.data.get()                                         # [neurons, steps]
net.stop()
print("classes:", np.argmax(logits, axis=1), "hidden spikes:", int(spikes.sum()))
