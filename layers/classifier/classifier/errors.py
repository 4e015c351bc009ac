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
