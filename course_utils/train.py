"""One training loop for every model of the course, and its evaluation, in nats per image."""
from __future__ import annotations

import contextlib
import copy
import time
import warnings
from typing import Callable, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from .data import batches
from .losses import kl_divergence, reconstruction_loss_with_logits
from .models import ConditionalVAE, GaussianVAE
from .setup import get_device, seed_everything
from .validate import check_images, checked_data

Data = tuple[torch.Tensor, torch.Tensor]  # (x, y) as load_mnist returns it


def corrupt(x: torch.Tensor, noise_std: float) -> torch.Tensor:
    """x with Gaussian noise of std noise_std added and clipped back to [0, 1] (the denoising input)."""
    if noise_std == 0:
        return x
    return (x + noise_std * torch.randn_like(x)).clamp_(0, 1)


def loss_terms(model: nn.Module, x: torch.Tensor, y: Optional[torch.Tensor] = None, beta: float = 1.0,
               noise_std: float = 0.0) -> dict[str, torch.Tensor]:
    """Batch-mean loss terms in nats per image: 'loss', plus 'recon' and 'kl' for a VAE.

    The same numbers as losses.vae_loss on model(x), computed from the decoder's logits: cross-entropy
    with logits skips the sigmoid's round trip, which is both faster and exact for saturated pixels.
    """
    x_in = corrupt(x, noise_std)  # a denoising model sees noisy images and is scored on clean ones
    cond = (y,) if isinstance(model, ConditionalVAE) else ()
    if not isinstance(model, GaussianVAE):
        logits = model.decode_logits(model.encode(x_in))
        return {"loss": reconstruction_loss_with_logits(logits.float(), x).mean()}
    mu, logvar = model.encode(x_in, *cond)
    logits = model.decode_logits(model.reparameterize(mu, logvar), *cond)  # model.forward, before the sigmoid
    recon = reconstruction_loss_with_logits(logits.float(), x).mean()
    kl = kl_divergence(mu.float(), logvar.float()).mean()  # in float32 even under bf16 autocast
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}


