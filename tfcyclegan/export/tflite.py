"""TFLite conversion: one .tflite file per direction, converted from the export's
SavedModel, float32 or quantized (float16, dynamic-range int8, or int8 weights and
activations calibrated on source-domain images)."""

import re
import shutil
import warnings

import tensorflow as tf

from tfcyclegan.export import savedmodel
from tfcyclegan.models.export_format import tflite_file
from tfcyclegan.util import report
from tfcyclegan.util.errors import UserError, first_line

# What every .tflite file takes and gives (metadata.json's "io").
IO = f"float32 [-1, 1] {savedmodel.ANY_SIZE}"

# TFLite ops int8 leaves in float32: the instance-norm arithmetic and the residual sums.
# One int8 scale per tensor cannot serve channels of very different variance. Measured
# on a trained 9-block generator at 256 x 256 (docs/export.md): all-int8 26.4 dB in
# 0.98 s; these in float32 32.3 dB in 0.65 s (they run in XNNPACK). Adding
# TRANSPOSE_CONV would reach 37.7 dB but runs a hybrid kernel, 4x slower.
INT8_FLOAT_OPS = ["MEAN", "SQUARED_DIFFERENCE", "RSQRT", "SUB", "MUL", "ADD"]


def convert_tflite(savedmodel_dir, direction, quantize="none", calibration=None):
    """The .tflite bytes of one endpoint of a SavedModel from write_savedmodel.

    Height and width stay dynamic. int8 quantizes the weights and activations of every
    convolution, calibrated on `calibration` (float32 [-1, 1] images of the source
    domain at the training size), keeps INT8_FLOAT_OPS in float32, and keeps float32
    input and output, so callers feed the same arrays as to every other export.
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel_dir), signature_keys=[direction])
    try:
        return _convert(converter, quantize, calibration)
    except Exception as error:
        # tf.lite does not export ConverterError; its text starts with MLIR locations
        # ("Could not translate MLIR to FlatBuffer.<unknown>:0: error: loc(callsite(...")
        # and the reason, once on stderr, is hidden with TensorFlow's C++ log.
        if type(error).__name__ != "ConverterError":
            raise
        raise UserError(
            f"TFLite conversion of {direction} (--quantize {quantize}) failed: {_converter_reason(error)}; "
            "export --format savedmodel instead, or try another --quantize"
        ) from None


def _converter_reason(error):
    """The converter's own words for why it failed, in one line."""
    reasons = [e.error_message.splitlines()[0] for e in getattr(error, "errors", ()) if e.error_message.strip()]
    if not reasons:
        lines = [line for line in str(error).splitlines() if "error:" in line]
        if not lines:
            return first_line(error) if str(error).strip() else "no reason given"
        match = re.search(r"error: (?:loc\(.*\): )?(.+)", lines[0])
        reasons = [match.group(1) if match else lines[0]]
    return "; ".join(dict.fromkeys(reasons))


def _convert(converter, quantize, calibration):
    if quantize == "none":
        return converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize != "int8":
        return converter.convert()

    def representative():
        for image in calibration:
            yield [image[None]]

    converter.representative_dataset = representative
    # Selective quantization is what the quantization debugger provides; it runs the
    # deprecated tf.lite.Interpreter internally, whose warning says nothing to our users.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated", category=UserWarning)
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=representative,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=INT8_FLOAT_OPS),
        )
        return debugger.get_nondebug_quantized_model()


def write_tflite(generator_g, generator_f, folder, quantize, samples, log=report.note):
    """One .tflite file per direction of `samples` in `folder` (tflite_file names them),
    converted from a scratch SavedModel; `samples[direction][0]` calibrates int8."""
    scratch = folder / ".savedmodel"
    savedmodel.write_savedmodel(generator_g, generator_f, scratch)
    for direction in samples:
        log(f"converting {direction} to TFLite ({quantize})")
        blob = convert_tflite(scratch, direction, quantize, samples[direction][0])
        (folder / tflite_file(direction)).write_bytes(blob)
    shutil.rmtree(scratch)
