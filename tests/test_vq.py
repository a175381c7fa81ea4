"""Vector quantization against independent references: brute-force nearest codes, autograd for the straight-through
gradient, closed forms of the perplexity, and a VQVAE trained through fit."""
import math

import pytest
import torch

from course_utils.checkpoints import build_model, model_config
from course_utils.models import VQVAE
from course_utils.train import fit, loss_terms
from course_utils.vq import (code_usage, codebook_loss, commitment_loss, dead_codes, nearest_code, perplexity,
                             quantize, straight_through)


def test_nearest_code_is_the_brute_force_argmin():
    g = torch.Generator().manual_seed(0)
    z_e, codebook = torch.randn(500, 6, generator=g), torch.randn(32, 6, generator=g)
    brute = torch.tensor([min(range(32), key=lambda k: float(((z - codebook[k]) ** 2).sum())) for z in z_e])
    assert torch.equal(nearest_code(z_e, codebook), brute)
    assert torch.equal(nearest_code(codebook, codebook), torch.arange(32))  # each code is its own nearest


def test_straight_through_passes_the_decoders_gradient_to_the_encoder_unchanged():
    g = torch.Generator().manual_seed(1)
    z_e = torch.randn(5, 3, generator=g, requires_grad=True)
    codebook = torch.randn(8, 3, generator=g, requires_grad=True)
    z_q, indices = quantize(z_e, codebook)
    assert torch.allclose(z_q, codebook[indices], atol=1e-6)  # forward: the nearest codes (up to rounding)
    decoder = torch.nn.Linear(3, 2)
    out = decoder(z_q).pow(2).sum()
    grad_z_e, = torch.autograd.grad(out, z_e, retain_graph=True)
    z_q_leaf = codebook[indices].detach().requires_grad_(True)  # the decoder's gradient at z_q, by autograd
    grad_z_q, = torch.autograd.grad(decoder(z_q_leaf).pow(2).sum(), z_q_leaf)
    assert torch.allclose(grad_z_e, grad_z_q)  # copied to z_e unchanged
    assert torch.autograd.grad(out, codebook, allow_unused=True)[0] is None  # the codes learn from their own loss
    assert torch.allclose(straight_through(z_e, z_q), z_q, atol=1e-6)


def test_codebook_and_commitment_losses_move_each_side_only():
    z_e = torch.tensor([[1.0, 2.0]], requires_grad=True)
    z_q = torch.tensor([[0.0, 0.0]], requires_grad=True)
    assert torch.allclose(codebook_loss(z_e, z_q), torch.tensor([5.0]))
    assert torch.allclose(commitment_loss(z_e, z_q), torch.tensor([5.0]))
    g_e, g_q = torch.autograd.grad(codebook_loss(z_e, z_q).sum(), (z_e, z_q), allow_unused=True)
    assert g_e is None and torch.allclose(g_q, torch.tensor([[-2.0, -4.0]]))
    g_e, g_q = torch.autograd.grad(commitment_loss(z_e, z_q).sum(), (z_e, z_q), allow_unused=True)
    assert g_q is None and torch.allclose(g_e, torch.tensor([[2.0, 4.0]]))


def test_perplexity_closed_forms_and_dead_codes():
    assert perplexity(torch.arange(16).repeat(5), 16) == pytest.approx(16)  # uniform usage: K
    assert perplexity(torch.full((100,), 3), 16) == pytest.approx(1)       # one code: 1
    two = torch.tensor([0] * 75 + [1] * 25)  # p = (3/4, 1/4): exp(H)
    assert perplexity(two, 4) == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))
    assert dead_codes(two, 4) == 2 and dead_codes(torch.arange(4), 4) == 0
    assert code_usage(two.view(4, 25), 4).tolist() == [75, 25, 0, 0]


def test_vqvae_trains_through_fit_and_its_checkpoint_config_round_trips():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(256, 1, 28, 28, generator=g) > 0.7).float()
    torch.manual_seed(0)
    model = VQVAE(num_codes=16, code_dim=4, num_slots=5, hidden_dim=64)
    history = fit(model, (x, None), num_epochs=4, lr=3e-3, batch_size=64, beta=0.25, progress=False)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert {"train_recon", "train_codebook", "train_commitment", "train_perplexity"} <= history.keys()
    terms = loss_terms(model, x[:8], beta=0.25)
    assert torch.allclose(terms["loss"], terms["recon"] + terms["codebook"] + 0.25 * terms["commitment"])
    out = model(x[:3])
    assert out.x_hat.shape == (3, 1, 28, 28) and out.indices.shape == (3, 5) and out.z_q.shape == (3, 5, 4)
    assert torch.allclose(model.decode_indices(out.indices), out.x_hat)
    assert model_config(build_model(model_config(model))) == model_config(model)


@pytest.mark.parametrize("call, message", [
    (lambda: nearest_code(torch.zeros(4, 3), torch.zeros(8, 2)), "same D"),
    (lambda: nearest_code(torch.zeros(2, 4, 3), torch.zeros(8, 3)), "Flatten"),
    (lambda: perplexity(torch.tensor([0, 5]), 4), "0..3"),
    (lambda: dead_codes(torch.tensor([0.0, 1.0]), 4), "int64"),
    (lambda: perplexity(torch.zeros(0, dtype=torch.int64), 4), "non-empty"),
])
def test_bad_input_gets_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
