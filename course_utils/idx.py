"""The IDX file format in which MNIST is distributed: read it, and refuse a damaged file."""
from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

# The official checksums of the gzipped files (the same ones torchvision checks).
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_UBYTE = 0x08  # IDX type code for unsigned bytes, the only one MNIST uses
_GZIP_MAGIC = b"\x1f\x8b"  # the first two bytes of every gzip file


class MNISTFileError(RuntimeError):
    """A data file is truncated, corrupt or not an IDX file; the message names the file and the fix.

    path is the file to replace, or None when it cannot be told which file of a pair is wrong.
    """

    def __init__(self, message: str, path: Optional[Path]):
        super().__init__(message)
        self.path = path


def _damaged(path: Path, what: str) -> MNISTFileError:
    return MNISTFileError(
        f"{path} is damaged: {what}. Delete this file and run again: load_mnist() then downloads a fresh "
        f"copy (or copy the original file there from a working folder).", path)


def md5sum(path: Path) -> str:
    """The md5 hex digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_bytes(path: Path) -> bytes:
    """The file's content, un-gzipped when it starts with gzip's magic bytes (whatever its name says)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except PermissionError as err:  # not damaged: another account's file, or a folder shared without read rights
        raise PermissionError(
            f"{path} cannot be read: your account has no permission to read it ({err.strerror}). Ask the owner of "
            f"the file to run `chmod a+r {path}`, or copy the MNIST files into a folder of your own and set "
            f"COURSE_DATA to it.") from err
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:  # truncated stream, bad header, bad CRC
        raise _damaged(path, f"it cannot be un-gzipped ({err})") from err


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzipped or not) into a uint8 array of its shape."""
    path = Path(path)
    raw = read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UBYTE:
        raise _damaged(path, "it does not start with the IDX header of an unsigned-byte file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise _damaged(path, "its header is cut short")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise _damaged(path, f"its header promises {expected:,} bytes for shape {shape} but it holds {len(raw):,}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
