"""The training loop lowers the loss, evaluates correctly and survives an interruption."""
import copy

import pytest
import torch

from course_utils.data import batches
from course_utils.losses import reconstruction_loss, vae_loss
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


def test_an_interrupt_inside_a_no_grad_step_leaves_autograd_on(monkeypatch):
    """optimizer.step runs with autograd off; the stop button can land there, and the next cell must still train."""
    def step_interrupted_without_grad(self, *args, **kwargs):
        torch.set_grad_enabled(False)  # what step's decorator does on entry, before it could restore the mode
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.optim.Adam, "step", step_interrupted_without_grad)
    try:
        fit(VAE(latent_dim=4, hidden_dim=32), blobs(), num_epochs=2, batch_size=64, progress=False)
        assert torch.is_grad_enabled()
    finally:
        torch.set_grad_enabled(True)


def test_fit_rejects_bad_settings():
    with pytest.raises(ValueError, match="lr"):
        fit(VAE(), blobs(), lr=0)


def test_fit_names_an_unknown_setting():
    with pytest.raises(TypeError, match=r"Unknown training settings \['epochs'\].*num_epochs"):
        fit(VAE(), blobs(), epochs=3)


def _hand_loop(model, data, num_steps, lr=1e-3, batch_size=64, seed=0):
    """The loop notebooks 01 and 06 write by hand: batches, forward, the taught loss, zero_grad, backward, step."""
    torch.manual_seed(seed)  # the noise eps of reparameterize, as fit seeds it
    shuffle = torch.Generator().manual_seed(seed)  # the batch order, as fit draws it
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    x_train, y_train = data
    model.train()
    for _, (x, _) in zip(range(num_steps), batches(x_train, y_train, batch_size, generator=shuffle)):
        if isinstance(model, VAE):
            x_hat, mu, logvar = model(x)
            loss = vae_loss(x_hat, x, mu, logvar)
        else:
            x_hat = model(x)
            loss = reconstruction_loss(x_hat, x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("model_cls", [Autoencoder, VAE])
def test_fit_is_the_hand_written_loop(model_cls):
    """Same seed, same steps: fit and the notebooks' loop end with the same parameters, bit for bit."""
    seed_everything(0)
    by_hand = model_cls(latent_dim=4, hidden_dim=32)
    with_fit = copy.deepcopy(by_hand)
    data = blobs(n=320)  # five batches of 64: one epoch of fit
    _hand_loop(by_hand, data, num_steps=5)
    fit(with_fit, data, num_epochs=1, batch_size=64, progress=False)
    for (name, a), b in zip(by_hand.named_parameters(), with_fit.parameters()):
        assert torch.equal(a, b), name
    other = copy.deepcopy(by_hand)  # the comparison can fail: a different seed gives other parameters
    fit(other, data, num_epochs=1, batch_size=64, seed=1, progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(by_hand.parameters(), other.parameters()))


def test_fit_trains_through_the_model_forward_and_the_taught_loss(monkeypatch):
    """No second forward pass or loss: fit calls model(x) and losses.vae_loss on every batch."""
    import course_utils.train as train

    calls = {"forward": 0, "vae_loss": 0}
    model = VAE(latent_dim=2, hidden_dim=16)
    original_forward, original_loss = model.forward, train.vae_loss

    def counting_forward(x):
        calls["forward"] += 1
        return original_forward(x)

    def counting_loss(*args, **kwargs):
        calls["vae_loss"] += 1
        return original_loss(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting_forward)
    monkeypatch.setattr(train, "vae_loss", counting_loss)
    fit(model, blobs(n=256), num_epochs=2, batch_size=64, progress=False)
    assert calls == {"forward": 8, "vae_loss": 8}


def test_fit_trains_the_model_where_it_is_and_moves_nothing(monkeypatch):
    """fit neither moves the model nor picks a device: a model built on the CPU stays there, whatever get_device
    says."""
    import course_utils

    for module in vars(course_utils).values():  # wherever get_device is looked up: the best device is not the CPU
        if hasattr(module, "get_device"):
            monkeypatch.setattr(module, "get_device", lambda: torch.device("meta"))
    model = VAE(latent_dim=2, hidden_dim=16)
    fit(model, blobs(n=128), num_epochs=1, progress=False)
    assert {p.device.type for p in model.parameters()} == {"cpu"}


def test_fast_keeps_float32_weights_and_trains_alike(monkeypatch):
    """fast=True (fused Adam): the weights stay float32 and the loss follows the default's."""
    runs = {}
    for fast in (False, True):
        seed_everything(0)
        model = VAE(latent_dim=4, hidden_dim=64)
        runs[fast] = fit(model, blobs(), blobs(seed=1), num_epochs=4, lr=3e-3, batch_size=64, fast=fast,
                         progress=False)["test_loss"][-1]
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert runs[True] == pytest.approx(runs[False], rel=0.05)


def test_the_default_never_enters_autocast(monkeypatch):
    """Where torch has no autocast for the device (torch 2.4 on Apple's MPS), fit still trains: it never enters
    torch.autocast, which raises there even when disabled."""
    import torch.amp.autocast_mode

    monkeypatch.setattr(torch.amp.autocast_mode, "is_autocast_available", lambda device_type: False)
    for fast in (False, True):
        history = fit(VAE(latent_dim=2, hidden_dim=16), blobs(n=128), num_epochs=1, fast=fast, progress=False)
        assert len(history["train_loss"]) == 1


def test_fast_is_off_by_default_and_plain():
    """The default: float32, plain torch.optim.Adam (not fused)."""
    from course_utils.train import TrainConfig, make_optimizer

    assert TrainConfig().fast is False
    optimizer = make_optimizer(VAE(latent_dim=2, hidden_dim=8), TrainConfig())
    assert type(optimizer) is torch.optim.Adam and not optimizer.defaults.get("fused")
    assert make_optimizer(VAE(latent_dim=2, hidden_dim=8), TrainConfig(fast=True)).defaults["fused"] is True


def test_fit_accepts_unlabelled_images():
    x, _ = blobs(n=128)
    history = fit(Autoencoder(latent_dim=2, hidden_dim=16), (x, None), (x, None), num_epochs=1, progress=False)
    assert len(history["test_loss"]) == 1


def test_training_data_is_checked_once_as_a_whole():
    x, y = blobs(n=256)
    x[100, 0, 5, 5] = float("nan")  # one bad pixel in one image, not in the first batch
    with pytest.raises(ValueError, match="the training images contains NaN"):
        fit(VAE(latent_dim=2, hidden_dim=16), (x, y), num_epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit(VAE(latent_dim=2, hidden_dim=16), (x.nan_to_num(0) * 255, y), num_epochs=1, progress=False)


def test_a_diverging_run_stops_keeps_finite_weights_and_says_what_to_change():
    """lr far too high: the loss becomes NaN in the first epoch; fit warns, names the epoch and the fix, and gives back
    the weights it started from (finite), with an empty history."""
    seed_everything(0)
    model = VAE(latent_dim=4, hidden_dim=32)
    initial = copy.deepcopy(model.state_dict())
    with pytest.warns(UserWarning, match=r"diverged in epoch 1.*Lower the learning rate \(now lr=100; try lr=10\)"):
        history = fit(model, blobs(), num_epochs=3, lr=100.0, batch_size=64, progress=False)
    assert history["epoch"] == []
    for key, value in model.state_dict().items():
        assert torch.equal(value, initial[key]), key


@pytest.mark.parametrize("loss_seen", ["nan", "finite"])
def test_divergence_after_good_epochs_keeps_the_last_finite_epoch(monkeypatch, loss_seen):
    """The weights blow up in epoch 3 (simulated), its loss NaN, or still finite when the last step did it: the history
    and weights are those of epoch 2, and the test evaluation never sees the NaN weights."""
    import course_utils.train as train

    real_epoch, calls = train.train_epoch, []

    def nan_in_epoch_3(model, *args, **kwargs):
        calls.append(1)
        terms = real_epoch(model, *args, **kwargs)
        if len(calls) == 3:
            with torch.no_grad():
                model.fc4.weight.fill_(float("nan"))  # the weights blew up during the epoch
            return {**terms, "loss": float("nan")} if loss_seen == "nan" else terms
        return terms

    monkeypatch.setattr(train, "train_epoch", nan_in_epoch_3)
    model = VAE(latent_dim=4, hidden_dim=32)
    with pytest.warns(UserWarning, match="diverged in epoch 3.*those of epoch 2"):
        history = fit(model, blobs(), blobs(seed=1), num_epochs=5, batch_size=64, progress=False)
    assert history["epoch"] == [1, 2]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert evaluate(model, blobs(seed=1))["loss"] == pytest.approx(history["test_loss"][-1], rel=1e-6)


def test_an_exploding_loss_is_reported(monkeypatch):
    import course_utils.train as train

    monkeypatch.setattr(train, "EXPLODING", 1.0)  # any real loss is above it
    with pytest.warns(UserWarning, match="loss is exploding in epoch 1"):
        fit(VAE(latent_dim=2, hidden_dim=16), blobs(n=128), num_epochs=1, progress=False)


def test_the_explosion_threshold_is_ten_untrained_models():
    import math

    import course_utils.train as train

    untrained = VAE(latent_dim=2, hidden_dim=16)
    with torch.no_grad():
        untrained.fc4.weight.zero_()
        untrained.fc4.bias.zero_()  # x_hat = 0.5 everywhere
    x = blobs(n=64)[0]
    assert evaluate(untrained, (x, None))["recon"] == pytest.approx(784 * math.log(2), rel=1e-5)
    assert train.EXPLODING == pytest.approx(10 * 784 * math.log(2))


@pytest.mark.parametrize("settings, error", [({"num_epochs": 2.5}, TypeError), ({"batch_size": 0}, ValueError),
                                             ({"seed": True}, TypeError), ({"beta": -1.0}, ValueError)])
def test_odd_settings_are_named(settings, error):
    name = next(iter(settings))
    with pytest.raises(error, match=name):
        fit(VAE(latent_dim=2, hidden_dim=16), blobs(n=64), progress=False, **settings)


def test_odd_data_gets_a_clear_error():
    with pytest.raises(ValueError, match="training set is empty"):
        fit(VAE(latent_dim=2, hidden_dim=16), (torch.empty(0, 1, 28, 28), None), progress=False)
    x, y = blobs(n=64)
    with pytest.raises(TypeError, match=r"float64 but the model's weights are torch.float32.*x.to\(torch.float32\)"):
        fit(VAE(latent_dim=2, hidden_dim=16), (x.double(), y), progress=False)
    with pytest.raises(TypeError, match=r"Convert it with the training images.float\(\) / 255"):
        fit(VAE(latent_dim=2, hidden_dim=16), ((x * 255).to(torch.uint8), y), progress=False)
    with pytest.raises(TypeError, match="torch.as_tensor"):
        fit(VAE(latent_dim=2, hidden_dim=16), (x.numpy(), y), progress=False)
    with pytest.raises(ValueError, match="needs the digits' labels"):
        fit(ConditionalVAE(latent_dim=2, hidden_dim=16), (x, None), progress=False)


@pytest.mark.parametrize("batch_size", [0, 2.5, -1])
def test_evaluate_names_a_batch_size_that_is_not_a_whole_number(batch_size):
    with pytest.raises(ValueError, match=f"batch_size={batch_size} must be a positive whole number"):
        evaluate(VAE(latent_dim=2, hidden_dim=16), blobs(n=16), batch_size=batch_size)