@torch.no_grad()
def evaluate(model: nn.Module, data: Data, batch_size: int = 1000, beta: float = 1.0,
             noise_std: float = 0.0) -> dict[str, float]:
    """Mean loss terms over a whole data set, in eval mode (a VAE then decodes z = mu, as the article's test does).

    With z = mu the reconstruction term is scored at the code's mean, so for a VAE this is a little lower than the
    sampled negative ELBO; likelihood.elbo_terms and likelihood.iwae_bound give the sampled versions.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x, y = data
    totals: dict[str, torch.Tensor] = {}
    for xb, yb in batches(x, y, batch_size, shuffle=False):
        terms = loss_terms(model, xb.to(device), None if yb is None else yb.to(device), beta, noise_std)
        for key, value in terms.items():
            totals[key] = totals.get(key, 0.0) + value * len(xb)
    model.train(was_training)
    return {key: (value / len(x)).item() for key, value in totals.items()}


def make_optimizer(model: nn.Module, lr: float = 1e-3) -> torch.optim.Adam:
    """Adam, fused into one kernel per step on CPU and CUDA (measured faster: see the performance page)."""
    device = next(model.parameters()).device
    return torch.optim.Adam(model.parameters(), lr=lr, fused=device.type in ("cpu", "cuda"))


def autocast_dtype(device: torch.device) -> Optional[torch.dtype]:
    """bfloat16 on a CPU that multiplies bf16 matrices natively (AVX512-BF16 or AMX), else None (float32 throughout).

    Where the CPU has these instructions, bf16 matrix products run about twice as fast (docs: performance page);
    elsewhere bf16 is emulated and slower, so training stays in float32. GPUs are left in float32.
    """
    if device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return torch.bfloat16
    return None


LossFn = Callable[..., dict[str, torch.Tensor]]  # loss_terms, or a compiled version of it


def compiled_loss_terms() -> LossFn:
    """loss_terms through torch.compile (fixed shapes); where compiling fails, a warning and plain loss_terms.

    Compiling fuses the loss's elementwise work into a few kernels: each epoch is faster, but the first batch of each
    shape waits for the compiler (docs: performance page), and it needs a C++ compiler on the CPU.
    """
    current: LossFn = torch.compile(loss_terms, dynamic=False)

    def terms(*args, **kwargs) -> dict[str, torch.Tensor]:
        nonlocal current
        try:
            return current(*args, **kwargs)
        except torch._dynamo.exc.TorchDynamoException as err:  # e.g. InductorError: no working C++ compiler
            if current is loss_terms:
                raise
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                          f"training goes on without it. Pass compile=False to skip compiling.", stacklevel=2)
            current = loss_terms
            return loss_terms(*args, **kwargs)

    return terms


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, data: Data, *, batch_size: int = 128,
                beta: float = 1.0, noise_std: float = 0.0, generator: Optional[torch.Generator] = None,
                autocast: Optional[torch.dtype] = None, desc: str = "", progress: bool = True,
                loss_fn: LossFn = loss_terms) -> dict[str, float]:
    """One shuffled pass over the training data with one optimizer step per batch; returns the mean loss terms.

    autocast=torch.bfloat16 runs the matrix products in bf16 (weights, optimizer and loss stay float32).
    loss_fn computes the loss terms of a batch: loss_terms, or compiled_loss_terms().
    """
    x, y = data
    check_images(x, "the training images")  # once for the whole set, not once per batch
    model.train()
    sums: dict[str, torch.Tensor] = {}
    bar = tqdm(batches(x, y, batch_size, generator=generator), total=-(-len(x) // batch_size), desc=desc,
               disable=not progress, leave=False)
    for step, (xb, yb) in enumerate(bar):
        with checked_data(), torch.autocast(x.device.type, dtype=autocast) if autocast else contextlib.nullcontext():
            terms = loss_fn(model, xb, yb, beta, noise_std)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + value.detach().float() * len(xb)  # float32 sums: bf16 ones stall
        if progress and step % 50 == 0:
            bar.set_postfix(loss=f"{terms['loss'].item():.1f}")
    return {key: (value / len(x)).item() for key, value in sums.items()}


def fit(model: nn.Module, train_data: Data, test_data: Optional[Data] = None, *, num_epochs: int = 10,
        lr: float = 1e-3, batch_size: int = 128, beta: float = 1.0, noise_std: float = 0.0, seed: int = 0,
        device: Optional[torch.device] = None, mixed_precision: Optional[bool] = None, compile: bool = False,
        progress: bool = True) -> dict[str, list[float]]:
    """Train model with Adam and return its history: per epoch, the train and test loss terms and seconds.

    mixed_precision: bf16 matrix products (None: where autocast_dtype finds native bf16; True: always;
    False: float32 throughout). Evaluation is always float32. compile=True trains through torch.compile: faster epochs
    after a compile of several seconds, worth it for runs of dozens of epochs (docs: performance page).
    Interrupting training (the stop button, Ctrl-C) keeps the weights and history of the last finished epoch.
    """
    if num_epochs < 0 or lr <= 0:
        raise ValueError(f"num_epochs={num_epochs} and lr={lr} must be >= 0 and > 0, e.g. num_epochs=10, lr=1e-3.")
    seed_everything(seed)
    device = device or get_device()
    model.to(device)
    x, y = (None if t is None else t.to(device) for t in train_data)  # y may be None: unlabelled images
    optimizer = make_optimizer(model, lr)
    autocast = autocast_dtype(device) if mixed_precision is None else (torch.bfloat16 if mixed_precision else None)
    shuffle = torch.Generator().manual_seed(seed)
    loss_fn = compiled_loss_terms() if compile else loss_terms
    history: dict[str, list[float]] = {"epoch": [], "seconds": []}
    finished = copy.deepcopy(model.state_dict())
    try:
        for epoch in range(1, num_epochs + 1):
            start = time.perf_counter()
            train = train_epoch(model, optimizer, (x, y), batch_size=batch_size, beta=beta, noise_std=noise_std,
                                generator=shuffle, autocast=autocast, desc=f"epoch {epoch}/{num_epochs}",
                                progress=progress, loss_fn=loss_fn)
            record = {"epoch": epoch, "seconds": time.perf_counter() - start}
            record.update({f"train_{key}": value for key, value in train.items()})
            if test_data is not None:
                test = evaluate(model, test_data, beta=beta, noise_std=noise_std)
                record.update({f"test_{key}": value for key, value in test.items()})
            for key, value in record.items():  # the epoch enters the history whole, or not at all
                history.setdefault(key, []).append(value)
            finished = copy.deepcopy(model.state_dict())
            if progress:
                print(_epoch_line(history, num_epochs))
    except KeyboardInterrupt:
        model.load_state_dict(finished)
        print(f"Interrupted: the model and history are those of epoch {len(history['epoch'])}, the last one finished.")
    model.eval()
    return history


def _epoch_line(history: dict[str, list[float]], num_epochs: int) -> str:
    line = f"epoch {history['epoch'][-1]:>2}/{num_epochs}  train loss {history['train_loss'][-1]:7.2f}"
    if "test_loss" in history:
        line += f"  test loss {history['test_loss'][-1]:7.2f}"
    if "train_kl" in history:
        line += f"  (recon {history['train_recon'][-1]:.2f}, KL {history['train_kl'][-1]:.2f})"
    return line + f"  {history['seconds'][-1]:.1f} s"
