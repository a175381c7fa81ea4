"""Checkpoints keep everything, refuse the wrong model, and an interrupted save loses nothing."""
import pytest
import torch

from course_utils import checkpoints
from course_utils.checkpoints import CheckpointError, fit_or_load, load_checkpoint, save_checkpoint
from course_utils.models import VAE, ConvVAE


def test_round_trip_keeps_config_weights_history_and_versions(tmp_path):
    model = VAE(latent_dim=3, hidden_dim=16)
    save_checkpoint(tmp_path / "m.pt", model, {"train_loss": [1.0]}, {"num_epochs": 1})
    loaded, checkpoint = load_checkpoint(tmp_path / "m.pt")
    assert isinstance(loaded, VAE) and loaded.latent_dim == 3 and loaded.hidden_dim == 16
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    assert checkpoint["history"] == {"train_loss": [1.0]}
    assert checkpoint["versions"]["torch"] == torch.__version__


def test_wrong_architecture_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path / "m.pt", VAE(latent_dim=3, hidden_dim=16))
    with pytest.raises(CheckpointError, match="latent_dim"):
        load_checkpoint(tmp_path / "m.pt", VAE(latent_dim=4, hidden_dim=16))
    with pytest.raises(CheckpointError, match="ConvVAE"):
        load_checkpoint(tmp_path / "m.pt", ConvVAE(latent_dim=3))


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", VAE(latent_dim=2, hidden_dim=8))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="Delete it"):
        load_checkpoint(path)


def test_interrupted_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.pt", VAE(latent_dim=2, hidden_dim=8), {"train_loss": [5.0]})

    def dies_halfway(obj, f, *args, **kwargs):
        with open(f, "wb") as out:
            out.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints.torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, VAE(latent_dim=2, hidden_dim=8), {"train_loss": [1.0]})
    monkeypatch.undo()
    _, checkpoint = load_checkpoint(path)
    assert checkpoint["history"] == {"train_loss": [5.0]}
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["m.pt"]  # no temporary file left behind


def test_a_checkpoint_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this ran",))

    torch.save({"config": {}, "state_dict": {}, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")


def test_fit_or_load_trains_once_then_loads(tmp_path, capsys):
    x = torch.rand(64, 1, 28, 28)
    data = (x, torch.zeros(64, dtype=torch.int64))
    first = VAE(latent_dim=2, hidden_dim=8)
    history = fit_or_load(tmp_path / "v.pt", first, data, num_epochs=1, progress=False)
    second = VAE(latent_dim=2, hidden_dim=8)
    assert fit_or_load(tmp_path / "v.pt", second, data, num_epochs=1, progress=False) == history
    assert "Loaded" in capsys.readouterr().out
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    fit_or_load(tmp_path / "v.pt", VAE(latent_dim=2, hidden_dim=8), data, num_epochs=2, progress=False)
    assert "other settings" in capsys.readouterr().out


def test_other_settings_retrain_from_the_models_own_initialization(tmp_path, capsys):
    """The checkpoint's settings are compared before any weight is loaded: a retrain never starts from them."""
    data = (torch.rand(64, 1, 28, 28), torch.zeros(64, dtype=torch.int64))
    fit_or_load(tmp_path / "v.pt", VAE(latent_dim=2, hidden_dim=8), data, num_epochs=1, progress=False)
    torch.manual_seed(1)
    fresh = VAE(latent_dim=2, hidden_dim=8)
    initial = {k: v.clone() for k, v in fresh.state_dict().items()}
    fit_or_load(tmp_path / "v.pt", fresh, data, num_epochs=0, progress=False)  # other settings; 0 epochs: no step
    assert "other settings: training again from the model's own initialization" in capsys.readouterr().out
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, initial[key]), key
    _, checkpoint = load_checkpoint(tmp_path / "v.pt")
    assert checkpoint["settings"]["num_epochs"] == 0  # the new run replaced the old checkpoint


def test_trained_and_loaded_models_stay_on_the_device_they_were_built_on(tmp_path, monkeypatch):
    """Both paths of fit_or_load leave the model where it was built, even where get_device() names another device."""
    import course_utils

    for module in vars(course_utils).values():  # wherever get_device is looked up: the best device is not the CPU
        if hasattr(module, "get_device"):
            monkeypatch.setattr(module, "get_device", lambda: torch.device("meta"))
    data = (torch.rand(64, 1, 28, 28), torch.zeros(64, dtype=torch.int64))
    devices = []
    for _ in ("trains", "loads"):
        model = VAE(latent_dim=2, hidden_dim=8)
        fit_or_load(tmp_path / "v.pt", model, data, num_epochs=1, progress=False)
        devices.append({p.device for p in model.parameters()})
    assert devices == [{torch.device("cpu")}, {torch.device("cpu")}]
