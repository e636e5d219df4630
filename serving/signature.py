"""The contract between the pushed SavedModel and its clients (gRPC, REST, tests)."""

SIGNATURE = "serving_default"
INPUT = "images"                 # tf.string [batch]: encoded JPEG/PNG/BMP bytes
OUTPUTS = {                      # name -> TensorFlow dtype name
    "probabilities": "DT_FLOAT",  # [batch, num_classes]
    "class_id": "DT_INT32",       # [batch]
    "class_name": "DT_STRING",    # [batch]
    "atypicality": "DT_FLOAT",    # [batch]: > 1 means unlike the training images (review it); 0 if the model has no score
}
INPUT_DTYPE = "DT_STRING"
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"

# The browser model's signature (converted to TensorFlow.js, which cannot decode JPEG in-graph):
# decoded RGB pixels, float32 [batch, height, width, 3] in 0-255, any height and width; same outputs.
BROWSER_SIGNATURE = "serving_pixels"
BROWSER_INPUT = "pixels"
