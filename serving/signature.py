"""The contract between the pushed SavedModel and its clients (gRPC, REST, tests)."""

SIGNATURE = "serving_default"
INPUT = "images"                 # tf.string [batch]: encoded JPEG/PNG/BMP bytes
OUTPUTS = {                      # name -> TensorFlow dtype name
    "probabilities": "DT_FLOAT",  # [batch, num_classes]
    "class_id": "DT_INT32",       # [batch]
    "class_name": "DT_STRING",    # [batch]
}
INPUT_DTYPE = "DT_STRING"
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
