"""Fault injection: each way a learner's run can break ends in a clear error or a correct recovery, losing nothing."""
import errno
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
    monkeypatch.setattr(data, "_network_error", None, raising=False)  # no failure remembered from another test
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


# --- issue 12, the data path: blame the right file, lose nothing, and say what happened ---

def replace_labels(path, n):
    """Write a valid gzipped IDX label file holding n labels: well-formed, but of the wrong count."""
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + bytes(n)))
    os.utime(path, ns=(1, 1))  # a changed file: the cache must not hide it


def test_a_label_file_of_the_wrong_count_is_blamed_not_the_images(tmp_path, mirror, capsys):
    _, arrays = mirror
    folder = tmp_path / "data"
    data.load_mnist("train", root=folder)  # a first, good download
    images_before = (folder / "train-images-idx3-ubyte.gz").read_bytes()
    replace_labels(folder / "train-labels-idx1-ubyte.gz", 5)  # 7 images, 5 labels
    bad = (folder / "train-labels-idx1-ubyte.gz").read_bytes()
    assert_same(*data.load_mnist("train", root=folder), *arrays["train"])
    assert (folder / "train-images-idx3-ubyte.gz").read_bytes() == images_before  # the good file stays put
    assert not (folder / "train-images-idx3-ubyte.gz.damaged").exists()
    assert (folder / "train-labels-idx1-ubyte.gz.damaged").read_bytes() == bad  # the wrong one, kept
    assert "train-labels-idx1-ubyte.gz" in capsys.readouterr().out


def test_nothing_is_moved_aside_until_its_replacement_is_there(tmp_path, mirror):
    fake, _ = mirror
    folder = tmp_path / "data"
    data.load_mnist("train", root=folder)
    replace_labels(folder / "train-labels-idx1-ubyte.gz", 5)
    names = sorted(p.name for p in folder.iterdir())
    fake.fail = urllib.error.URLError("Temporary failure in name resolution")
    with pytest.raises(MNISTFileError, match="train-labels-idx1-ubyte.gz"):
        data.load_mnist("train", root=folder)
    assert sorted(p.name for p in folder.iterdir()) == names  # no file renamed, none half-written


def test_a_full_disk_skips_the_cache_and_still_returns_the_data(tmp_path, tiny_mnist, monkeypatch):
    arrays = tiny_mnist(tmp_path / "d")
    cache = tmp_path / "cache"
    cache.mkdir()
    real_save = data.torch.save

    def save_until_full(obj, f):  # writes part of the file, then the disk is full
        real_save({"images": torch.zeros(1)}, f)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(data.torch, "save", save_until_full)
    with pytest.warns(UserWarning, match=r"(?s)not cached.*No space left.*MB"):
        assert_same(*data.load_mnist("train", root=tmp_path / "d"), *arrays["train"])
    assert list(cache.iterdir()) == []  # no partial temp file left behind


def test_a_real_full_disk_skips_the_cache(tmp_path, tiny_mnist, monkeypatch):
    import subprocess

    disk = tmp_path / "tiny-disk"
    disk.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True, timeout=5,
                       stdin=subprocess.DEVNULL, capture_output=True)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("mounting a small tmpfs needs root; the monkeypatched test covers it")
    try:
        arrays = {}
        rng = np.random.default_rng(0)
        for split, prefix, n in (("train", "train", 200), ("test", "t10k", 3)):  # 200 images: 157 kB decoded
            images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
            labels = rng.integers(0, 10, size=(n,), dtype=np.uint8)
            for name, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
                header = bytes([0, 0, 8, array.ndim]) + b"".join(s.to_bytes(4, "big") for s in array.shape)
                (tmp_path / "d").mkdir(exist_ok=True)
                (tmp_path / "d" / name).write_bytes(header + array.tobytes())
            arrays[split] = (images, labels)
        monkeypatch.setenv("COURSE_CACHE", str(disk))
        with pytest.warns(UserWarning, match="(?s)not cached.*No space left on device"):
            assert_same(*data.load_mnist("train", root=tmp_path / "d"), *arrays["train"])
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(disk)], timeout=5)  # lazy: detached even if a file there is still open


