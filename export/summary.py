"""The console summary of an export report (`export.json`) as rich tables."""
from __future__ import annotations

from typing import List

from rich.table import Table


def quantization_table(report: dict) -> Table:
    """One column per layer: S, vThMant, decays, noise, weight range, clipped fraction, the errors, what set S,
    the bounds on u and v, the folded bias and the conv groups."""
    quant = report["quantization"]
    layers = quant["layers"]
    table = Table(title=f"Loihi quantization (input scale Q = {quant['input_scale']}, "
                        f"{quant['input_message_bits']}-bit graded input)")
    table.add_column("")
    for row in layers:
        table.add_column(row["name"], justify="right")
    fields = [
        ("shape", lambda r: "x".join(map(str, r["shape"]))),
        ("scale S", lambda r: f"{r['S']:.5g}"),
        ("vThMant", lambda r: "-" if r["vThMant"] is None else str(r["vThMant"])),
        ("iDecay / vDecay", lambda r: f"{r['iDecay']} / {r['vDecay']}"),
        ("noise sigma (state)", lambda r: str(r["noise_sigma"])),
        ("weight range", lambda r: f"[{r['weight_min']}, {r['weight_max']}]"),
        ("clipped weights", lambda r: f"{r['clipped_fraction']:.2%}"),
        ("weight rel. error", lambda r: f"{r['weight_rel_error']:.2%}"),
        ("input rel. error", lambda r: f"{r['input_rel_error']:.2%}"),
        ("threshold rel. error", lambda r: f"{r['threshold_rel_error']:.1e}"),
        ("S limited by", lambda r: r["state_bound"]),
        ("u bound (wrap)", lambda r: "-" if r["u_max"] is None else f"|u| <= {r['u_max']} (weights x input)"),
        ("v bound (saturation)", lambda r: r["v_bound"] or "-"),
        ("bias (<< 6) range", lambda r: "-" if r["bias"] is None else f"[{r['bias']['min']}, {r['bias']['max']}]"),
        ("groups", lambda r: str(r["groups"])),
    ]
    for label, show in fields:
        table.add_row(label, *(show(r) for r in layers))
    return table


def evaluation_table(report: dict) -> Table:
    """Float vs fixed point (noise off): accuracy and near-threshold fraction per spiking layer."""
    ev = report["evaluation"]
    table = Table(title=f"Float vs fixed point, noise off ({ev['samples']} test samples, "
                        f"near threshold: |V - V_th| < {ev['delta']})")
    for column in ("", "float", "fixed point", "change"):
        table.add_column(column, justify="left" if not column else "right")
    rows: List[tuple] = [("accuracy", ev["float"]["accuracy"], ev["fixed"]["accuracy"])]
    rows += [(f"near threshold {name}", f, q) for name, f, q in
             zip(ev["layers"], ev["float"]["near_threshold"], ev["fixed"]["near_threshold"])]
    rows.append(("near threshold (all)", ev["float"]["near_threshold_all"], ev["fixed"]["near_threshold_all"]))
    for label, f, q in rows:
        table.add_row(label, f"{f:.4f}", f"{q:.4f}", f"{q - f:+.4f}")
    table.add_row("prediction agreement", "", f"{ev['agreement']:.4f}", "")
    if "noise_on" in ev:
        noisy = ev["noise_on"]
        f, q = noisy["float"]["accuracy"], noisy["fixed"]["accuracy"]
        table.add_row("accuracy, noise on", f"{f:.4f}", f"{q:.4f}", f"{q - f:+.4f}")
    return table


def hardware_table(report: dict) -> Table:
    """Per layer resources and cores under the report's chip profile (export.hardware), activity when measured."""
    measured = "per_inference" in report
    table = Table(title=f"Hardware: {report['chip']} (profile {report['profile']}; figures and sources in "
                        f"export/profiles/{report['profile']}.json)")
    columns = ["layer", "type", "neurons", "synapses", "nonzero", "fan-in axons", "fan-out axons", "weight bits",
               "delay", "cores (limit)"] + (["syn. ops / inf.", "spikes / inf."] if measured else [])
    for column in columns:
        table.add_column(column, justify="left" if column in ("layer", "type") else "right")
    for row in report["layers"]:
        cells = [str(row["layer"]), row["kind"], str(row["neurons"]), str(row["synapses"]),
                 str(row["synapses_nonzero"]), str(row["fan_in_axons"]), str(row["fan_out_axons"]),
                 str(row["weight_bits"]), str(row["delay"]), f"{row['cores']} ({row['cores_limited_by']})"]
        table.add_row(*cells, *([f"{row['synaptic_ops']:.0f}", f"{row['spikes']:.1f}"] if measured else []))
    fit = "fits" if report["fits"] else "DOES NOT FIT: " + "; ".join(report["problems"])
    table.caption = f"{report['cores']} cores (estimate), {fit}"
    if measured:
        inf = report["per_inference"]
        table.caption += (f"\nper inference ({inf['samples']} samples, {inf['steps']} steps): "
                          f"{inf['synaptic_ops']:.0f} synaptic ops, {inf['neuron_updates']:.0f} neuron updates, "
                          f"{inf['spikes']:.0f} spikes; estimate {inf['energy_uj']:.3g} uJ, {inf['latency_us']:.3g} us "
                          f"(per-op figures of the profile)")
    return table
