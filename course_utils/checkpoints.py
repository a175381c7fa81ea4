"""Checkpoints: save a trained model whole and atomically, load it safely, or train it when there is none."""
from __future__ import annotations

import dataclasses
import inspect
import os
import platform
import shutil
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from . import __version__, models
from .setup import fast_mode, project_dir, temp_path
from .train import Data, TrainConfig, fit, make_config


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: damaged, or made for another model or other settings."""


def model_config(model: nn.Module) -> dict[str, Any]:
    """The model's class name and constructor arguments, e.g. {'class': 'VAE', 'latent_dim': 20, ...}."""
    config = {"class": type(model).__name__}
    for name in [p for p in inspect.signature(type(model).__init__).parameters if p not in ("self", "args", "kwargs")]:
        value = getattr(model, name, None)
        if not isinstance(value, (int, float, str, bool)):
            raise TypeError(f"{type(model).__name__} must keep its constructor argument {name!r} as a plain number or "
                            f"string attribute (in __init__: self.{name} = {name}) so that a checkpoint can record it; "
                            f"got {type(value).__name__}.")
        config[name] = value
    return config


def build_model(config: dict[str, Any]) -> nn.Module:
    """A new, untrained model from a model_config() dictionary."""
    kwargs = dict(config)
    cls = getattr(models, kwargs.pop("class"), None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise CheckpointError(f"{config['class']!r} is not a model of course_utils.models.")
    return cls(**kwargs)


def _check_weights(state: dict[str, torch.Tensor], where: str) -> None:
    """A CheckpointError if any weight is NaN or inf: a diverged training is never saved or loaded."""
    bad = [name for name, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise CheckpointError(f"{where} has NaN or inf weights ({', '.join(bad[:3])}): the training diverged. Train "
                              f"again with a lower learning rate.")


def save_checkpoint(path: str | Path, model: nn.Module, history: Optional[dict] = None,
                    settings: Optional[dict] = None) -> Path:
    """Save config, weights, history, training settings and library versions; atomically (whole or not at all).

    A CheckpointError, with the previous checkpoint kept, when the weights are not finite or the file cannot be written
    (a full disk, a folder without write permission). The file gets the usual permissions (the umask's).
    """
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _check_weights(state, "The model")
    payload = {"config": model_config(model), "state_dict": state, "history": history or {},
               "settings": settings or {},
               "versions": {"course_utils": __version__, "torch": str(torch.__version__),
                            "python": platform.python_version()}}
    _refuse_folder(path)
    megabytes = sum(t.numel() * t.element_size() for t in state.values()) / 2**20
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(path)  # also removes what a killed save left
        f = open(tmp, "xb")  # the umask's permissions, as any new file
    except OSError as err:
        raise CheckpointError(f"Cannot write in {path.parent} ({err.strerror}): set COURSE_CHECKPOINTS to a folder "
                              f"of your own, or pass another path.") from err
    try:
        with f:  # closed (and its space released) even when writing fails
            torch.save(payload, f)
        os.replace(tmp, path)  # atomic rename: an interrupted save leaves the old file, never half a new one
    except (OSError, RuntimeError) as err:
        free = shutil.disk_usage(path.parent).free / 2**20
        reason = str(err).splitlines()[0][:200]
        raise CheckpointError(f"Could not save {path} ({reason}). It needs about {megabytes:.1f} MB and {free:.1f} MB "
                              f"are free there: free some disk space, or set COURSE_CHECKPOINTS to another folder. "
                              f"The previous file, if any, is kept.") from None  # no traceback keeps the write alive
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _refuse_folder(path: Path) -> None:
    """A CheckpointError when path is a folder: a checkpoint path names a file."""
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file: remove the folder or pass another path.")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, loaded with weights_only=True (a checkpoint file can run no code)."""
    path = Path(path)
    _refuse_folder(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except PermissionError as err:
        raise CheckpointError(f"{path} cannot be read by this account (permission denied). Ask its owner to make it "
                              f"readable (chmod a+r), or set COURSE_CHECKPOINTS to a folder of your own.") from err
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(err).__name__}). Delete it and train "
                              f"again; nothing else depends on it.") from err
    if not isinstance(checkpoint, dict) or not {"config", "state_dict"} <= checkpoint.keys():
        raise CheckpointError(f"{path} is not a checkpoint of this course (it has no model config or weights). "
                              f"Delete it and train again; nothing else depends on it.")
    return checkpoint


