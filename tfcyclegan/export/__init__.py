"""Export a run's (or model directory's) generators as a SavedModel, TFLite files or a
Keras model directory, each verified against the Keras generators before it is kept.
One job per module:

    options     what `export` accepts: formats, quantization modes (stdlib only)
    savedmodel  write_savedmodel: one SavedModel whose endpoints take any size, float32 and uint8
    tflite      convert_tflite: a .tflite per direction, float or quantized, int8 calibrated
    samples     the images to calibrate and check on: source-domain images, or synthetic ones
    parity      the limit each export kind must reach against Keras, and the check
    pipeline    export(): options, load, write, check, metadata.json, publish

The export format's names (metadata.json, file and signature names) that the readers
share live in tfcyclegan.models.export_format, and the export folder (refuse foreign
targets, stage, swap in all or nothing) in tfcyclegan.models.publish, which `tfcyclegan
import` lands its model directories with too. The names below are imported from their module
on first use, so that importing this package (as the command line does for its option
lists) loads no TensorFlow.
"""

from tfcyclegan.export.options import FORMAT_NAMES, FORMATS, QUANTIZE
from tfcyclegan.util import lazy

_LAZY = {
    "SAVEDMODEL_DIR": "savedmodel",
    "UINT8_SPEC": "savedmodel",
    "ENDPOINTS": "savedmodel",
    "write_savedmodel": "savedmodel",
    "INT8_FLOAT_OPS": "tflite",
    "convert_tflite": "tflite",
    "CALIBRATION_COUNT": "samples",
    "VERIFY_COUNT": "samples",
    "sample_images": "samples",
    "synthetic_images": "samples",
    "LARGE_SIZE": "parity",
    "Limit": "parity",
    "PARITY": "parity",
    "psnr": "parity",
    "ExportResult": "pipeline",
    "default_output": "pipeline",
    "export": "pipeline",
}
__all__ = ["FORMATS", "FORMAT_NAMES", "QUANTIZE", *_LAZY]

__getattr__, __dir__ = lazy.attach(__name__, globals(), _LAZY)
