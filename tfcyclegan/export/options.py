"""What `tfcyclegan export` accepts, as plain constants: the export formats, the TFLite
quantization modes, and what each format is called in messages.

Standard library only, so that the command line takes its choice lists from here while
`tfcyclegan --help` loads no TensorFlow.
"""

__all__ = ["FORMATS", "KIND_NAMES", "QUANTIZE"]

FORMATS = ("savedmodel", "tflite", "keras")
QUANTIZE = ("none", "float16", "dynamic", "int8")
KIND_NAMES = {"savedmodel": "SavedModel", "tflite": "TFLite", "keras": "Keras model directory"}
