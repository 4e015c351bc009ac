"""What a GPU run needs beside the repository, packed to travel with it.

The device machine gets a copy of the working tree (every tracked file) plus the paths a call
carries, 64 MiB in all. The tracked tree alone is about 30 MB (the kept models), and
``cifar10-train.zip`` is 51 MB: together they do not fit. A zip compresses each small JPEG on
its own; one gzip stream over the same files also shares the ~600 identical header bytes each
JPEG starts with, so the training set packs to about 16 MB as a ``.tar.gz`` of the same entries,
in the same order. ``classifier.datasets.load_dataset`` reads both to the same arrays (the same
content hash, so the same training).

    python -m infra.devdata                 # ../shared/data/*.zip -> .devdata/*.tar.gz, then the sizes
    python -m infra.devdata --verify        # and check each pack loads to its zip's arrays (~1 minute)
    python -m infra.devdata --carry .whl .runs/r56/resnet56-ft.keras   # count what else will travel

It ends with the size of what would travel (the working tree, ``.devdata`` and each
``--carry`` path) against the limit, and fails if it is over. ``make gpu-kit`` also fetches the Keras wheels
the GPU machine lacks (docs/model.md, "Training on a GPU machine").
"""

import argparse
import gzip
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The CIFAR-10 zips: CIFAR10_DATA (the Makefile and .ci/run export it), else ../shared/data beside
# the repository. The benches, the tests and `make serve` read it from here.
SHARED_DATA = Path(os.environ.get("CIFAR10_DATA") or REPO.parent / "shared" / "data")
DEVDATA = REPO / ".devdata"
DATASETS = ("cifar10-train", "cifar10-test")
TRAVEL_LIMIT_BYTES = 64 * 1024 * 1024  # the device tool's cap on the tree plus carried paths


def repack(source: Path, destination: Path) -> Path:
    """Write ``destination`` (``.tar.gz``) holding ``source``'s (a zip's) files: same names, same
    bytes, same order; folders are left out (tar readers need none). Written to a temporary name
    and renamed, so a killed run leaves no half archive under the final name."""
    partial = destination.with_name(destination.name + ".partial")
    with (
        zipfile.ZipFile(source) as archive,
        open(partial, "wb") as handle,
        # no file name or time in the gzip header either
        gzip.GzipFile("", "wb", compresslevel=9, fileobj=handle, mtime=0) as stream,
        tarfile.open(fileobj=stream, mode="w") as packed,
    ):
        for info in archive.infolist():
            if info.is_dir():
                continue
            member = tarfile.TarInfo(info.filename)
            member.size = info.file_size
            member.mtime = 0  # with the gzip header's, the same zip packs to the same bytes
            member.mode = 0o444
            with archive.open(info) as entry:
                packed.addfile(member, entry)
    partial.replace(destination)
    return destination


def tree_bytes(repo: Path = REPO) -> int:
    """Bytes of the files that travel whatever is carried: every tracked file and every untracked
    one that git does not ignore."""
    listing = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sum(
        (repo / name).stat().st_size for name in listing.split("\0") if name and (repo / name).is_file()
    )


def path_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(child.stat().st_size for child in path.rglob("*") if child.is_file())


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.devdata", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="folder with the CIFAR-10 zips")
    parser.add_argument("--out", type=Path, default=DEVDATA, help="where the packs go (git-ignored)")
    parser.add_argument("--verify", action="store_true", help="load each pack and its zip and compare")
    parser.add_argument("--carry", type=Path, nargs="*", default=[], help="other paths the call will carry")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    for name in DATASETS:
        source, packed = args.data / f"{name}.zip", args.out / f"{name}.tar.gz"
        if not packed.exists() or packed.stat().st_mtime < source.stat().st_mtime:
            repack(source, packed)
        print(
            f"{_shown(packed)}: {packed.stat().st_size / 1e6:.1f} MB (the zip: {source.stat().st_size / 1e6:.1f} MB)"
        )
        if args.verify:
            from classifier.datasets import load_dataset

            same = load_dataset(packed).content_hash() == load_dataset(source).content_hash()
            print(f"  loads to the zip's arrays: {'yes' if same else 'NO'}")
            if not same:
                return 1

    sizes = {"working tree (tracked, not ignored)": tree_bytes(), _shown(args.out): path_bytes(args.out)}
    sizes.update({_shown(path): path_bytes(path) for path in args.carry})
    for what, size in sizes.items():
        print(f"{what:<40} {size / 1e6:7.1f} MB")
    total = sum(sizes.values())
    print(f"{'travels':<40} {total / 1e6:7.1f} MB of {TRAVEL_LIMIT_BYTES / 1e6:.1f} MB")
    if total > TRAVEL_LIMIT_BYTES:
        print("over the limit: carry less", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
