"""bench/gpu_check.py runs end to end on the CPU (the GPU machine runs it once, without Lava)."""
import subprocess
import sys
from pathlib import Path

from tests.hw_sim_nets import LAVA_DL_NETS

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_on_the_cpu_without_lava_and_finds_everything_equal():
    command = [sys.executable, str(ROOT / "bench" / "gpu_check.py"), str(LAVA_DL_NETS / "mnist.net"),
               "--device", "cpu", "--batch", "16", "--check-batch", "4", "--repeats", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bit-equality with the CPU on 4 samples" in result.stdout
    assert result.stdout.count("bit-equal to the CPU") == 2  # both eager rows (no Triton kernel on the CPU)
    assert "Triton CUBA kernel: not on cpu" in result.stdout
    assert result.stdout.count(", exact") == 2
    assert result.stdout.strip().endswith("verdict: all equal")
