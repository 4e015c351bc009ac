"""Labelled image sets as uint8 arrays.

Three sources:
- a zip of class folders (``CLASS/NAME.jpg``, the layout of ``../shared/data/*.zip`` and of user
  uploads), from a local path or an ``s3://`` URI; every entry is decoded through
  :func:`classifier.preprocessing.decode_image`, the function serving uses;
- a tar archive (plain, gzip, bzip2 or xz) of the same class folders: the same entries in the
  same order load to the same arrays. One compressed stream packs small JPEGs far tighter than a
  zip does (``infra.devdata`` packs the shared zips so for the GPU machine);
- the official CIFAR-10 python tarball (``cifar-10-python.tar.gz``).

Bad entries (wrong folder, unknown class, broken image) are reported in ``Dataset.rejected``,
never fatal. Nothing is extracted to disk, so entry names cannot escape anywhere.
"""

import dataclasses
import hashlib
import io
import os
import pickle  # nosec B403  # only through _CifarUnpickler, which allows numpy arrays and nothing else
import tarfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path, PurePosixPath

import numpy as np

from classifier.errors import DatasetError, InvalidImageError
from classifier.labels import LABEL_INDEX, LABELS
from classifier.limits import CHANNELS, IMAGE_SIZE, MAX_IMAGE_BYTES
from classifier.preprocessing import decode_image

CIFAR_TARBALL_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch (a dict of bytes, ints, lists and numpy arrays) and refuses every
    other global: a tampered tarball cannot run code, it fails to load."""

    _ALLOWED = frozenset(
        {
            ("_codecs", "encode"),  # bytes in a protocol 2 pickle written by Python 3
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy._core.numeric", "_frombuffer"),  # arrays in a protocol 5 pickle
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch")
        return super().find_class(module, name)


@dataclasses.dataclass(frozen=True)
class Rejection:
    entry: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Dataset:
    images: np.ndarray  # (N, 32, 32, 3) uint8
    labels: np.ndarray  # (N,) int64, indices into LABELS
    rejected: tuple[Rejection, ...] = ()
    names: tuple[str, ...] = ()  # entry names, parallel to images, where the source has them

    def sample(self, count: int, seed: int = 0) -> "Dataset":
        """A random ``count`` images (all classes mixed), in a fixed order for a given seed."""
        return self.subset(self.sample_indices(count, seed))

    def sample_indices(self, count: int, seed: int = 0) -> np.ndarray:
        """The indices :meth:`sample` keeps, in order (to subset arrays parallel to the images)."""
        return np.sort(np.random.default_rng(seed).permutation(len(self))[:count])

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        counts = Counter(int(i) for i in self.labels)
        return {label: counts.get(i, 0) for i, label in enumerate(LABELS)}

    def content_hash(self) -> str:
        """sha256 over pixels and labels: equal hashes mean equal training data."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.images).tobytes())
        digest.update(np.asarray(self.labels, dtype=np.int64).tobytes())
        return digest.hexdigest()

    def manifest(self) -> dict:
        return {
            "images": len(self),
            "counts": self.counts(),
            "sha256": self.content_hash(),
            "rejected": len(self.rejected),
        }

    def subset(self, indices: np.ndarray) -> "Dataset":
        """The images at ``indices`` (an integer array), with their labels and names."""
        names = tuple(self.names[i] for i in indices) if self.names else ()
        return Dataset(self.images[indices], self.labels[indices], self.rejected, names)


def concatenate(*datasets: Dataset) -> Dataset:
    return Dataset(
        np.concatenate([d.images for d in datasets]),
        np.concatenate([d.labels for d in datasets]),
        tuple(r for d in datasets for r in d.rejected),
        tuple(n for d in datasets for n in d.names) if all(d.names for d in datasets) else (),
    )


