"""The course's figures: reconstructions, image grids, latent spaces, training curves and the manifold."""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.distributions import Normal
from torchvision.utils import make_grid


def _finish(fig: plt.Figure) -> plt.Figure:
    """Close the figure and return it, so that a notebook shows it exactly once as the cell's result."""
    fig.tight_layout()
    plt.close(fig)
    return fig


def _as_images(x: torch.Tensor) -> torch.Tensor:
    return x.detach().float().cpu().reshape(-1, 1, 28, 28)  # (B, 784) or (B, 1, 28, 28) -> (B, 1, 28, 28)


def show_grid(images: torch.Tensor, nrow: int = 8, title: str = "", figsize: Optional[tuple] = None) -> plt.Figure:
    """A grid of images (B, 1, 28, 28) with torchvision's make_grid, nrow images per row."""
    grid = make_grid(_as_images(images), nrow=nrow, padding=2, pad_value=1.0)  # (3, H, W)
    rows = -(-len(images) // nrow)
    fig, ax = plt.subplots(figsize=figsize or (nrow * 0.8, rows * 0.8 + 0.5))
    ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray")  # (3, H, W) -> (H, W, 3)
    ax.set_title(title)
    ax.axis("off")
    return _finish(fig)


def show_reconstructions(x: torch.Tensor, x_hat: torch.Tensor, n: int = 8, title: str = "",
                         labels: Sequence[str] = ("original", "reconstruction")) -> plt.Figure:
    """The article's figure: n originals in the first row, their reconstructions in the second."""
    rows = [_as_images(x)[:n], _as_images(x_hat)[:n]]
    fig, axes = plt.subplots(2, 1, figsize=(n * 0.9, 2.4))
    for ax, images, label in zip(axes, rows, labels):
        ax.imshow(make_grid(images, nrow=n, pad_value=1.0).permute(1, 2, 0).numpy())
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_title(title)
    return _finish(fig)


def plot_latent(z: torch.Tensor, y: torch.Tensor, title: str = "Latent codes by digit") -> plt.Figure:
    """A scatter of latent codes coloured by digit; codes with more than 2 dimensions are projected by PCA."""
    z = z.detach().float().cpu().numpy()
    xlabel, ylabel = "$z_1$", "$z_2$"
    if z.shape[1] > 2:
        from sklearn.decomposition import PCA
        z = PCA(n_components=2, random_state=0).fit_transform(z)
        xlabel, ylabel = "first principal component", "second principal component"
    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(z[:, 0], z[:, 1], c=np.asarray(y.cpu()), cmap="tab10", s=3, alpha=0.7, vmin=-0.5, vmax=9.5)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return _finish(fig)


def plot_history(history: dict, keys: Sequence[str] = ("train_loss", "test_loss"),
                 title: str = "Training curves", ylabel: str = "nats per image") -> plt.Figure:
    """Curves of the history's keys against the epoch."""
    missing = [key for key in keys if key not in history]
    if missing:
        raise KeyError(f"{missing} not in the history; it has {sorted(history)}.")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in keys:
        ax.plot(history["epoch"], history[key], marker="o", label=key.replace("_", " "))
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
    return _finish(fig)


@torch.no_grad()
def show_manifold(decode, n: int = 15, title: str = "The learned manifold of a 2-D latent space") -> plt.Figure:
    """Decode an n x n grid of 2-D codes placed at Normal quantiles, so that each covers equal prior mass."""
    quantiles = torch.linspace(0.5 / n, 1 - 0.5 / n, n)
    values = Normal(0.0, 1.0).icdf(quantiles)  # equal steps in probability, not in z
    z = torch.cartesian_prod(values.flip(0), values)[:, [1, 0]]  # (n*n, 2): rows top to bottom = z_2 high to low
    images = _as_images(decode(z))
    fig, ax = plt.subplots(figsize=(7, 7))
    grid = make_grid(images, nrow=n, padding=0).permute(1, 2, 0).numpy()
    ax.imshow(grid, extent=(0, n, 0, n))
    ticks = np.arange(n) + 0.5
    ax.set_xticks(ticks, [f"{v:.1f}" for v in values.tolist()], rotation=90)
    ax.set_yticks(ticks, [f"{v:.1f}" for v in values.tolist()])
    ax.set(title=title, xlabel="$z_1$", ylabel="$z_2$")
    return _finish(fig)
