"""What `translate` accepts, as plain constants: the directions, the output image
formats and the sizes the generator takes.

Standard library only, so that the command line takes its choice lists and bounds from
here while `tfcyclegan --help` loads no TensorFlow.
"""

from tfcyclegan.models.export_format import DIRECTIONS

__all__ = ["DIRECTIONS", "IMAGE_FORMATS", "MIN_SIDE", "MULTIPLE"]

# Two stride-2 convolutions: the generator maps H x W to H x W only for multiples of 4.
MULTIPLE = 4
# The residual blocks reflection-pad by 1 at a quarter of the size, which needs >= 2 pixels.
MIN_SIDE = 8
# Output image formats: name -> (PIL format, file extension, PIL save options).
IMAGE_FORMATS = {"png": ("PNG", ".png", {}), "jpg": ("JPEG", ".jpg", {"quality": 95})}