def load_dataset(source: str | os.PathLike, split: str = "train") -> Dataset:
    """Load a zip or tar archive of class folders, or a CIFAR-10 tarball, from a local path (an
    ``s3://`` URI is fetched first with :func:`classifier.aws.local_copy`). ``split`` chooses the
    CIFAR-10 tarball's part ("train" or "test"); an archive of class folders is all one split."""
    if str(source).startswith("s3://"):
        raise DatasetError(f"{source} is in S3: fetch it with classifier.aws.local_copy first.")
    path = Path(source)
    if not path.is_file():
        raise DatasetError(f"No dataset file at {path}.")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return load_zip(archive)
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as archive:
            names = archive.getnames()
            is_cifar = any(name.startswith(f"{CIFAR_TARBALL_FOLDER}/") for name in names)
            data = None if is_cifar else load_tar(archive)  # the members just listed, read once
        if is_cifar:
            return load_cifar_tarball(path, split)
        if len(data) == 0 and not any(_is_class_entry(name) for name in names):
            raise DatasetError(
                f"{path} is a tar archive with neither class folders (CLASS/FILE) nor CIFAR-10 batches."
            )
        return data
    raise DatasetError(f"{path} is neither a zip or tar of class folders nor a CIFAR-10 tarball.")


def class_of(entry: str) -> str:
    """The class an archive entry belongs to, or raise ValueError with the reason."""
    parts = PurePosixPath(entry).parts
    if len(parts) != 2:
        raise ValueError("expected CLASS/FILE at the archive's root")
    label = parts[0]
    if label not in LABEL_INDEX:
        raise ValueError(f"unknown class folder {label!r}; expected one of {', '.join(LABELS)}")
    return label


def _is_class_entry(entry: str) -> bool:
    try:
        class_of(entry)
    except ValueError:
        return False
    return True


def load_zip(archive: zipfile.ZipFile) -> Dataset:
    return _load_entries(
        (info.filename, partial(archive.read, info)) for info in archive.infolist() if not info.is_dir()
    )


def load_tar(archive: tarfile.TarFile) -> Dataset:
    """A tar archive of class folders, entry by entry as :func:`load_zip` reads a zip. Only
    regular files are read (links and devices are rejected, folders skipped), and none larger
    than ``MAX_IMAGE_BYTES``, checked before reading."""

    def read(member: tarfile.TarInfo) -> bytes:
        if not member.isfile():
            raise ValueError("not a regular file")
        if member.size > MAX_IMAGE_BYTES:
            raise ValueError(f"{member.size} bytes is over the {MAX_IMAGE_BYTES}-byte image limit")
        return archive.extractfile(member).read()

    return _load_entries((member.name, partial(read, member)) for member in archive if not member.isdir())


def _load_entries(entries: Iterable[tuple[str, Callable[[], bytes]]]) -> Dataset:
    """Decode each (entry name, reader) whose name is CLASS/FILE; a wrong name, a reader that
    refuses (ValueError) or an image that does not decode is a rejection, never fatal."""
    images, labels, names, rejected = [], [], [], []
    for name, read in entries:
        try:
            label = class_of(name)
            image = decode_image(read())
        except (ValueError, InvalidImageError) as error:
            rejected.append(Rejection(name, str(error)))
            continue
        images.append(image)
        labels.append(LABEL_INDEX[label])
        names.append(name)
    return _stack(images, labels, rejected, names)


def load_cifar_tarball(path: str | os.PathLike, split: str = "train") -> Dataset:
    """The official ``cifar-10-python.tar.gz``: pickled batches of CHW rows."""
    batches = {"train": CIFAR_TRAIN_BATCHES, "test": (CIFAR_TEST_BATCH,)}.get(split)
    if batches is None:
        raise DatasetError(f"Unknown split {split!r}; use 'train' or 'test'.")
    images, labels = [], []
    with tarfile.open(path) as archive:
        for name in batches:
            member = f"{CIFAR_TARBALL_FOLDER}/{name}"
            try:
                handle = archive.extractfile(member)
            except KeyError as error:
                raise DatasetError(f"{path} has no {member}: not a CIFAR-10 python tarball.") from error
            try:
                batch = _CifarUnpickler(io.BytesIO(handle.read()), encoding="bytes").load()
            except pickle.UnpicklingError as error:
                raise DatasetError(f"{path}: {member} is not a CIFAR-10 batch ({error}).") from error
            rows = np.asarray(batch[b"data"], dtype=np.uint8)
            images.append(rows.reshape(-1, CHANNELS, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1))
            labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return Dataset(np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels))


def _stack(images, labels, rejected, names) -> Dataset:
    stacked = np.stack(images) if images else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, CHANNELS), np.uint8)
    return Dataset(stacked, np.asarray(labels, dtype=np.int64), tuple(rejected), tuple(names))
