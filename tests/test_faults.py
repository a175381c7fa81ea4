"""Fault injection: each way a learner's run can break ends in a clear error or a correct recovery, losing nothing."""
import gzip
import hashlib
import io
import os
import stat
import urllib.error

import numpy as np
import pytest
import torch

from course_utils import data
from course_utils.idx import MNISTFileError


class FakeMirror:
    """Stands in for urllib's urlopen: serves the bytes of a folder of .gz files, or fails as told."""

    def __init__(self, folder, fail=None, cut_after=None):
        self.folder, self.fail, self.cut_after, self.requests = folder, fail, cut_after, []

    def __call__(self, url, timeout=None):
        self.requests.append(url)
        if self.fail:
            raise self.fail
        blob = (self.folder / url.rsplit("/", 1)[1]).read_bytes()
        stream = io.BytesIO(blob)
        if self.cut_after is not None:  # the connection drops mid-file
            cut = self.cut_after

            class Dropping(io.BytesIO):
                def read(self, n=-1):
                    if self.tell() >= cut:
                        raise ConnectionResetError("connection reset by peer")
                    return super().read(min(n, cut - self.tell()) if n > 0 else cut - self.tell())

            stream = Dropping(blob)
        return stream


@pytest.fixture
def mirror(tmp_path, tiny_mnist, monkeypatch):
    """A tiny MNIST 'on the internet': its md5s stand in for the official ones."""
    served = tmp_path / "server"
    arrays = tiny_mnist(served, gz=True)
    md5s = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in served.iterdir()}
    monkeypatch.setattr(data, "MD5", md5s)
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    fake = FakeMirror(served)
    monkeypatch.setattr(data.urllib.request, "urlopen", fake)
    return fake, arrays


def assert_same(x, y, images, labels):
    assert torch.equal((x * 255).round().to(torch.uint8).squeeze(1), torch.from_numpy(images))
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")]


def test_download_lands_whole_and_checked(tmp_path, mirror):
    fake, arrays = mirror
    folder = tmp_path / "data"
    assert_same(*data.load_mnist("train", root=folder), *arrays["train"])
    assert sorted(p.name for p in folder.iterdir()) == sorted(data.MD5)
    assert leftovers(folder) == []


def test_interrupted_download_leaves_no_file_and_falls_back(tmp_path, mirror):
    fake, _ = mirror
    fake.cut_after = 100
    folder = tmp_path / "data"
    with pytest.warns(UserWarning, match="offline SAMPLE"):
        x, _ = data.load_mnist("test", root=folder)
    assert len(x) == 1000  # the sample's test part
    assert not folder.exists() or list(folder.iterdir()) == []  # no half-written file under any name


def test_download_with_a_wrong_md5_is_never_renamed(tmp_path, mirror, monkeypatch):
    monkeypatch.setattr(data, "MD5", {name: "0" * 32 for name in data.MD5})
    folder = tmp_path / "data"
    with pytest.raises(ConnectionError, match="md5 mismatch"):
        data.download_mnist(folder)
    assert list(folder.iterdir()) == []


def test_no_network_gives_the_sample_with_its_warning(tmp_path, mirror, capsys):
    fake, _ = mirror
    fake.fail = urllib.error.URLError("Temporary failure in name resolution")
    with pytest.warns(UserWarning, match="not the full set"):
        x, y = data.load_mnist("train", root=tmp_path / "data")
    assert x.shape == (4000, 1, 28, 28)
    out = capsys.readouterr().out
    assert "no download" in out and "COURSE_DATA" in out


def test_a_corrupt_file_is_reported_and_replaced_by_the_next_download(tmp_path, mirror, capsys):
    _, arrays = mirror
    folder = tmp_path / "data"
    data.load_mnist("train", root=folder)  # a first, good download
    damaged = folder / "train-images-idx3-ubyte.gz"
    blob = bytearray(damaged.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte: the gzip CRC no longer matches
    damaged.write_bytes(bytes(blob))
    os.utime(damaged, ns=(1, 1))  # a changed file: the cache must not hide it
    assert_same(*data.load_mnist("train", root=folder), *arrays["train"])
    out = capsys.readouterr().out
    assert "train-images-idx3-ubyte.gz is damaged" in out and "fresh copy" in out
    assert (folder / "train-images-idx3-ubyte.gz.damaged").read_bytes() == bytes(blob)  # kept, not lost


def test_a_corrupt_file_offline_is_a_clear_error(tmp_path, tiny_mnist):
    tiny_mnist(tmp_path, gz=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    payload = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(payload[:8] + bytes([42]) * (len(payload) - 8)))  # labels of 42
    with pytest.raises(MNISTFileError, match="train-labels-idx1-ubyte.gz.*0 to 9"):
        data.load_mnist("train", root=tmp_path)


def test_a_read_only_data_folder_uses_a_cache_folder_elsewhere(tmp_path, tiny_mnist, monkeypatch, capsys):
    arrays = tiny_mnist(tmp_path / "ro")
    cache = tmp_path / "ro-cache"
    cache.mkdir()
    for folder in (tmp_path / "ro", cache):
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    monkeypatch.setenv("COURSE_CACHE", str(cache))
    try:
        assert_same(*data.load_mnist("test", root=tmp_path / "ro"), *arrays["test"])
        assert "is not writable, so" in capsys.readouterr().out
        assert list((tmp_path / "home" / ".cache" / "course_utils" / "ro-cache").glob("mnist-test-*.pt"))
    finally:
        for folder in (tmp_path / "ro", cache):
            folder.chmod(0o755)


def test_a_download_into_a_read_only_folder_goes_elsewhere(tmp_path, mirror, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        used = data.download_mnist(folder)
    finally:
        folder.chmod(0o755)
    assert used != folder and sorted(p.name for p in used.iterdir()) == sorted(data.MD5)
    assert "is not writable" in capsys.readouterr().out
