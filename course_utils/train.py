"""Training: the loop that notebooks 01 and 06 write by hand, plus a history and a test loss, in nats per image."""
from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import batches
from .diffusion import diffusion_loss
from .losses import free_bits_kl, kl_divergence, reconstruction_loss, vae_loss
from .models import VQVAE, ConditionalVAE, DigitClassifier, NoisePredictor, VAEOutput
from .validate import NotFiniteError, check_images, check_tensor
from .vq import codebook_loss, commitment_loss, perplexity

Data = tuple[torch.Tensor, Optional[torch.Tensor]]  # (x, y) as load_mnist returns it; y may be None


@dataclass(frozen=True)
class TrainConfig:
    """How fit trains. The defaults are those of the article (pytorch/examples vae/main.py), except 10 epochs."""
    num_epochs: int = 10     # passes over the training set
    lr: float = 1e-3         # Adam's learning rate
    batch_size: int = 128    # images per optimizer step
    beta: float = 1.0        # weight of the KL term: 1 is the plain VAE (an autoencoder has none)
    noise_std: float = 0.0   # std of Gaussian noise added to the inputs (a denoising autoencoder); 0 adds none
    seed: int = 0            # seeds torch (the noise eps of the reparameterization trick) and the batch order
    warmup_epochs: int = 0   # KL warm-up: beta grows linearly from 0 over these epochs (Bowman et al. 2016); 0: off
    free_bits: float = 0.0   # nats per latent unit of KL that cost nothing (Kingma et al. 2016); 0: off
    binarize: bool = False   # dynamic binarization: each batch's pixels redrawn as 0 or 1 with probability x
    fast: bool = False       # opt-in speed: Adam fused into one kernel per step (docs: performance page)

    def __post_init__(self):
        for name in ("num_epochs", "batch_size", "seed", "warmup_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name}={value!r} must be a whole number, e.g. {name}={getattr(TrainConfig, name)}.")
        for name, ok, example in (("num_epochs", self.num_epochs >= 0, 10), ("lr", self.lr > 0, 1e-3),
                                  ("batch_size", self.batch_size >= 1, 128), ("beta", self.beta >= 0, 1.0),
                                  ("noise_std", self.noise_std >= 0, 0.5),
                                  ("warmup_epochs", self.warmup_epochs >= 0, 5),
                                  ("free_bits", self.free_bits >= 0, 0.5)):
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range; a usual value is {name}={example}.")


def make_config(config: Optional[TrainConfig] = None, **settings) -> TrainConfig:
    """config (default TrainConfig()) with some settings changed, e.g. make_config(num_epochs=5)."""
    unknown = set(settings) - {field.name for field in dataclasses.fields(TrainConfig)}
    if unknown:
        raise TypeError(f"Unknown training settings {sorted(unknown)}: TrainConfig has "
                        f"{[field.name for field in dataclasses.fields(TrainConfig)]}.")
    return dataclasses.replace(config or TrainConfig(), **settings)


def corrupt(x: torch.Tensor, noise_std: float) -> torch.Tensor:
    """x with Gaussian noise of std noise_std added and clipped back to [0, 1] (the denoising input)."""
    if noise_std == 0:
        return x
    return (x + noise_std * torch.randn_like(x)).clamp(0, 1)


def loss_terms(model: nn.Module, x: torch.Tensor, y: Optional[torch.Tensor] = None, beta: float = 1.0,
               noise_std: float = 0.0, free_bits: float = 0.0) -> dict[str, torch.Tensor]:
    """One batch's loss as the notebooks compute it, model(x) then the course's loss, and its parts for the history.

    'loss' (with gradients) is vae_loss of model(x) for a VAE (with free bits, its KL term is free_bits_kl), the
    batch mean of reconstruction_loss for an autoencoder, the cross-entropy for the DigitClassifier. A VAE's 'kl' is
    the batch mean of its KL and 'recon' that of its reconstruction term; a classifier's 'error' the fraction wrong.
    """
    if isinstance(model, NoisePredictor):  # the data are codes z_0 (B, latent_dim), not images
        return {"loss": diffusion_loss(model, x, y)}
    if isinstance(model, VQVAE):
        return vqvae_loss_terms(model, x, beta)
    if isinstance(model, DigitClassifier):
        if y is None:
            raise ValueError("A DigitClassifier learns from labels: train it on (x, y) as load_mnist returns them.")
        logits = model(x)  # (B, 10)
        return {"loss": F.cross_entropy(logits, y), "error": (logits.argmax(dim=1) != y).float().mean()}
    x_in = corrupt(x, noise_std)  # a denoising autoencoder sees noisy images and is scored on the clean ones
    out = model(x_in, y) if isinstance(model, ConditionalVAE) else model(x_in)  # only a ConditionalVAE reads y
    if not isinstance(out, VAEOutput):  # an autoencoder returns x_hat alone
        return {"loss": reconstruction_loss(out, x).mean()}
    x_hat, mu, logvar = out
    kl = kl_divergence(mu.detach(), logvar.detach()).mean()
    if free_bits == 0:
        loss = vae_loss(x_hat, x, mu, logvar, beta)
        return {"loss": loss, "recon": loss.detach() - beta * kl, "kl": kl}
    recon = reconstruction_loss(x_hat, x).mean()
    return {"loss": recon + beta * free_bits_kl(mu, logvar, free_bits), "recon": recon.detach(), "kl": kl}


