"""The GPU timing script runs (here on the CPU, tiny) and prints its two figures."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_train_script_runs_tiny_on_cpu():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_train.py"), "--device", "cpu", "--width", "1",
                             "--batch", "2", "--repeats", "1", "--warmup", "1"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    ratio = re.search(r"TGO/vanilla (\d+\.\d+)x", result.stdout)
    epoch = re.search(r"CIFAR-10 epoch \(50000 images, 25000 steps\) with TGO: (\d+\.\d) s", result.stdout)
    assert ratio and epoch and float(ratio.group(1)) > 0 and float(epoch.group(1)) > 0, result.stdout
