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

# API limits: what the predict and batch functions accept in one request.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload, the request body included
MAX_BATCH_IMAGES = 64  # images in one POST /predict/batch
DEFAULT_TOP_K = 3  # classes in a response's ``top_k`` unless the ``top_k`` query parameter says otherwise
DEFAULT_LIST_LIMIT = 20  # records per page of GET /predictions
MAX_LIST_LIMIT = 100
MAX_JSON_DEPTH = 32  # nesting of a JSON body; no route's document needs more than 4

# Training data: direct uploads and zip uploads of class folders.
MAX_DIRECT_TRAINING_IMAGES = 64  # images in one POST /training-data request
MAX_UPLOAD_ZIP_BYTES = 512 * 1024 * 1024  # a presigned zip upload (enforced by the presigned POST policy)
MAX_ZIP_ENTRIES = 60_000  # files in one zip: CIFAR-10's 50,000 training images fit
MAX_ZIP_UNCOMPRESSED_BYTES = 2 * 1024 * 1024 * 1024  # sum of the entries' declared sizes
MAX_ZIP_COMPRESSION_RATIO = 100  # uncompressed / compressed per entry; images barely compress
PRESIGNED_UPLOAD_SECONDS = 3600  # how long a presigned upload stays valid

# Batch jobs (POST /predict/jobs): one zip of images, or an operator's S3 prefix, classified offline.
MAX_JOB_IMAGES = 100_000  # images in one job
MAX_JOB_ZIP_BYTES = 2 * 1024 * 1024 * 1024  # the job's zip (enforced by the presigned POST policy)
MAX_JOB_UNCOMPRESSED_BYTES = (
    4 * 1024 * 1024 * 1024
)  # sum of the entries' declared sizes (images barely compress)
MAX_JOB_NAME_CHARS = 128  # a job's optional ``name``
MAX_JOB_ENTRY_NAME_CHARS = 1024  # an entry's path in the zip; a longer one is refused for that line only
DEFAULT_JOB_CHUNK_IMAGES = 250  # entries per queue message (BatchJobChunkImages in template.yaml)
MAX_JOB_CHUNK_MESSAGE_BYTES = 200 * 1024  # a chunk's message stays under SQS's 256 KiB
MAX_JOB_READ_BYTES = 64 * 1024 * 1024  # one ranged read of consecutive zip entries; larger spans are split
JOB_MODEL_BATCH = 64  # images per model call inside a chunk
JOB_RESULT_LINK_SECONDS = 3600  # how long the presigned links to a job's results stay valid
