"""What produced an artifact: library versions, torch threads and device, recorded in every artifact's config.

Numbers depend on these (a CPU reduction over 1 or 2 threads rounds differently), so a result that does not
reproduce can be traced to the one that changed. Versions come from package metadata (torch's from torch itself,
with its CUDA build tag): lava is never imported.
"""
from __future__ import annotations

import platform
from importlib import metadata
from typing import Dict, Optional

PACKAGES = ("torch", "norse", "lava-nc", "lava-dl", "numpy")


def _version(package: str) -> Optional[str]:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def provenance(device: str = "cpu") -> Dict[str, object]:
    """{'python', 'torch', 'norse', 'lava-nc', 'lava-dl', 'numpy' (versions; None if absent), 'torch_threads',
    'device', 'machine'} for a computation on `device`."""
    import torch
    return {"python": platform.python_version(), **{name: _version(name) for name in PACKAGES},
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "device": str(device), "machine": platform.machine()}
