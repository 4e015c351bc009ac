"""The AWS side of the package: botocore clients (:mod:`.clients`), a DynamoDB table on a botocore
client (:mod:`.dynamodb`) and the number codec every stored item goes through (:mod:`.codec`).

Imports only the core of :mod:`classifier` (errors) and botocore; the API and MLOps layers build on it.
"""

from classifier.aws.clients import (
    SERVICES,
    TRACED_LIBRARIES,
    client,
    close_connections,
    download_file,
    is_missing,
    local_copy,
    object_exists,
    reset_clients,
    s3,
    session,
    table,
    upload_file,
)
from classifier.aws.ranged import S3RangeReader

__all__ = [
    "S3RangeReader",
    "SERVICES",
    "TRACED_LIBRARIES",
    "client",
    "close_connections",
    "download_file",
    "is_missing",
    "local_copy",
    "object_exists",
    "reset_clients",
    "s3",
    "session",
    "table",
    "upload_file",
]
