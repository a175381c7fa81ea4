"""load_mnist against the original bytes: every layout, the offline sample, damaged files and the cache."""
import gzip
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SHARED_MNIST
from course_utils import data
from course_utils.idx import MNISTFileError


def assert_same(x, y, images, labels):
    assert x.dtype == torch.float32 and x.shape == (len(images), 1, 28, 28)
    assert y.dtype == torch.int64 and y.shape == (len(labels),)
    assert torch.equal((x * 255).round().to(torch.uint8).squeeze(1), torch.from_numpy(images))
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_load_returns_the_exact_pixels_and_labels(tmp_path, tiny_mnist, gz, layout):
    arrays = tiny_mnist(tmp_path, gz=gz, layout=layout)
    for split in ("train", "test"):
        x, y = data.load_mnist(split, root=tmp_path)
        assert_same(x, y, *arrays[split])


def test_environment_variable_names_the_folder(tmp_path, tiny_mnist, monkeypatch):
    arrays = tiny_mnist(tmp_path / "elsewhere")
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "elsewhere"))
    assert_same(*data.load_mnist("test"), *arrays["test"])


def test_second_load_comes_from_the_cache_and_agrees(tmp_path, tiny_mnist, capsys):
    arrays = tiny_mnist(tmp_path, gz=True)
    data.load_mnist("train", root=tmp_path)
    x, y = data.load_mnist("train", root=tmp_path)
    assert "(cache)" in capsys.readouterr().out
    assert_same(x, y, *arrays["train"])


def test_a_half_written_cache_is_never_loaded(tmp_path, tiny_mnist):
    arrays = tiny_mnist(tmp_path)
    data.load_mnist("train", root=tmp_path)
    (cache,) = (tmp_path / "cache").glob("mnist-train-*.pt")
    cache.write_bytes(cache.read_bytes()[:100])  # as if the kernel died while writing
    assert_same(*data.load_mnist("train", root=tmp_path), *arrays["train"])


def test_truncated_file_is_rejected_with_its_name_and_the_fix(tmp_path, tiny_mnist):
    tiny_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(MNISTFileError, match="train-images-idx3-ubyte.*Delete this file"):
        data.load_mnist("train", root=tmp_path)


def test_truncated_gzip_is_rejected(tmp_path, tiny_mnist):
    tiny_mnist(tmp_path, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(MNISTFileError, match="t10k-images-idx3-ubyte.gz.*un-gzipped"):
        data.load_mnist("test", root=tmp_path)


def test_a_file_that_is_not_idx_is_rejected(tmp_path, tiny_mnist):
    tiny_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(MNISTFileError, match="IDX header"):
        data.load_mnist("test", root=tmp_path)


def test_offline_fallback_is_the_courses_sample(tmp_path, capsys):
    with pytest.warns(UserWarning, match="offline SAMPLE"):
        x_train, y_train = data.load_mnist("train", root=tmp_path / "empty")
    with pytest.warns(UserWarning):
        x_test, y_test = data.load_mnist("test", root=tmp_path / "empty")
    assert len(x_train) == 4000 and len(x_test) == 1000
    assert "COURSE_DATA" in capsys.readouterr().out
    assert torch.bincount(y_train).tolist() == [400] * 10 and torch.bincount(y_test).tolist() == [100] * 10


def test_the_sample_file_is_the_one_its_provenance_records():
    provenance = (data.SAMPLE_FILE.parent / "PROVENANCE.md").read_text()
    assert hashlib.sha256(data.SAMPLE_FILE.read_bytes()).hexdigest() in provenance
    assert f"{data.SAMPLE_FILE.stat().st_size:,} bytes" in provenance


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="the original MNIST files are not beside the checkout")
@pytest.mark.parametrize("split, prefix", [("train", "train"), ("test", "t10k")])
def test_the_sample_holds_the_original_mnist_bytes_at_its_recorded_indices(tmp_path, split, prefix):
    from torchvision.datasets.mnist import read_image_file, read_label_file  # an independent IDX reader

    with np.load(data.SAMPLE_FILE) as sample:
        images, labels, index = sample[f"{split}_images"], sample[f"{split}_labels"], sample[f"{split}_index"]
    for kind in ("images-idx3", "labels-idx1"):
        raw = gzip.decompress((SHARED_MNIST / f"{prefix}-{kind}-ubyte.gz").read_bytes())
        (tmp_path / f"{prefix}-{kind}-ubyte").write_bytes(raw)
    original_images = read_image_file(str(tmp_path / f"{prefix}-images-idx3-ubyte")).numpy()
    original_labels = read_label_file(str(tmp_path / f"{prefix}-labels-idx1-ubyte")).numpy()
    assert len(set(index.tolist())) == len(index)  # no image twice
    assert np.array_equal(images, original_images[index]) and np.array_equal(labels, original_labels[index])


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="split='train' or split='test'"):
        data.load_mnist("validation")


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="the original MNIST files are not beside the checkout")
@pytest.mark.parametrize("split, prefix, n", [("train", "train", 60000), ("test", "t10k", 10000)])
def test_full_mnist_matches_torchvisions_reader(tmp_path, split, prefix, n):
    from torchvision.datasets.mnist import read_image_file, read_label_file  # an independent IDX reader

    for kind in ("images-idx3", "labels-idx1"):
        name = f"{prefix}-{kind}-ubyte"
        (tmp_path / name).write_bytes(gzip.decompress((SHARED_MNIST / f"{name}.gz").read_bytes()))
    x, y = data.load_mnist(split, root=SHARED_MNIST)
    assert x.shape == (n, 1, 28, 28)
    images = read_image_file(str(tmp_path / f"{prefix}-images-idx3-ubyte"))
    labels = read_label_file(str(tmp_path / f"{prefix}-labels-idx1-ubyte"))
    assert torch.equal((x * 255).round().to(torch.uint8).squeeze(1), images)
    assert torch.equal(y, labels.long())


