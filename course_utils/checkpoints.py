"""Checkpoints: save a trained model whole and atomically, load it safely, or train it when there is none."""
from __future__ import annotations

import dataclasses
import inspect
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from . import __version__, models
from .setup import fast_mode, project_dir
from .train import Data, TrainConfig, fit, make_config


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: damaged, or made for another model or other settings."""


def model_config(model: nn.Module) -> dict[str, Any]:
    """The model's class name and constructor arguments, e.g. {'class': 'VAE', 'latent_dim': 20, ...}."""
    names = [p for p in inspect.signature(type(model).__init__).parameters if p != "self"]
    return {"class": type(model).__name__, **{name: getattr(model, name) for name in names}}


def build_model(config: dict[str, Any]) -> nn.Module:
    """A new, untrained model from a model_config() dictionary."""
    kwargs = dict(config)
    cls = getattr(models, kwargs.pop("class"), None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise CheckpointError(f"{config['class']!r} is not a model of course_utils.models.")
    return cls(**kwargs)


def save_checkpoint(path: str | Path, model: nn.Module, history: Optional[dict] = None,
                    settings: Optional[dict] = None) -> Path:
    """Save config, weights, history, training settings and library versions; atomically (whole or not at all)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": model_config(model),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "history": history or {},
        "settings": settings or {},
        "versions": {"course_utils": __version__, "torch": str(torch.__version__), "python": platform.python_version()},
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)  # atomic rename: an interrupted save leaves the old file, never half a new one
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, loaded with weights_only=True (a checkpoint file can run no code)."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(err).__name__}). Delete it and train "
                              f"again; nothing else depends on it.") from err
    if not isinstance(checkpoint, dict) or not {"config", "state_dict"} <= checkpoint.keys():
        raise CheckpointError(f"{path} is not a checkpoint of this course (it has no model config or weights). "
                              f"Delete it and train again; nothing else depends on it.")
    return checkpoint


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
    model.load_state_dict(checkpoint["state_dict"])  # copies into the existing parameters, on their device
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
                config: Optional[TrainConfig] = None, *, progress: bool = True, **settings: Any) -> dict[str, list[float]]:
    """Load the model's weights from path when a checkpoint of the same model and settings is there; else fit and save.

    A relative path is taken inside checkpoint_dir(). config and settings are those of train.fit (num_epochs, lr,
    beta, ...). The checkpoint's model and settings are compared before any weight is loaded: when they differ, the
    model trains from its own initialization. Either way the model stays on its device. Returns the history.
    """
    path = Path(path) if Path(path).is_absolute() else checkpoint_dir() / path
    config = make_config(config, **settings)
    wanted = {**dataclasses.asdict(config), "num_train": len(train_data[0]),
              "num_test": len(test_data[0]) if test_data is not None else 0}  # the history has test terms or not
    if path.exists():
        try:
            checkpoint = read_checkpoint(path)
            if checkpoint["config"] != model_config(model):
                print(f"{_short(path)} holds another model ({checkpoint['config']}): training this one.")
            elif checkpoint.get("settings") != wanted:
                print(f"{_short(path)} was trained with other settings: training again from the model's own "
                      f"initialization.")
            else:
                model.load_state_dict(checkpoint["state_dict"])  # into the existing parameters, on their device
                print(f"Loaded the trained model from {_short(path)} (delete the file to train again).")
                model.eval()
                return checkpoint["history"]
        except CheckpointError as err:
            print(f"Not using {path}: {err}")
    history = fit(model, train_data, test_data, config, progress=progress)
    if len(history["epoch"]) == config.num_epochs:  # an interrupted run is kept in memory, not saved
        save_checkpoint(path, model, history, wanted)
    return history
