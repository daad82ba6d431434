"""What produced an artifact: tgo's git commit, library versions, torch threads and device, recorded in every
artifact's config.

Numbers depend on these (a CPU reduction over 1 or 2 threads rounds differently), so a result that does not
reproduce can be traced to the one that changed. Versions come from package metadata (torch's from torch itself,
with its CUDA build tag): lava is never imported.
"""
from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Dict, Optional

PACKAGES = ("torch", "norse", "lava-nc", "lava-dl", "numpy")


def _version(package: str) -> Optional[str]:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def tgo_commit() -> Optional[str]:
    """The git commit of this tgo checkout, with '+modified' when tracked files differ from it; None when tgo
    does not run from a git checkout (an installed wheel) or git is missing."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        modified = subprocess.run(["git", "-C", str(here), "diff", "--quiet", "HEAD", "--"], capture_output=True,
                                  timeout=10).returncode == 1
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+modified" if modified else "")


def provenance(device: str = "cpu") -> Dict[str, object]:
    """{'tgo_commit', 'python', 'torch', 'norse', 'lava-nc', 'lava-dl', 'numpy' (versions; None if absent),
    'torch_threads', 'device', 'machine'} for a computation on `device`."""
    import torch
    return {"tgo_commit": tgo_commit(), "python": platform.python_version(),
            **{name: _version(name) for name in PACKAGES}, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "device": str(device), "machine": platform.machine()}