def test_the_names_some_mirrors_use_are_accepted(tmp_path, tiny_mnist):
    arrays = tiny_mnist(tmp_path)
    for path in tmp_path.iterdir():  # train-images-idx3-ubyte -> train-images.idx3-ubyte
        path.rename(tmp_path / path.name.replace("-idx", ".idx"))
    assert_same(*data.load_mnist("test", root=tmp_path), *arrays["test"])


def test_compression_is_told_by_the_first_bytes_not_the_name(tmp_path, tiny_mnist):
    arrays = tiny_mnist(tmp_path / "a")
    (tmp_path / "a" / "t10k-images-idx3-ubyte").rename(tmp_path / "a" / "t10k-images-idx3-ubyte.gz")  # plain, named .gz
    labels = tmp_path / "a" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(gzip.compress(labels.read_bytes()))  # gzipped, named without .gz
    assert_same(*data.load_mnist("test", root=tmp_path / "a"), *arrays["test"])


def test_a_folder_with_only_the_test_files_serves_the_test_split(tmp_path, tiny_mnist, capsys):
    arrays = tiny_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").unlink()
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    assert_same(*data.load_mnist("test", root=tmp_path), *arrays["test"])
    with pytest.warns(UserWarning, match="offline SAMPLE"):
        data.load_mnist("train", root=tmp_path)
    out = capsys.readouterr().out
    assert "missing train-images-idx3-ubyte" in out and "found t10k-images-idx3-ubyte" in out


def test_three_of_four_files_says_which_one_is_missing(tmp_path, tiny_mnist, capsys):
    tiny_mnist(tmp_path, gz=True)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.warns(UserWarning, match="offline SAMPLE"):
        data.load_mnist("train", root=tmp_path)
    out = capsys.readouterr().out
    assert "missing train-labels-idx1-ubyte" in out and "found train-images-idx3-ubyte.gz" in out


def test_a_data_folder_that_does_not_exist_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "typo"))
    with pytest.warns(UserWarning, match="offline SAMPLE"):
        data.load_mnist("test")
    out = capsys.readouterr().out
    assert "COURSE_DATA" in out and "typo" in out and "does not exist" in out


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="the original MNIST files are not beside the checkout")
def test_the_official_md5s_blame_the_label_file_not_the_images(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes((SHARED_MNIST / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 5]) + bytes(5)))
    with pytest.raises(MNISTFileError, match="t10k-labels-idx1-ubyte.gz is the one that is not the official") as err:
        data.load_mnist("test", root=tmp_path)
    assert err.value.path == tmp_path / "t10k-labels-idx1-ubyte.gz"


def test_the_source_is_named_in_words_not_by_this_machines_path(tmp_path, tiny_mnist, monkeypatch, capsys):
    """A notebook's output says where the data came from the same way on every machine."""
    from course_utils import data

    tiny_mnist(tmp_path / "d", layout="torchvision")
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "d"))
    data.load_mnist("test")
    data.load_mnist("test", root=tmp_path / "d")
    out = capsys.readouterr().out
    assert "images from the folder in COURSE_DATA" in out and "images from the folder passed as root" in out
    assert str(tmp_path) not in out


MEASURE_ANON = """
import re, sys
from course_utils.data import load_mnist

def anonymous_mb():
    return int(re.search(r"RssAnon:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

before = anonymous_mb()
x, y = load_mnist("train", root=sys.argv[1])
x.sum()  # reads every page
print(x.nbytes / 2**20, anonymous_mb() - before)
"""


@pytest.mark.skipif(not SHARED_MNIST.exists() or not Path("/proc/self/status").exists(),
                    reason="needs the full MNIST and Linux's /proc")
@pytest.mark.parametrize("load", ["decoded and cached", "from the cache"])
def test_the_training_images_are_mapped_from_the_cache_not_held_in_anonymous_memory(tmp_path, load):
    """x (188 MB of float32) lives in the cache file's pages, which the system may drop and read again; the process
    itself (its anonymous memory, what a memory limit bites on) holds little more than one image's worth."""
    env = {**os.environ, "COURSE_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-c", MEASURE_ANON, str(SHARED_MNIST)]
    if load == "from the cache":
        subprocess.run(command, env=env, check=True, capture_output=True)
    size_mb, anonymous_mb = map(float, subprocess.run(command, env=env, check=True, capture_output=True,
                                                      text=True).stdout.split()[-2:])
    assert size_mb > 170
    assert anonymous_mb < 0.1 * size_mb, f"loading held {anonymous_mb:.0f} MB of anonymous memory"
    x, _ = data.load_mnist("train", root=SHARED_MNIST)  # and in this process, the same pixels as the IDX file
    assert torch.equal(x[:5], data._to_float(data._load_folder(SHARED_MNIST, "train")[0][:5]))
