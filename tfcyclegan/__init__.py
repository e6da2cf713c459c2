"""tfcyclegan: CycleGAN (Zhu et al. 2017) in TensorFlow / Keras 3.

Names are imported on first use, so light tools (`tfcyclegan --help`, config
handling) do not pay for loading TensorFlow.
"""

import importlib

from tfcyclegan.version import __version__

_EXPORTS = {
    "CycleGAN": "tfcyclegan.core.model",
    "ResnetGenerator": "tfcyclegan.core.networks",
    "PatchDiscriminator": "tfcyclegan.core.networks",
    "InstanceNormalization": "tfcyclegan.core.networks",
    "ImagePool": "tfcyclegan.core.pool",
    "LinearDecay": "tfcyclegan.core.schedules",
    "TrainConfig": "tfcyclegan.runs.config",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tfcyclegan' has no attribute {name!r}")
