"""Input limits of the preprocessing contract, defined once.

The API's payload limits (API Gateway 10 MB, Lambda 6 MB) are stricter than ``MAX_IMAGE_BYTES``
for base64 bodies; these figures bound what the decoder will ever be asked to do, whatever the
entry point (API, training-data upload, dataset zip).
"""

IMAGE_SIZE = 32  # model input side, pixels
CHANNELS = 3
MAX_IMAGE_BYTES = 8 * 1024 * 1024  # encoded size
MAX_IMAGE_PIXELS = 40_000_000  # width x height, checked before decoding (decompression bombs)
MIN_IMAGE_SIDE = 16  # pixels; smaller images carry too little to classify
SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP"})
