"""Checkpoints keep everything, refuse the wrong model, and an interrupted save loses nothing."""
import copy
import dataclasses
import os
import time

import pytest
import torch

from course_utils import checkpoints
from course_utils.checkpoints import CheckpointError, fit_or_load, load_checkpoint, save_checkpoint
from course_utils.models import VAE, ConvVAE
from course_utils.train import TrainConfig


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
        f.write(b"half")
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


DATA = (torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.zeros(64, dtype=torch.int64))


def test_a_diverged_training_is_never_saved_or_loaded(tmp_path, capsys):
    """lr far too high, no test data: nothing is saved; a checkpoint with NaN weights (an older course's) retrains."""
    x = torch.rand(512, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)  # the initial weights
    with pytest.warns(UserWarning, match="diverged"):
        fit_or_load(tmp_path / "v.pt", VAE(latent_dim=2, hidden_dim=8), (x, None), num_epochs=2, lr=100.0,
                    batch_size=64, progress=False)
    assert not (tmp_path / "v.pt").exists()
    bad = VAE(latent_dim=2, hidden_dim=8)
    with torch.no_grad():
        bad.fc4.bias.fill_(float("nan"))
    with pytest.raises(CheckpointError, match="NaN or inf weights"):
        save_checkpoint(tmp_path / "v.pt", bad)
    good = save_checkpoint(tmp_path / "good.pt", VAE(latent_dim=2, hidden_dim=8), {"epoch": [1]},
                           {**dataclasses.asdict(TrainConfig(num_epochs=1)), "num_train": 64, "num_test": 0})
    checkpoint = torch.load(good, weights_only=True)
    checkpoint["state_dict"]["fc4.bias"].fill_(float("nan"))
    torch.save(checkpoint, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="diverged"):
        load_checkpoint(tmp_path / "nan.pt", VAE(latent_dim=2, hidden_dim=8))
    model = VAE(latent_dim=2, hidden_dim=8)
    fit_or_load(tmp_path / "nan.pt", model, DATA, num_epochs=1, progress=False)
    assert "Not using" in capsys.readouterr().out and all(torch.isfinite(p).all() for p in model.parameters())


def _full_disk(monkeypatch):
    """torch.save writes a little, then the disk is full (ENOSPC), as on a full drive."""
    import errno

    def fills_the_disk(obj, f, *args, **kwargs):
        f.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", fills_the_disk)


def test_a_full_disk_keeps_the_old_checkpoint_and_the_trained_model(tmp_path, monkeypatch, capsys):
    path = save_checkpoint(tmp_path / "v.pt", VAE(latent_dim=2, hidden_dim=8), {"train_loss": [5.0]})
    _full_disk(monkeypatch)
    with pytest.raises(CheckpointError, match=r"No space left.*needs about 0\.\d MB and .* MB are free.*is kept"):
        save_checkpoint(path, VAE(latent_dim=2, hidden_dim=8))
    model = VAE(latent_dim=2, hidden_dim=8)
    history = fit_or_load(tmp_path / "other.pt", model, DATA, num_epochs=1, progress=False)
    assert history["epoch"] == [1]  # the finished training is returned, not lost
    assert "in memory but not saved" in capsys.readouterr().out
    monkeypatch.undo()
    assert load_checkpoint(path)[1]["history"] == {"train_loss": [5.0]}
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["v.pt"]  # no temporary file left


def test_a_real_full_disk(tmp_path):
    """A 128 KB tmpfs (root can mount one, as CI runs): a small checkpoint fits, a larger one does not."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        small = save_checkpoint(disk / "v.pt", VAE(latent_dim=2, hidden_dim=8), {"train_loss": [5.0]})
        with pytest.raises(CheckpointError, match=r"needs about 0\.\d MB and 0\.\d MB are free"):
            save_checkpoint(small, VAE(latent_dim=2, hidden_dim=64))
        assert load_checkpoint(small)[1]["history"] == {"train_loss": [5.0]}
        assert [p.name for p in disk.iterdir()] == ["v.pt"]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)  # lazy: even while a file there is open


def test_checkpoints_get_the_usual_permissions(tmp_path):
    """A workshop server's other accounts can read a checkpoint, as any file made under the usual umask."""
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "v.pt", VAE(latent_dim=2, hidden_dim=8))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_an_unreadable_checkpoint_says_permission_not_damaged(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "v.pt", VAE(latent_dim=2, hidden_dim=8))

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(checkpoints.torch, "load", denied)
    with pytest.raises(CheckpointError, match="permission denied.*chmod a\\+r"):
        load_checkpoint(path)


@pytest.mark.parametrize("change", ["missing key", "extra key", "wrong shape", "no settings", "no history"])
def test_a_checkpoint_of_another_version_retrains_and_never_half_loads(tmp_path, change, capsys):
    path = save_checkpoint(tmp_path / "v.pt", VAE(latent_dim=2, hidden_dim=8), {"epoch": [1]},
                           {**dataclasses.asdict(TrainConfig(num_epochs=1)), "num_train": 64, "num_test": 0})
    checkpoint = torch.load(path, weights_only=True)
    state = checkpoint["state_dict"]
    if change == "missing key":
        del state["fc1.bias"]
    elif change == "extra key":
        state["fc5.weight"] = torch.zeros(3)
    elif change == "wrong shape":
        state["fc1.bias"] = torch.zeros(9)
    else:
        del checkpoint["settings" if change == "no settings" else "history"]
    torch.save(checkpoint, path)
    model = VAE(latent_dim=2, hidden_dim=8)
    if change in ("missing key", "extra key", "wrong shape"):
        initial = copy.deepcopy(model.state_dict())
        with pytest.raises(CheckpointError, match="other names or shapes"):
            load_checkpoint(path, model)
        for key, value in model.state_dict().items():  # nothing was copied in
            assert torch.equal(value, initial[key]), key
    history = fit_or_load(path, model, DATA, num_epochs=1, progress=False)
    assert history["epoch"] == [1] and "Loaded" not in capsys.readouterr().out


def test_a_folder_in_place_of_the_checkpoint_is_named_before_training(tmp_path):
    (tmp_path / "v.pt").mkdir()
    with pytest.raises(CheckpointError, match="is a folder"):
        fit_or_load(tmp_path / "v.pt", VAE(latent_dim=2, hidden_dim=8), DATA, num_epochs=100, progress=False)


def test_a_killed_save_leaves_nothing_after_the_next_save(tmp_path):
    """A temporary file an hour old is a killed save's and goes; a recent one may be another process's, and stays."""
    old, recent = tmp_path / ".v.pt.abc123.part", tmp_path / ".v.pt.def456.part"
    for part in (old, recent):
        part.write_bytes(b"half a checkpoint")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    save_checkpoint(tmp_path / "v.pt", VAE(latent_dim=2, hidden_dim=8))
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [recent.name, "v.pt"]


def test_odd_models_get_clear_errors(tmp_path):
    save_checkpoint(tmp_path / "v.pt", VAE(latent_dim=2, hidden_dim=8))
    with pytest.raises(CheckpointError, match="meta device"):
        load_checkpoint(tmp_path / "v.pt", VAE(latent_dim=2, hidden_dim=8).to("meta"))

    class Mine(torch.nn.Module):  # a learner's own model that does not keep its constructor argument
        def __init__(self, width=3):
            super().__init__()
            self.layer = torch.nn.Linear(width, 1)

    with pytest.raises(TypeError, match=r"self.width = width"):
        save_checkpoint(tmp_path / "mine.pt", Mine())
