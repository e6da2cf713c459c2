"""What `tfcyclegan export` accepts, as plain constants: the export formats and what each
is called in messages (defined with the export format, tfcyclegan.models.export_format),
and the TFLite quantization modes.

No TensorFlow, so that the command line takes its choice lists from here while
`tfcyclegan --help` loads none.
"""

from tfcyclegan.models.export_format import FORMAT_NAMES, FORMATS

__all__ = ["FORMATS", "FORMAT_NAMES", "QUANTIZE"]

QUANTIZE = ("none", "float16", "dynamic", "int8")
