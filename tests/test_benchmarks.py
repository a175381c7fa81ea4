"""The figures benchmarks/train_vae.py judges by: its test loss, its FLOP count and its copy of the article's model."""
import importlib
import sys
from pathlib import Path

import pytest
import torch

from course_utils.models import VAE
from course_utils.train import evaluate, loss_terms

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
    """At z = mu the benchmark's judge (BCE on probabilities plus KL) equals train.evaluate (from logits)."""
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


def _autograd_loss(model, x, float64: bool):
    """In float64: the negative ELBO from torch.distributions, through autograd; else course_utils's loss_terms under
    bf16 autocast, as its training loop runs it."""
    if not float64:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return loss_terms(model, x)["loss"]
    mu, logvar = model.encode(x)
    logits = model.decode_logits(model.reparameterize(mu, logvar)).flatten(1)
    recon = -torch.distributions.Bernoulli(logits=logits).log_prob(x.flatten(1)).sum(1)
    prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    kl = torch.distributions.kl_divergence(torch.distributions.Normal(mu, (0.5 * logvar).exp()), prior).sum(1)
    return (recon + kl).mean()


@pytest.mark.parametrize("dtype, latent_dtype", [(torch.float64, None), (torch.bfloat16, None),
                                                 (torch.bfloat16, torch.float32)])
def test_the_hand_written_backward_pass_is_autograds(ablation, dtype, latent_dtype):
    """The ablation's bound computes the VAE's loss and autograd's gradients of it: in float64 to 1e-10 (against
    torch.distributions); with bf16 products, as the ablation runs it, to bf16's precision (against loss_terms)."""
    float64 = dtype == torch.float64
    model = VAE().to(torch.float64 if float64 else torch.float32)
    x = images(64, seed=2).round().to(model.fc1.weight.dtype)  # binary pixels: Bernoulli.log_prob checks them
    torch.manual_seed(3)
    loss = ablation.backprop_by_hand(model, x, dtype=dtype, latent_dtype=latent_dtype)
    by_hand = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    torch.manual_seed(3)  # the same eps
    expected = _autograd_loss(model, x, float64)
    expected.backward()
    error = 1e-10 if float64 else 0.05  # bf16 keeps 8 bits: a few % apart, where a wrong term is ~100 % off
    assert abs(loss - expected.detach()) <= error * abs(expected.detach())
    for name, p in model.named_parameters():
        assert by_hand[name].dtype == p.dtype, name
        assert (by_hand[name] - p.grad).norm() <= error * p.grad.norm(), name
