"""export: a trained tgo checkpoint -> `model.net` (Loihi fixed point, lava-dl netx HDF5 + docs/NETFORMAT.md's
tgo keys), `model.onnx`, `model.nir`, `hardware.json` and `export.json` (`pipeline.export_checkpoint`, CLI `tgo export`).

Modules, one job each: `network` (which layers map to netx, refuses the rest), `calibrate` (float ranges on
training data), `quantize` (per-layer scales and integers), `netx_writer` (the .net file), `evaluate` (float
vs fixed point through hw_sim), `onnx_export`, `nir_export`, `hardware` (fit, cores, energy and latency under
a chip profile from `profiles/`), `summary` (console tables), `pipeline`.
Only tests talk to Lava; this package itself never imports it (it writes HDF5 with h5py).

Deployed conventions:
- Input: graded spikes round(clip(x, 0, 1) * Q) on steps 0..T-1 (Q = /tgo/input_scale, 1..255), which
  multiply the first layer's state: its state scale is S1 * Q.
- Readout: the last layer is netx's non-spiking integrator; logits = its v at step L + T - 1 (ties: lowest
  class), v = 64 S T * float logits.
- A layer's state scale P is vThMant / v_th: v_Loihi = 64 P v, u_Loihi = 64 P d_mem i, noise_sigma = 64 P sigma.
"""