def _load_weights(model: nn.Module, checkpoint: dict[str, Any], path: Path) -> None:
    """The checkpoint's weights into model, all or none: their names and shapes are checked before any is copied."""
    state, own = checkpoint["state_dict"], model.state_dict()
    if any(t.is_meta for t in own.values()):
        raise CheckpointError("The model is on the meta device, where weights cannot be loaded: build it on a real "
                              "device, e.g. VAE().to(device).")
    if not isinstance(state, dict) or {k: tuple(v.shape) for k, v in state.items()} != \
            {k: tuple(v.shape) for k, v in own.items()}:
        raise CheckpointError(f"{path} holds weights of other names or shapes than the model's (another version of "
                              f"the course?). Delete it and train again.")
    _check_weights(state, str(path))
    model.load_state_dict(state)  # copies into the existing parameters, on their device


def load_checkpoint(path: str | Path, model: Optional[nn.Module] = None) -> tuple[nn.Module, dict]:
    """Load (model, checkpoint); the weights go to the device the model's parameters are on (the CPU for a new one).

    With a model given, its architecture must match the checkpoint's; without one, it is built from the config.
    """
    checkpoint = read_checkpoint(path)
    config = checkpoint["config"]
    if model is None:
        model = build_model(config)
    elif model_config(model) != config:
        raise CheckpointError(f"{path} holds a {config} but the model is a {model_config(model)}. Build the model "
                              f"with the checkpoint's settings, or pass a different checkpoint path.")
    _load_weights(model, checkpoint, Path(path))
    return model, checkpoint


def _short(path: Path) -> str:
    """The path relative to the course folder when it lies inside it (shorter, and the same on every machine)."""
    try:
        return str(Path(path).resolve().relative_to(project_dir()))
    except ValueError:
        return str(path)


def checkpoint_dir() -> Path:
    """Where checkpoints go: $COURSE_CHECKPOINTS, else checkpoints/ in the course folder; fast/ or full/ inside."""
    root = Path(os.environ.get("COURSE_CHECKPOINTS", project_dir() / "checkpoints"))
    return root / ("fast" if fast_mode() else "full")  # a quick CI run never replaces a fully trained model


def fit_or_load(path: str | Path, model: nn.Module, train_data: Data, test_data: Optional[Data] = None,
                config: Optional[TrainConfig] = None, *, progress: bool = True,
                **settings: Any) -> dict[str, list[float]]:
    """Load the model's weights from path when a checkpoint of the same model and settings is there; else fit and save.

    A relative path is taken inside checkpoint_dir(). config and settings are those of train.fit (num_epochs, lr,
    beta, ...). The checkpoint's model and settings are compared before any weight is loaded: when they differ, the
    model trains from its own initialization. Either way the model stays on its device. Returns the history.
    """
    path = Path(path) if Path(path).is_absolute() else checkpoint_dir() / path
    config = make_config(config, **settings)
    wanted = {**dataclasses.asdict(config), "num_train": len(train_data[0]),
              "num_test": len(test_data[0]) if test_data is not None else 0}  # the history has test terms or not
    _refuse_folder(path)  # before training, not after it has finished
    if path.exists():
        try:
            checkpoint = read_checkpoint(path)
            if checkpoint["config"] != model_config(model):
                print(f"{_short(path)} holds another model ({checkpoint['config']}): training this one.")
            elif checkpoint.get("settings") != wanted or not isinstance(checkpoint.get("history"), dict):
                print(f"{_short(path)} was trained with other settings: training again from the model's own "
                      f"initialization.")
            else:
                _load_weights(model, checkpoint, path)
                print(f"Loaded the trained model from {_short(path)} (delete the file to train again).")
                model.eval()
                return checkpoint["history"]
        except CheckpointError as err:
            print(f"Not using {path}: {err}")
    history = fit(model, train_data, test_data, config, progress=progress)
    if len(history["epoch"]) == config.num_epochs:  # an interrupted or diverged run is kept in memory, not saved
        try:
            save_checkpoint(path, model, history, wanted)
        except CheckpointError as err:
            print(f"The trained model is in memory but not saved: {err}")
    return history
