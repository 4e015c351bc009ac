"""Domain errors. Each carries a stable machine-readable ``code`` and the HTTP status the API
answers with, so one exception handler maps every error without matching message text."""


class ClassifierError(Exception):
    """Base class of every error the package raises on purpose."""

    code = "classifier_error"
    http_status = 400


class InvalidImageError(ClassifierError):
    """The bytes cannot become a model input under the preprocessing contract."""

    code = "invalid_image"


class EmptyImageError(InvalidImageError):
    code = "empty_image"


class UndecodableImageError(InvalidImageError):
    code = "undecodable_image"


class UnsupportedFormatError(InvalidImageError):
    code = "unsupported_format"
    http_status = 415


class ImageTooLargeError(InvalidImageError):
    code = "image_too_large"
    http_status = 413


class ImageTooSmallError(InvalidImageError):
    code = "image_too_small"


class InputContractError(ClassifierError, TypeError):
    """An array handed to the model runtime breaks its uint8 input contract."""

    code = "input_contract"


class DatasetError(ClassifierError):
    """A dataset source cannot be read at all (missing, wrong kind of file)."""

    code = "invalid_dataset"


class ModelLoadError(ClassifierError):
    """A model artifact cannot be loaded (corrupt, wrong checksum, wrong signature)."""

    code = "model_load_failed"
    http_status = 500


class RequestError(ClassifierError):
    """The HTTP request itself is wrong (body, content type, parameters), before any image is read."""

    code = "bad_request"


class EmptyBodyError(RequestError):
    code = "empty_body"


class UnsupportedMediaTypeError(RequestError):
    code = "unsupported_media_type"
    http_status = 415


class InvalidBase64Error(RequestError):
    code = "invalid_base64"


class InvalidJsonError(RequestError):
    code = "invalid_json"


class RequestShapeError(RequestError):
    """Well-formed JSON or multipart whose fields are not what the route takes."""

    code = "invalid_request"


class InvalidParameterError(RequestError):
    """A query or path parameter out of its range or format (``top_k``, ``limit``, ``cursor``)."""

    code = "invalid_parameter"


class PayloadTooLargeError(RequestError):
    code = "payload_too_large"
    http_status = 413


class TooManyImagesError(PayloadTooLargeError):
    code = "too_many_images"


class ResourceNotFoundError(ClassifierError):
    """No such route, prediction or other resource."""

    code = "not_found"
    http_status = 404


class InvalidRecordError(ClassifierError, ValueError):
    """A prediction record cannot be stored as it is (NaN or infinity, a type DynamoDB cannot hold)."""

    code = "invalid_record"
    http_status = 500


class RegistryError(ModelLoadError):
    """The model registry's pointer or version item is missing a field or malformed."""

    code = "registry_error"


class UploadRefusedError(ClassifierError):
    """A training-data zip refused as a whole (not a zip, too many entries, too large)."""

    code = "upload_refused"


class ForbiddenError(ClassifierError):
    """The caller's key may not use this route (a client key on an operator route)."""

    code = "forbidden"
    http_status = 403


class ConflictError(ClassifierError):
    """The request conflicts with the current state (a retraining job already running)."""

    code = "conflict"
    http_status = 409


def error_body(error: ClassifierError) -> dict:
    """The API's error document: ``{"error": {"code": ..., "message": ...}}``."""
    return {"error": {"code": error.code, "message": str(error)}}
