"""Translate images of any size with a trained generator: from a run directory, a model
directory of .keras generators, an exported SavedModel, a .tflite file or a PyTorch .pth
generator, in memory or file to file. One job per module:

    options   what `translate` accepts: directions, output formats, sizes (stdlib only)
    tiling    Translator: any size in and out, batched and tiled within a memory budget
    loaders   a Translator from a generator in memory or a model at a path (load_translator)
    files     translate_files: plan outputs, read inputs, write each output whole

The names below are imported from their module on first use, so that importing this
package (as the command line does for its option lists) loads no TensorFlow.
"""

from tfcyclegan.inference.options import DIRECTIONS, IMAGE_FORMATS, MIN_SIDE, MULTIPLE
from tfcyclegan.util import lazy

_LAZY = {
    "PASS_BYTES": "tiling",
    "LIVE_COPIES": "tiling",
    "BLEND_ROWS": "tiling",
    "pass_bytes_per_pixel": "tiling",
    "pixel_budget": "tiling",
    "Translator": "tiling",
    "IMAGE_SPEC": "loaders",
    "keras_translator": "loaders",
    "load_translator": "loaders",
    "TranslateOutcome": "files",
    "check_output_dir": "files",
    "plan_outputs": "files",
    "translate_files": "files",
}
__all__ = ["DIRECTIONS", "IMAGE_FORMATS", "MIN_SIDE", "MULTIPLE", *_LAZY]

__getattr__, __dir__ = lazy.attach(__name__, globals(), _LAZY)
