"""The export format: the names that the writer (tfcyclegan.export) and the readers
(tfcyclegan.inference, evaluate) of an export share, defined once.

    <export>/metadata.json          beside every export kind (tfcyclegan.models.metadata)
    <export>/saved_model.pb         SAVEDMODEL_FILE: a SavedModel with signatures
                                    a2b, b2a (float32) and a2b_uint8, b2a_uint8
    <export>/a2b.tflite, b2a.tflite tflite_file(direction), listed in metadata's FILES_KEY

Standard library only: the CLI and the metadata readers import it.
"""

# The export formats (`tfcyclegan export --format`) and what each is called in messages.
FORMATS = ("savedmodel", "tflite", "keras")
FORMAT_NAMES = {"savedmodel": "SavedModel", "tflite": "TFLite", "keras": "Keras model directory"}

# The two directions, a2b (G, A to B) and b2a (F, B to A): the names of a SavedModel's
# float32 signatures, of a .tflite file's signature, and the keys of metadata's "files".
DIRECTIONS = ("a2b", "b2a")

# A SavedModel folder holds one of these (the text form only if written by hand).
SAVEDMODEL_FILE = "saved_model.pb"
SAVEDMODEL_TEXT_FILE = "saved_model.pbtxt"

# A .tflite file is a flatbuffer whose file identifier sits at byte offset 4.
TFLITE_SUFFIX = ".tflite"
TFLITE_MAGIC = b"TFL3"
TFLITE_MAGIC_OFFSET = 4

# The metadata key of a TFLite export that maps each direction to its file name.
FILES_KEY = "files"

# A SavedModel's uint8 signature of a direction is named direction + UINT8_SUFFIX.
UINT8_SUFFIX = "_uint8"


def tflite_file(direction):
    """The file name `tfcyclegan export --format tflite` gives the model of `direction`."""
    return f"{direction}{TFLITE_SUFFIX}"


def uint8_signature(direction):
    """The name of the SavedModel signature that translates `direction` on uint8 images."""
    return f"{direction}{UINT8_SUFFIX}"
