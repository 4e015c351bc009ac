"""A seekable, read-only file over one S3 object, each ``read`` one ``GetObject`` with ``Range=``.

Batch jobs open a client's zip with :mod:`zipfile` through it: ``ZipFile`` seeks to the end for the
end-of-central-directory record and reads the central directory, so the splitter fetches a few
kilobytes to a few megabytes (about 80 bytes per entry) of a zip of up to 2 GiB, never the whole
object, and needs no /tmp space. Wrap it in ``io.BufferedReader`` when the caller makes many small
reads (zipfile does); ``gets`` counts the requests made.

``if_match`` pins the object's ETag: if the object is replaced under the same key mid-job, every
later read fails (412) instead of mixing two zips.
"""

import io

from botocore.exceptions import ClientError


class S3RangeReader(io.RawIOBase):
    def __init__(self, s3, bucket: str, key: str, *, size: int | None = None, if_match: str | None = None):
        super().__init__()
        self._s3, self.bucket, self.key, self.if_match = s3, bucket, key, if_match
        if size is None:
            head = s3.head_object(Bucket=bucket, Key=key, **({"IfMatch": if_match} if if_match else {}))
            size = int(head["ContentLength"])
            self.etag = head.get("ETag")
        else:
            self.etag = if_match
        self.size = size
        self._position = 0
        self.gets = 0  # GetObject requests made
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        position = base + offset
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def read_range(self, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (fewer at the end of the object), in one request."""
        end = min(start + length, self.size) - 1
        if length <= 0 or start >= self.size:
            return b""
        arguments = {"Bucket": self.bucket, "Key": self.key, "Range": f"bytes={start}-{end}"}
        if self.if_match:
            arguments["IfMatch"] = self.if_match
        try:
            data = self._s3.get_object(**arguments)["Body"].read()
        except ClientError as error:
            raise OSError(f"s3://{self.bucket}/{self.key} bytes {start}-{end}: {error}") from error
        self.gets += 1
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read_range(self._position, len(buffer))
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def readall(self) -> bytes:
        data = self.read_range(self._position, self.size - self._position)
        self._position += len(data)
        return data
