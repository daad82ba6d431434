"""`tgo export`: checkpoint -> model.net (Loihi fixed point, netx), model.onnx, model.nir and export.json.

Everything is written into a temporary folder that becomes the output folder in one rename at the end, so
an error (an unmappable layer, a weight that cannot be represented) leaves no half-written output behind.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

from export.calibrate import calibrate
from export.evaluate import evaluate_export
from export.hardware import DEFAULT_PROFILE, hardware_report, load_profile
from export.netx_writer import PLAIN_NETX_NOTE, check_noise_seed, readout_step, write_net
from export.network import describe_network
from export.nir_export import CONVENTION, write_nir
from export.onnx_export import OPSET, write_onnx
from export.quantize import quantize
from hw_sim.netfile import load_net
from tgo_errors import UsageError
from tgo_files import atomic_dir, check_output_dir, write_json_atomic
from tgo_provenance import provenance
from train.checkpoint import file_sha256, load_checkpoint, resolve_checkpoint_path
from train.data import load_dataset

FORMATS = ("net", "onnx", "nir")
FILES = {"net": "model.net", "onnx": "model.onnx", "nir": "model.nir"}
HARDWARE_FILE = "hardware.json"
CALIBRATION_SAMPLES = 256   # training images used to pick the scales
ONNX_CHECK_SAMPLES = 64     # test images run in onnxruntime vs PyTorch


def parse_formats(text: str) -> Tuple[str, ...]:
    """'net,onnx' -> ('net', 'onnx'); unknown or empty selections are a UsageError."""
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise UsageError(f"--format: choose a comma-separated subset of {','.join(FORMATS)}, got '{text}'")
    return chosen


def _check_out_dir(out_dir: Path, checkpoint: Path) -> None:
    """The output folder is replaced as a whole: refuse anything but a new, empty or earlier export folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"output folder '{out_dir}' is a file")
    check_output_dir(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "export.json").is_file():
        raise UsageError(f"output folder '{out_dir}' holds other files (it would be replaced): choose a new folder")
    if out_dir.resolve() in checkpoint.resolve().parents:
        raise UsageError(f"output folder '{out_dir}' contains the checkpoint: choose another folder")


def export_checkpoint(checkpoint: Path, out_dir: Path, formats: Sequence[str] = FORMATS, seed: int = 0,
                      input_scale: Optional[int] = None, profile: str = DEFAULT_PROFILE,
                      stage: Callable[[str], None] = lambda _: None) -> Dict[str, object]:
    """Export `checkpoint` (file or run folder) into `out_dir`; returns the report written to export.json.

    formats: subset of FORMATS. seed: threshold-noise seed written to the .net (uint32). input_scale: Q in
    1..255 (None: chosen by the quantizer). profile: chip profile of hardware.json (export/profiles/).
    `stage` is called with a short description before each step.
    """
    formats = parse_formats(",".join(formats))
    path = resolve_checkpoint_path(checkpoint)
    _check_out_dir(Path(out_dir), path)
    check_noise_seed(seed)
    chip = load_profile(profile)
    ckpt = load_checkpoint(path)
    cfg = ckpt.config
    model = ckpt.build_model("cpu")
    layers = describe_network(model, ckpt.input_shape)
    stage("loading data")
    data = load_dataset(cfg.data)
    ckpt.check_data(data, checkpoint)
    export_cfg = {"formats": list(formats), "seed": seed, "input_scale": input_scale, "profile": profile}
    report: Dict[str, object] = {
        "source": {"checkpoint": str(path), "sha256": file_sha256(path), "epoch": ckpt.epoch},
        "config": {"checkpoint": cfg.to_dict(), "export": export_cfg, "provenance": provenance("cpu")},
        "files": [FILES[f] for f in formats]}
    qnet = None
    if "net" in formats:
        stage("calibrating and quantizing")
        qnet = quantize(layers, calibrate(model, data.train_x[:CALIBRATION_SAMPLES]), cfg.model.timesteps,
                        ckpt.input_shape, input_scale)
        export_cfg["input_scale"] = qnet.input_scale
        report["quantization"] = {"input_scale": qnet.input_scale, "input_message_bits": qnet.input_message_bits,
                                  "readout_step": readout_step(qnet), "layers": [q.report() for q in qnet.layers]}
    with atomic_dir(out_dir) as tmp:
        if qnet is not None:
            stage("writing model.net")
            write_net(tmp / FILES["net"], qnet, json.dumps(report["config"], sort_keys=True), seed)
            stage("float vs fixed point on the test set")
            report["evaluation"] = evaluate_export(model, tmp / FILES["net"], qnet, data.test_x, data.test_y,
                                                   cfg.tgo.delta)
            stage("hardware report")
            hardware = hardware_report(load_net(tmp / FILES["net"]), chip)
            write_json_atomic(tmp / HARDWARE_FILE, hardware)
            report["hardware"] = {"file": HARDWARE_FILE, "profile": profile, "cores": hardware["cores"],
                                  "fits": hardware["fits"], "problems": hardware["problems"]}
            if any(q.noise_sigma for q in qnet.layers):
                report["lava"] = {"plain_netx_ignores_noise": True, "note": PLAIN_NETX_NOTE}
        if "onnx" in formats:
            stage("writing model.onnx")
            diff = write_onnx(model, tmp / FILES["onnx"], data.test_x[:ONNX_CHECK_SAMPLES])
            report["onnx"] = {"opset": OPSET, "graph": "unrolled T steps, noise off: image -> logits",
                              "checked_samples": ONNX_CHECK_SAMPLES, "max_abs_diff_vs_torch": diff}
        if "nir" in formats:
            stage("writing model.nir")
            write_nir(tmp / FILES["nir"], layers, ckpt.input_shape, cfg.neuron.dt, cfg.model.timesteps)
            report["nir"] = {"convention": CONVENTION, "dt": cfg.neuron.dt}
        write_json_atomic(tmp / "export.json", report)
    return report