def test_cache_and_downloaded_files_respect_the_umask(tmp_path, mirror):
    old = os.umask(0o022)
    try:
        data.load_mnist("test", root=tmp_path / "data")
    finally:
        os.umask(old)
    made = list((tmp_path / "data").iterdir()) + list((tmp_path / "cache").iterdir())
    assert len(made) == 5 and {stat.S_IMODE(p.stat().st_mode) for p in made} == {0o644}  # readable by others


def deny_reading(monkeypatch, path):
    """Make path unreadable: chmod 000, and, since root reads anything, a stand-in open() for root."""
    path.chmod(0)
    if os.geteuid() == 0:
        real_open = open

        def open_denied(file, *args, **kwargs):
            if os.fspath(file) == os.fspath(path):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr("builtins.open", open_denied)


def test_an_unreadable_data_file_says_permission_not_damaged(tmp_path, mirror, monkeypatch):
    folder = tmp_path / "data"
    data.load_mnist("test", root=folder)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    os.utime(path, ns=(1, 1))  # decode again, not from the cache
    deny_reading(monkeypatch, path)
    try:
        with pytest.raises(PermissionError, match="permission.*chmod") as err:
            data.load_mnist("test", root=folder)
    finally:
        path.chmod(0o644)
    assert "Delete" not in str(err.value) and "damaged" not in str(err.value)
    assert path.exists() and not list(folder.glob("*.damaged"))  # a good file is never moved aside


def test_a_silent_network_is_given_up_quickly_and_once(tmp_path, monkeypatch, capsys):
    import socket
    import time

    from torchvision.datasets import MNIST

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # connections are accepted by the kernel, and never answered
    try:
        monkeypatch.setattr(MNIST, "mirrors", [f"http://127.0.0.1:{server.getsockname()[1]}/"])
        monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT", 1.0, raising=False)
        monkeypatch.setattr(data, "_network_error", None, raising=False)
        monkeypatch.setenv("COURSE_OFFLINE", "0")
        start = time.monotonic()
        with pytest.warns(UserWarning, match="offline SAMPLE"):
            data.load_mnist("test", root=tmp_path / "data")
        assert time.monotonic() - start < 4
        out = capsys.readouterr().out
        assert out.index("trying") < out.index("timed out")  # says what it tries before trying, then why it failed
        start = time.monotonic()
        with pytest.warns(UserWarning, match="offline SAMPLE"):
            data.load_mnist("train", root=tmp_path / "data")
        assert time.monotonic() - start < 0.5  # the failure is remembered: no second wait
        assert "timed out" in capsys.readouterr().out
    finally:
        server.close()


def test_when_neither_file_is_official_nothing_is_moved(tmp_path, mirror):
    folder = tmp_path / "data"
    data.load_mnist("train", root=folder)
    images = folder / "train-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes()), mtime=0))  # same pixels, other bytes
    replace_labels(folder / "train-labels-idx1-ubyte.gz", 5)
    names = sorted(p.name for p in folder.iterdir())
    with pytest.raises(MNISTFileError, match="Replace both") as err:
        data.load_mnist("train", root=folder)
    assert err.value.path is None and sorted(p.name for p in folder.iterdir()) == names


def test_an_unreadable_cache_is_named_and_decoded_anew(tmp_path, tiny_mnist, monkeypatch, capsys):
    arrays = tiny_mnist(tmp_path / "d")
    data.load_mnist("test", root=tmp_path / "d")
    (cache,) = (tmp_path / "cache").glob("mnist-test-*.pt")
    deny_reading(monkeypatch, cache)
    assert_same(*data.load_mnist("test", root=tmp_path / "d"), *arrays["test"])
    assert "may not read the cache file" in capsys.readouterr().out


def test_a_killed_cache_write_is_cleaned_up_at_the_next_load(tmp_path, tiny_mnist, monkeypatch):
    """A temporary cache file an hour old (a killed process's) goes at the next load; a recent one may be another
    process's, and stays."""
    import time

    tiny_mnist(tmp_path / "d")
    cache = tmp_path / "cache"
    monkeypatch.setenv("COURSE_CACHE", str(cache))
    cache_file = data._cache_path(tmp_path / "d", "train")
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    old, recent = (cache_file.with_name(f".{cache_file.name}.{tag}.part") for tag in ("1-dead", "2-busy"))
    for part in (old, recent):
        part.write_bytes(b"half a cache")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    data.load_mnist("train", root=tmp_path / "d")
    assert not old.exists() and recent.exists()