def vqvae_loss_terms(model: VQVAE, x: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
    """A VQ-VAE's loss (van den Oord et al. 2017, eq. 3), per image then the batch mean: the reconstruction term,
    plus the codebook loss, plus beta times the commitment loss (the paper's beta, 0.25), both summed over the slots.
    'perplexity' is the batch's codebook usage (vq.perplexity)."""
    x_hat, z_e, z_q, indices = model(x)
    z_e, z_q = z_e.reshape(-1, model.code_dim), z_q.reshape(-1, model.code_dim)  # (B, S, D) -> (B * S, D)
    recon = reconstruction_loss(x_hat, x)  # (B,)
    codebook = codebook_loss(z_e, z_q).view(len(x), -1).sum(1)  # (B * S,) -> (B, S) -> (B,)
    commitment = commitment_loss(z_e, z_q).view(len(x), -1).sum(1)
    return {"loss": (recon + codebook + beta * commitment).mean(), "recon": recon.mean().detach(),
            "codebook": codebook.mean().detach(), "commitment": commitment.mean().detach(),
            "perplexity": torch.tensor(perplexity(indices, model.num_codes))}


def _check_data(model: nn.Module, x: torch.Tensor, name: str) -> None:
    """Images in [0, 1] for the autoencoders and the classifier; finite codes for a NoisePredictor."""
    if isinstance(model, NoisePredictor):
        check_tensor(x, name.replace("images", "codes"))
    else:
        check_images(x, name)


def warmup_beta(config: TrainConfig, epoch: int) -> float:
    """The KL weight in epoch 1, 2, ...: config.beta, or with warm-up beta * (epoch - 1) / warmup_epochs until full."""
    if config.warmup_epochs == 0:
        return config.beta
    return config.beta * min(1.0, (epoch - 1) / config.warmup_epochs)  # 0 in epoch 1: the first epoch has no KL


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, data: Data, config: TrainConfig,
                generator: Optional[torch.Generator] = None, progress: bool = True,
                beta: Optional[float] = None) -> dict[str, float]:
    """One shuffled pass over data, one optimizer step per batch: the loop of notebooks 01 and 06. Mean loss terms.

    beta, when given, replaces config.beta (fit passes the warm-up's value for the epoch).
    """
    beta = config.beta if beta is None else beta
    device = next(model.parameters()).device
    model.train()
    x, y = data
    sums: dict[str, torch.Tensor] = {}
    for xb, yb in tqdm(batches(x, y, config.batch_size, generator=generator), total=-(-len(x) // config.batch_size),
                       disable=not progress, leave=False):
        xb, yb = xb.to(device), (None if yb is None else yb.to(device))
        if config.binarize:
            xb = torch.bernoulli(xb)  # dynamic binarization: a fresh black-and-white draw of each image every epoch
        terms = loss_terms(model, xb, yb, beta, config.noise_std, config.free_bits)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + value.detach() * len(xb)
    return {key: (value / len(x)).item() for key, value in sums.items()}


@torch.no_grad()
def evaluate(model: nn.Module, data: Data, batch_size: int = 250, beta: float = 1.0,
             noise_std: float = 0.0, free_bits: float = 0.0) -> dict[str, float]:
    """Mean loss terms over a whole data set, in eval mode (a VAE then decodes z = mu, as the article's test does).

    With z = mu the reconstruction term is scored at the code's mean, so for a VAE this is a little lower than the
    sampled negative ELBO; likelihood.elbo_terms and likelihood.iwae_bound give the sampled versions. Batches of 250:
    one activation of a convolutional model (32 channels of 14 x 14) is 6 MB for 250 images, 25 MB for 1,000, and
    a forward pass holds several at once.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x, y = data
    _check_data(model, x, "the images to evaluate on")
    sums: dict[str, torch.Tensor] = {}
    for xb, yb in batches(x, y, batch_size, shuffle=False):
        terms = loss_terms(model, xb.to(device), None if yb is None else yb.to(device), beta, noise_std, free_bits)
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + value * len(xb)
    model.train(was_training)
    return {key: (value / len(x)).item() for key, value in sums.items()}


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Adam:
    """Adam at config.lr; with config.fast, fused into one kernel per step where torch has one (CPU, CUDA)."""
    fused = config.fast and next(model.parameters()).device.type in ("cpu", "cuda")
    return torch.optim.Adam(model.parameters(), lr=config.lr, fused=fused or None)  # None: torch's default


EXPLODING = 10 * 784 * math.log(2)  # nats per image: ten times a model that answers 0.5 for every pixel


def fit(model: nn.Module, train_data: Data, test_data: Optional[Data] = None, config: Optional[TrainConfig] = None,
        *, progress: bool = True, **settings) -> dict[str, list[float]]:
    """Train model: the loop of notebooks 01 and 06, plus a history (per epoch: loss terms, test loss, seconds).

    config is a TrainConfig; settings change some of its fields (fit(model, data, num_epochs=5)). What fit does
    besides training: it seeds torch's global generator with config.seed; it trains the model where its parameters
    are (move it first: model.to(device)), moving each batch there; it leaves the model in eval mode; with progress,
    it shows a progress bar and prints a line per epoch. Interrupting (the stop button, Ctrl-C) keeps the weights
    and history of the last finished epoch; so does a loss that becomes NaN or inf, with a warning that says what to
    change (and a warning when the loss explodes).
    """
    config = make_config(config, **settings)
    if len(train_data[0]) == 0:
        raise ValueError("The training set is empty: pass at least one image, e.g. (x_train[:1000], y_train[:1000]).")
    _check_data(model, train_data[0], "the training images")  # the whole set first: a bad image stops fit early
    torch.manual_seed(config.seed)  # the noise eps that reparameterize draws
    shuffle = torch.Generator().manual_seed(config.seed)  # the order of the batches
    optimizer = make_optimizer(model, config)
    history: dict[str, list[float]] = {"epoch": [], "seconds": []}
    finished = copy.deepcopy(model.state_dict())
    grad_mode = torch.is_grad_enabled()
    try:
        for epoch in range(1, config.num_epochs + 1):
            start = time.perf_counter()
            try:
                train = train_epoch(model, optimizer, train_data, config, shuffle, progress,
                                    beta=warmup_beta(config, epoch))
            except NotFiniteError:  # the model's outputs became NaN or inf: its weights blew up mid-epoch
                train = {"loss": math.nan}
            if not math.isfinite(train["loss"]) or not all(torch.isfinite(p).all() for p in model.parameters()):
                model.load_state_dict(finished)  # the last finite weights
                _warn_diverged(epoch, config.lr)
                break
            if train["loss"] > EXPLODING:
                warnings.warn(f"The loss is exploding in epoch {epoch}: {train['loss']:.3g} nats per image, more than "
                              f"ten times an untrained model's. Lower the learning rate (now lr={config.lr:g}).",
                              stacklevel=2)
            record = {f"train_{k}": v for k, v in train.items()}
            if test_data is not None:
                record.update({f"test_{k}": v for k, v in evaluate(model, test_data, beta=config.beta,
                                                                   noise_std=config.noise_std,
                                                                   free_bits=config.free_bits).items()})
            record.update(epoch=epoch, seconds=time.perf_counter() - start)
            for key, value in record.items():  # the epoch enters the history whole, or not at all
                history.setdefault(key, []).append(value)
            finished = copy.deepcopy(model.state_dict())
            if progress:
                print(_epoch_line(history, config.num_epochs))
    except KeyboardInterrupt:
        torch.set_grad_enabled(grad_mode)  # a stop inside optimizer.step (autograd off there) must not leave it off
        model.load_state_dict(finished)
        print(f"Interrupted: the model and history are those of epoch {len(history['epoch'])}, the last one finished.")
    model.eval()
    return history


def _warn_diverged(epoch: int, lr: float) -> None:
    kept = f"those of epoch {epoch - 1}, the last finite one" if epoch > 1 else "those before training"
    warnings.warn(f"Training diverged in epoch {epoch}: the loss became NaN or inf. The model and history are {kept}. "
                  f"Lower the learning rate (now lr={lr:g}; try lr={lr / 10:g}) and train again.", stacklevel=3)


def _epoch_line(history: dict[str, list[float]], num_epochs: int) -> str:
    line = f"epoch {history['epoch'][-1]:>2}/{num_epochs}  train loss {history['train_loss'][-1]:7.2f}"
    if "test_loss" in history:
        line += f"  test loss {history['test_loss'][-1]:7.2f}"
    if "train_kl" in history:
        line += f"  (recon {history['train_recon'][-1]:.2f}, KL {history['train_kl'][-1]:.2f})"
    if "train_perplexity" in history:
        line += f"  (recon {history['train_recon'][-1]:.2f}, perplexity {history['train_perplexity'][-1]:.1f})"
    if "test_error" in history:
        line += f"  test accuracy {100 * (1 - history['test_error'][-1]):.2f}%"
    return line + f"  {history['seconds'][-1]:.1f} s"
