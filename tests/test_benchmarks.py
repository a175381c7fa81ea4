"""The figures the benchmarks judge by: train_vae.py's test loss, FLOP count and copy of the article's model; the
ablation's alternative loss."""
import importlib
import sys
from pathlib import Path

import pytest
import torch

from course_utils.models import VAE
from course_utils.train import evaluate

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _benchmark_script(name):
    """Import benchmarks/<name>.py as a module (its main() does not run), and forget it afterwards."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCHINDUCTOR_CACHE_DIR", str(BENCHMARKS.parent / "outputs" / "inductor-cache"))  # no temp dir
        mp.syspath_prepend(str(BENCHMARKS))
        module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)
    sys.modules.pop("_report", None)


@pytest.fixture(scope="module")
def bench():
    yield from _benchmark_script("train_vae")


@pytest.fixture(scope="module")
def ablation():
    yield from _benchmark_script("ablation")


def images(n, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_the_article_model_is_the_course_model(bench):
    """Same layer names and, with the same weights, the same reconstruction, mu and logvar."""
    ours = VAE().eval()
    theirs = bench.ArticleVAE().eval()
    theirs.load_state_dict(ours.state_dict())
    x = images(16)
    with torch.no_grad():
        for a, b in zip(ours(x), theirs(x)):
            torch.testing.assert_close(a.flatten(1), b.flatten(1))


def test_its_test_loss_is_course_utils_evaluate(bench):
    """At z = mu the benchmark's judge (its own BCE plus KL, written as the article does) equals train.evaluate."""
    model = VAE(latent_dim=5, hidden_dim=50)
    x = images(300, seed=1)
    assert bench.nats_per_image(model, x) == pytest.approx(evaluate(model, (x, None))["loss"], rel=1e-5)
    sampled = bench.nats_per_image(model, x, sample=True)
    assert sampled > bench.nats_per_image(model, x)  # sampling z adds reconstruction error on average


def test_flop_count_matches_the_layer_sizes(bench):
    """One training step counted by torch.utils.flop_counter = the matrix products of the 784-400-20 VAE, by hand."""
    b, d, h, k = 128, 784, 400, 20
    forward = 2 * b * (d * h + 2 * h * k + k * h + h * d)  # fc1, fc21 and fc22, fc3, fc4
    weight_grads = forward  # one product per layer for its weight gradient
    input_grads = 2 * b * (2 * h * k + k * h + h * d)  # every layer but fc1: the images need no gradient
    assert bench.flops_per_epoch(n_train=b, n_test=0, batch_size=b) == forward + weight_grads + input_grads
    assert bench.flops_per_epoch(n_train=0, n_test=b, batch_size=b) == forward


def test_the_ablations_rows_compute_the_same_loss(ablation):
    """Its logits variant is fit's loss written from the logits: the same number (within float32 rounding)."""
    model = VAE().eval()  # z = mu: both deterministic
    x = images(32, seed=2)
    torch.testing.assert_close(ablation.logits_loss(model, x), ablation.course_loss(model, x), rtol=1e-5, atol=1e-3)
