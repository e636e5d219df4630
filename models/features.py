"""The model's contract: the names every layer agrees on.

The ExampleGen writes the raw features, the Transform reads them and writes the transformed ones, the
Trainer exports the signatures, and TF Serving clients, the Evaluator and the browser call them. This
module imports nothing of the project, so every layer can import it.
"""

# Raw features of the tf.Examples the ExampleGen writes (the curated schema declares them).
IMAGE_KEY = "image"                # bytes [1]: the encoded JPEG/PNG/BMP file
LABEL_KEY = "label"                # int64 [1]: index into the class names
LABEL_NAME_KEY = "label_name"      # bytes [1]: the class name (the Evaluator slices by it)
PATH_KEY = "source_path"           # bytes [1]: the file, relative to the data root
SOURCE_KEY = "source"              # bytes [1]: BASE_SOURCE, or the name of the lab whose reviewed cell it is
HEIGHT_KEY = "height"              # int64 [1]
WIDTH_KEY = "width"                # int64 [1]

# What the Transform gives the model: the nucleus-centred crop, float32 [size, size, 3] in [0, 1].
TRANSFORMED_IMAGE_KEY = "image_xf"

# TF Serving's signature: encoded image bytes in.
SERVING_SIGNATURE = "serving_default"
SERVING_INPUT = "images"           # tf.string [batch]: encoded JPEG/PNG/BMP/GIF/WebP bytes
SERVING_INPUT_DTYPE = "DT_STRING"

# The Evaluator's signature: serialized tf.Examples in (TFMA's ModelSpec names it).
EXAMPLES_SIGNATURE = "from_examples"
EXAMPLES_INPUT = "examples"

# The browser model's signature (converted to TensorFlow.js, which cannot decode JPEG in-graph):
# decoded RGB pixels, float32 [batch, height, width, 3] in 0-255, any height and width.
BROWSER_SIGNATURE = "serving_pixels"
BROWSER_INPUT = "pixels"

# Every signature's outputs: name -> TensorFlow dtype name.
PROBABILITIES = "probabilities"    # [batch, num_classes], in class-name order
CLASS_ID = "class_id"              # [batch]
CLASS_NAME = "class_name"          # [batch]
ATYPICALITY = "atypicality"        # [batch]: over 1 means unlike the training images (review it)
OUTPUTS = {
    PROBABILITIES: "DT_FLOAT",
    CLASS_ID: "DT_INT32",
    CLASS_NAME: "DT_STRING",
    ATYPICALITY: "DT_FLOAT",
}

# The browser signature also gives the window each answer came from, drawn for the reviewer.
CROP_BOX = "crop_box"              # int32 [batch, 4]: top, left, height, width in input pixels

# TF Serving reads warm-up requests from this file of a version folder.
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
# How the version was trained (from the start, or adapted from a blessed model to lab cells); TF Serving
# ignores it.
TRAINING_RECORD_FILE = "assets.extra/training.json"

# A result whose top probability is under this is flagged for review (the configuration may change
# it for the browser; the serving CLI takes --review-below).
DEFAULT_REVIEW_THRESHOLD = 0.8

# Where an example comes from: the base dataset, or a lab (its folder's name) for a lab's own reviewed cells.
BASE_SOURCE = "base"
LAB_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # a lab's name: its folder, its slice, its figures

# A review export (web client -> pipeline): a zip of the reviewed images in folders named by the
# reviewer's label, plus this manifest. These labels are kept in the export but never trained as a class.
REVIEW_MANIFEST = "manifest.json"
REVIEW_EXPORT_FORMAT = "bloodcell-review-export"
REVIEW_EXPORT_VERSION = 1
REVIEW_MANIFEST_MAX_BYTES = 20 * 2**20  # a larger manifest is refused unread; the browser splits exports under it
NOT_TRAINED_LABELS = ("OTHER", "NOT_A_WHITE_CELL", "UNSURE")
