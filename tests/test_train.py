"""The training loop lowers the loss, evaluates correctly and survives an interruption."""
import pytest
import torch

from course_utils.losses import vae_loss
from course_utils.models import VAE, Autoencoder, ConditionalVAE
from course_utils.setup import seed_everything
from course_utils.train import evaluate, fit


def blobs(n=512, seed=0):
    """Images of a few fixed prototypes with a little noise: learnable in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(4, 1, 28, 28, generator=g).round()
    y = torch.randint(0, 4, (n,), generator=g)
    x = (prototypes[y] * 0.9 + 0.1 * torch.rand(n, 1, 28, 28, generator=g)).clamp(0, 1)
    return x, y


@pytest.mark.parametrize("model", [Autoencoder(latent_dim=4, hidden_dim=64), VAE(latent_dim=4, hidden_dim=64),
                                   ConditionalVAE(latent_dim=4, hidden_dim=64)])
def test_short_training_lowers_the_loss(model):
    data = blobs()
    before = evaluate(model, data)["loss"]
    history = fit(model, data, data, num_epochs=4, lr=3e-3, batch_size=64, progress=False)
    assert history["epoch"] == [1, 2, 3, 4]
    assert history["test_loss"][-1] < 0.8 * before
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_vae_history_has_its_terms_and_they_add_up():
    history = fit(VAE(latent_dim=4, hidden_dim=64), blobs(), blobs(seed=1), num_epochs=2, beta=2.0, progress=False)
    for split in ("train", "test"):
        loss, recon, kl = (history[f"{split}_{k}"][-1] for k in ("loss", "recon", "kl"))
        assert loss == pytest.approx(recon + 2.0 * kl, rel=1e-5)


def test_evaluate_is_the_mean_of_vae_loss():
    model = VAE(latent_dim=3, hidden_dim=32).eval()
    x, y = blobs(n=300)
    with torch.no_grad():
        x_hat, mu, logvar = model(x)
        expected = vae_loss(x_hat, x, mu, logvar).item()
    assert evaluate(model, (x, y), batch_size=128)["loss"] == pytest.approx(expected, rel=1e-4)


def test_same_seed_same_history():
    runs = []
    for seed in (3, 3, 4):
        seed_everything(seed)  # the initial weights
        runs.append(fit(VAE(latent_dim=4, hidden_dim=32), blobs(), num_epochs=2, seed=seed, progress=False))
    assert runs[0]["train_loss"] == runs[1]["train_loss"]
    assert runs[0]["train_loss"] != runs[2]["train_loss"]


def test_interrupt_keeps_the_last_finished_epoch(monkeypatch):
    model = VAE(latent_dim=4, hidden_dim=32)
    calls = {"n": 0}
    original = torch.optim.Adam.step

    def step_then_interrupt(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8 + 3:  # 8 steps make one epoch of 512 images; stop 3 steps into the second
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step_then_interrupt)
    history = fit(model, blobs(), blobs(seed=1), num_epochs=5, batch_size=64, progress=False)
    assert history["epoch"] == [1]
    assert len(history["train_loss"]) == len(history["test_loss"]) == 1
    # the weights are those at the end of epoch 1: evaluating them gives epoch 1's test loss
    assert evaluate(model, blobs(seed=1))["loss"] == pytest.approx(history["test_loss"][0], rel=1e-6)


def test_fit_rejects_bad_settings():
    with pytest.raises(ValueError, match="lr"):
        fit(VAE(), blobs(), lr=0)


def test_bf16_mixed_precision_trains_and_keeps_float32_weights():
    runs = {}
    for mixed in (False, True):
        seed_everything(0)
        model = VAE(latent_dim=4, hidden_dim=64)
        runs[mixed] = fit(model, blobs(), blobs(seed=1), num_epochs=4, lr=3e-3, batch_size=64, mixed_precision=mixed,
                          progress=False)["test_loss"][-1]
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert runs[True] == pytest.approx(runs[False], rel=0.05)  # bf16 products, float32 losses: the same training


def test_autocast_is_chosen_only_where_the_cpu_has_native_bf16(monkeypatch):
    from course_utils.train import autocast_dtype

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert autocast_dtype(torch.device("cpu")) is None
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert autocast_dtype(torch.device("cpu")) == torch.bfloat16
    assert autocast_dtype(torch.device("cuda")) is None


def test_fit_accepts_unlabelled_images():
    x, _ = blobs(n=128)
    history = fit(Autoencoder(latent_dim=2, hidden_dim=16), (x, None), (x, None), num_epochs=1, progress=False)
    assert len(history["test_loss"]) == 1


def test_epoch_means_are_exact_under_bf16_autocast():
    from course_utils.losses import kl_divergence
    from course_utils.train import train_epoch

    seed_everything(0)
    model = VAE(latent_dim=8, hidden_dim=64)
    x, y = blobs(n=8192)
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)  # the weights stay put: the KL is a fixed number
    terms = train_epoch(model, frozen, (x, y), batch_size=64, autocast=torch.bfloat16, progress=False)
    with torch.no_grad():
        expected = kl_divergence(*model.encode(x)).mean().item()
    assert terms["kl"] == pytest.approx(expected, rel=0.01)


def test_training_data_is_checked_once_as_a_whole():
    x, y = blobs(n=256)
    x[100, 0, 5, 5] = float("nan")  # one bad pixel in one image, not in the first batch
    with pytest.raises(ValueError, match="the training images contains NaN"):
        fit(VAE(latent_dim=2, hidden_dim=16), (x, y), num_epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit(VAE(latent_dim=2, hidden_dim=16), (x.nan_to_num(0) * 255, y), num_epochs=1, progress=False)


def _compare_compiled(model_cls, **fit_kwargs):
    histories = []
    for compile in (False, True):
        seed_everything(0)
        histories.append(fit(model_cls(latent_dim=4, hidden_dim=32), blobs(n=256), blobs(n=128, seed=1), num_epochs=2,
                             batch_size=64, compile=compile, progress=False, **fit_kwargs))
    return histories


def test_compiled_training_follows_the_same_path(monkeypatch):
    """compile=True computes the same loss terms (up to rounding in fused kernels) along the same training path."""
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config, "fallback_random", True)  # the same eps as eager, not inductor's own RNG
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    eager, compiled = _compare_compiled(VAE, mixed_precision=False)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # it did compile
    for key in ("train_loss", "train_recon", "train_kl", "test_loss"):
        assert compiled[key] == pytest.approx(eager[key], rel=1e-4), key


@pytest.mark.filterwarnings("ignore:dynamo_pgo force disabled")  # PyTorch's note on the disabled caches
def test_compile_without_a_cxx_compiler_warns_and_trains_eagerly(monkeypatch):
    """A machine without a working C++ compiler (simulated): a warning that says what happened, then plain training."""
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", ("/nonexistent/g++",))
    monkeypatch.setattr(inductor_config, "force_disable_caches", True)  # no cached kernel may hide the failure
    torch._dynamo.reset()
    try:
        with pytest.warns(UserWarning, match="torch.compile failed.*compile=False"):
            eager, compiled = _compare_compiled(Autoencoder, mixed_precision=False)
    finally:
        torch._dynamo.reset()
    assert compiled["train_loss"] == eager["train_loss"]  # the same eager computation, bit for bit
