"""The course's figures: reconstructions, image grids, latent spaces, training curves and the manifold."""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.distributions import Normal


def _make_grid(images: torch.Tensor, **kwargs) -> torch.Tensor:
    """torchvision.utils.make_grid, imported when a grid is drawn: course_utils imports without torchvision (a CPU-only
    torch may have no matching torchvision), and only the image grids need it."""
    from torchvision.utils import make_grid

    return make_grid(images, **kwargs)


def _finish(fig: plt.Figure) -> plt.Figure:
    """Close the figure and return it, so that a notebook shows it exactly once as the cell's result."""
    fig.tight_layout()
    plt.close(fig)
    return fig


def _as_images(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x[0].numel() != 784:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected a batch of images, shape (B, 1, 28, 28) or (B, 784); got {shape}. "
                         f"For a single image add a batch dimension: x.unsqueeze(0).")
    return x.detach().float().cpu().reshape(-1, 1, 28, 28)  # (B, 784) or (B, 1, 28, 28) -> (B, 1, 28, 28)


def show_grid(images: torch.Tensor, nrow: int = 8, title: str = "", figsize: Optional[tuple] = None) -> plt.Figure:
    """A grid of images (B, 1, 28, 28) with torchvision's make_grid, nrow images per row."""
    grid = _make_grid(_as_images(images), nrow=nrow, padding=2, pad_value=1.0)  # (3, H, W)
    rows = -(-len(images) // nrow)
    scale = min(0.8, 10 / nrow)  # inches per image, at most 10 inches wide
    fig, ax = plt.subplots(figsize=figsize or (nrow * scale, rows * scale + 0.5))
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
        ax.imshow(_make_grid(images, nrow=n, pad_value=1.0).permute(1, 2, 0).numpy())
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
def show_manifold(decode, n: int = 15, title: str = "The learned manifold of a 2-D latent space",
                  limits: Sequence[Optional[float]] = (None,)) -> plt.Figure:
    """Decode n x n grids of 2-D codes, one panel per entry of limits, side by side.

    None places the grid at Normal quantiles, so that each cell covers equal prior mass (for n = 15 it reaches only
    +-1.83); a number L spaces the grid evenly from -L to L, e.g. limits=(None, 3.0) adds the prior's tails to 3 sigma.
    """
    if len(limits) == 0 or any(limit is not None and not limit > 0 for limit in limits):
        raise ValueError(f"limits must hold None (a grid at Normal quantiles) or positive numbers (an even grid from "
                         f"-L to L), e.g. limits=(None, 3.0); got {limits!r}.")
    fig, axes = plt.subplots(1, len(limits), figsize=(7 * len(limits), 7.3 if len(limits) > 1 else 7), squeeze=False)
    for ax, limit in zip(axes[0], limits):
        if limit is None:
            values = Normal(0.0, 1.0).icdf(torch.linspace(0.5 / n, 1 - 0.5 / n, n))  # equal steps in probability
            name = f"at quantiles of N(0, 1), out to {values[-1]:.2f}"
        else:
            values = torch.linspace(-limit, limit, n)  # equal steps in z, into the tails
            name = f"evenly spaced from {-limit:g} to {limit:g}"
        z = torch.cartesian_prod(values.flip(0), values)[:, [1, 0]]  # (n*n, 2): rows top to bottom = z_2 high to low
        owner = getattr(decode, "__self__", None)  # model.decode: put z on the model's device (a GPU on Colab)
        if isinstance(owner, torch.nn.Module):
            z = z.to(next(owner.parameters()).device)
        grid = _make_grid(_as_images(decode(z)), nrow=n, padding=0).permute(1, 2, 0).numpy()  # (3, H, W) -> (H, W, 3)
        ax.imshow(grid, extent=(0, n, 0, n))
        ticks = np.arange(n) + 0.5
        labels = [f"{round(v, 1) + 0.0:.1f}" for v in values.tolist()]  # + 0.0: never "-0.0"
        ax.set_xticks(ticks, labels, rotation=90)
        ax.set_yticks(ticks, labels)
        ax.set(title=name if len(limits) > 1 else title, xlabel="$z_1$", ylabel="$z_2$")
    if len(limits) > 1:
        fig.suptitle(title)
    return _finish(fig)


def show_interpolation(strips: Sequence[torch.Tensor], labels: Sequence[str],
                       title: str = "Interpolation in latent space",
                       xlabel: str = "t, the fraction of the way from the first image to the second") -> plt.Figure:
    """Interpolation strips, one per row: each (steps, 1, 28, 28) decoded along a path, labelled on the left."""
    if len(strips) != len(labels) or len(strips) == 0:
        raise ValueError(f"give one label per strip; got {len(strips)} strips and {len(labels)} labels.")
    steps = len(strips[0])
    if any(len(s) != steps for s in strips):
        raise ValueError(f"every strip must have the same number of images; got {[len(s) for s in strips]}.")
    fig, axes = plt.subplots(len(strips), 1, figsize=(steps * 0.75, 1.0 * len(strips) + 0.9), squeeze=False)
    ticks = 30 * np.arange(steps) + 15  # make_grid's default padding of 2 around 28-pixel images: 30 px per image
    for ax, strip, label in zip(axes[:, 0], strips, labels):
        grid = _make_grid(_as_images(strip), nrow=steps, pad_value=1.0)  # (3, H, W)
        ax.imshow(grid.permute(1, 2, 0).numpy())  # (3, H, W) -> (H, W, 3)
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        ax.set_yticks([])
        ax.set_xticks(ticks, [""] * steps)
    axes[-1, 0].set_xticks(ticks, [f"{t:.2f}" for t in np.linspace(0, 1, steps)])
    axes[-1, 0].set_xlabel(xlabel)
    axes[0, 0].set_title(title)
    return _finish(fig)


def plot_kl_per_dimension(kl: torch.Tensor, active: Optional[torch.Tensor] = None,
                          title: str = "KL divergence of each latent unit") -> plt.Figure:
    """A bar per latent unit of its mean KL in nats (latent.kl_per_dimension), active units in colour."""
    kl = kl.detach().double().cpu().numpy()  # (latent_dim,)
    units = np.arange(len(kl))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(kl) + 1.5), 3.5))
    if active is None:
        ax.bar(units, kl, color="tab:blue")
    else:
        active = np.asarray(active.cpu(), dtype=bool)
        ax.bar(units[active], kl[active], color="tab:blue", label=f"active ({active.sum()})")
        if (~active).any():
            ax.bar(units[~active], kl[~active], color="tab:gray", label=f"inactive ({(~active).sum()})")
        ax.legend()
    ax.set_xticks(units)
    ax.set(title=title, xlabel="latent unit u", ylabel="mean KL (nats per image)")
    ax.grid(axis="y", alpha=0.3)
    return _finish(fig)


def plot_rate_distortion(rate: Sequence[float], distortion: Sequence[float], labels: Sequence[str],
                         title: str = "Rate against distortion") -> plt.Figure:
    """One labelled point per model: rate (KL, nats) against distortion (reconstruction, nats), lines of equal ELBO.

    Alemi et al. (2018), "Fixing a Broken ELBO": -ELBO = distortion + rate, so models on one dashed line of slope -1
    have the same ELBO.
    """
    if not len(rate) == len(distortion) == len(labels) or len(rate) == 0:
        raise ValueError(f"give one rate, one distortion and one label per model; got {len(rate)}, {len(distortion)} "
                         f"and {len(labels)}.")
    rate, distortion = np.asarray(rate, dtype=float), np.asarray(distortion, dtype=float)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    span = np.linspace(0, rate.max() * 1.3, 2)  # room for the right-most label
    for total in np.unique(np.round(rate + distortion, 1)):  # D + R = -ELBO
        ax.plot(span, total - span, ls="--", lw=0.8, color="tab:gray")
    ax.plot(rate, distortion, "o-", color="tab:blue", label="models")
    for r, d, label in zip(rate, distortion, labels):
        ax.annotate(label, (r, d), textcoords="offset points", xytext=(6, 6))
    ax.plot([], [], ls="--", lw=0.8, color="tab:gray", label="equal ELBO: distortion + rate = constant")
    margin = 0.1 * max(np.ptp(distortion), 1.0)
    ax.set_ylim(distortion.min() - margin, distortion.max() + 3 * margin)
    ax.set_xlim(0, span[-1])
    ax.set(title=title, xlabel="rate: KL(q(z | x) || p(z)), nats per image",
           ylabel="distortion: E_q[-log p(x | z)], nats per image")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    return _finish(fig)


def plot_bounds(ks: Sequence[int], bounds: dict, title: str = "The importance-weighted bound tightens with k",
                ylabel: str = "bound on log p(x), nats per image") -> plt.Figure:
    """The mean k-sample bound (likelihood.iwae_bound) against k on a log axis, one line per model in bounds."""
    for name, values in bounds.items():
        if len(values) != len(ks):
            raise ValueError(f"bounds[{name!r}] has {len(values)} values but there are {len(ks)} values of k: "
                             f"give one mean bound per k.")
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in bounds.items():
        ax.plot(ks, values, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xticks(list(ks), [str(k) for k in ks])
    ax.set(title=title, xlabel="k, the number of importance samples per image", ylabel=ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
    return _finish(fig)


def plot_score_histograms(normal_scores: torch.Tensor, anomaly_scores: torch.Tensor, threshold: Optional[float] = None,
                          labels: Sequence[str] = ("normal", "anomaly"), title: str = "Anomaly scores",
                          xlabel: str = "reconstruction error (nats per image)", bins: int = 60) -> plt.Figure:
    """Two histograms of anomaly scores on shared bins, each scaled to area 1, with the threshold as a line."""
    normal = np.asarray(torch.as_tensor(normal_scores).detach().double().cpu())
    anomaly = np.asarray(torch.as_tensor(anomaly_scores).detach().double().cpu())
    edges = np.histogram_bin_edges(np.concatenate([normal, anomaly]), bins=bins)  # shared, so the bars compare
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.hist(normal, bins=edges, density=True, alpha=0.6, color="tab:blue", label=labels[0])
    ax.hist(anomaly, bins=edges, density=True, alpha=0.6, color="tab:red", label=labels[1])
    if threshold is not None:
        ax.axvline(float(threshold), color="black", linestyle="--", label=f"threshold {float(threshold):.1f}")
    ax.set(title=title, xlabel=xlabel, ylabel="density (each histogram has area 1)")
    ax.legend()
    return _finish(fig)


def plot_roc(fpr: np.ndarray, tpr: np.ndarray, auc: Optional[float] = None, point: Optional[tuple] = None,
             title: str = "ROC curve") -> plt.Figure:
    """A ROC curve (from sklearn.metrics.roc_curve), the chance diagonal, and optionally one operating point."""
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.plot(fpr, tpr, color="tab:blue", label="autoencoder" + (f" (AUC {auc:.3f})" if auc is not None else ""))
    ax.plot([0, 1], [0, 1], color="gray", linestyle=":", label="chance (AUC 0.5)")
    if point is not None:
        ax.plot([point[0]], [point[1]], "o", color="black", label=f"threshold: FPR {point[0]:.2f}, TPR {point[1]:.2f}")
    ax.set(title=title, xlabel="false positive rate (normal images flagged)",
           ylabel="true positive rate (anomalies caught)", xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _finish(fig)


def show_image_rows(rows: Sequence[torch.Tensor], labels: Sequence[str], n: int = 8, title: str = "") -> plt.Figure:
    """Several rows of n images each, labelled on the left: e.g. noisy, denoised and clean versions of the same
    digits."""
    if len(rows) != len(labels) or len(rows) == 0:
        raise ValueError(f"give one label per row of images; got {len(rows)} rows and {len(labels)} labels.")
    fig, axes = plt.subplots(len(rows), 1, figsize=(n * 0.9, 1.1 * len(rows) + 0.3), squeeze=False)
    for ax, images, label in zip(axes[:, 0], rows, labels):
        grid = _make_grid(_as_images(images)[:n], nrow=n, pad_value=1.0)  # (3, H, W)
        ax.imshow(grid.permute(1, 2, 0).numpy())  # (3, H, W) -> (H, W, 3)
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title(title)
    return _finish(fig)


def draw_posteriors(ax: plt.Axes, mu: torch.Tensor, logvar: Optional[torch.Tensor], y, num_sigma: float = 2.0) -> float:
    """On ax, the prior's 1, 2 and 3 sigma circles and each 2-D posterior as an ellipse mu +- num_sigma sigma,
    coloured by digit (points when logvar is None); returns how far from the origin the drawing reaches."""
    from matplotlib.patches import Ellipse

    mu = mu.detach().double().cpu().numpy()  # (n, 2)
    colors = plt.get_cmap("tab10")(np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y) % 10)
    angle = np.linspace(0, 2 * np.pi, 200)
    for radius in (1, 2, 3):  # the prior N(0, I): 1, 2 and 3 standard deviations from the origin
        ax.plot(radius * np.cos(angle), radius * np.sin(angle), color="black", lw=1.2, ls="--",
                label="prior N(0, I): 1, 2, 3 σ" if radius == 1 else None)
    if logvar is None:
        ax.scatter(mu[:, 0], mu[:, 1], c=colors, s=4, alpha=0.7)
        return np.abs(mu).max(initial=3.0)
    half = num_sigma * np.exp(0.5 * logvar.detach().double().cpu().numpy())  # (n, 2) num_sigma * sigma
    for center, (w, h), color in zip(mu, half, colors):
        ax.add_patch(Ellipse(tuple(center), width=2 * w, height=2 * h, facecolor=color, edgecolor=color,
                             alpha=0.25, lw=0.6))
    ax.scatter(mu[:, 0], mu[:, 1], c=colors, s=3)
    return np.max(np.abs(mu) + half, initial=3.0)


def plot_posteriors(mu: torch.Tensor, logvar: Optional[torch.Tensor], y: torch.Tensor, n: Optional[int] = None,
                    num_sigma: float = 2.0, title: str = "Posteriors q(z | x) over the prior N(0, I)") -> plt.Figure:
    """2-D codes over the prior's 1, 2 and 3 sigma circles: each of the first n posteriors as an ellipse mu +- num_sigma
    sigma (half-widths num_sigma * exp(0.5 * logvar)), coloured by digit; logvar=None draws points (an autoencoder)."""
    if not isinstance(mu, torch.Tensor) or mu.ndim != 2 or mu.shape[1] != 2:
        shape = tuple(mu.shape) if isinstance(mu, torch.Tensor) else type(mu).__name__
        raise ValueError(f"mu must be 2-D codes, shape (B, 2); got {shape}. Train a model with latent_dim=2, or "
                         f"project the codes first.")
    if logvar is not None and (not isinstance(logvar, torch.Tensor) or logvar.shape != mu.shape):
        shape = tuple(logvar.shape) if isinstance(logvar, torch.Tensor) else type(logvar).__name__
        raise ValueError(f"logvar must have the shape of mu, {tuple(mu.shape)}; got {shape}. Pass the encoder's "
                         f"(mu, logvar) together, or logvar=None for an autoencoder's codes.")
    if len(y) != len(mu):
        raise ValueError(f"give one label per code: {len(mu)} codes but {len(y)} labels.")
    n = len(mu) if n is None else min(int(n), len(mu))
    fig, ax = plt.subplots(figsize=(6, 5.4))
    reach = draw_posteriors(ax, mu[:n], None if logvar is None else logvar[:n], y[:n], num_sigma)
    reach = 1.05 * max(reach, 3.2)
    ax.set_xlim(-reach, reach)
    ax.set_ylim(-reach, reach)
    ax.set_aspect("equal")
    for digit in range(10):  # a legend of the digit colours
        ax.scatter([], [], color=plt.get_cmap("tab10")(digit), s=12, label=str(digit))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="digit")
    ax.set(title=title, xlabel="$z_1$", ylabel="$z_2$")
    ax.grid(alpha=0.2)
    return _finish(fig)


def plot_kl_per_dimension_runs(kls: dict, actives: dict,
                               title: str = "KL carried by each latent unit, run by run") -> plt.Figure:
    """One row of bars per run: its KL per latent unit (latent.kl_per_dimension), active units in colour.

    kls and actives map each run's name to its (latent_dim,) KL and bool mask; the rows share both axes.
    """
    if list(kls) != list(actives):
        raise ValueError(f"kls and actives must name the same runs in the same order; got {list(kls)} and "
                         f"{list(actives)}.")
    fig, axes = plt.subplots(len(kls), 1, figsize=(8.5, 1.8 * len(kls) + 0.8), sharex=True, sharey=True,
                             squeeze=False)
    for ax, name in zip(axes[:, 0], kls):
        kl = kls[name].detach().double().cpu().numpy()  # (latent_dim,)
        active = np.asarray(actives[name].cpu(), dtype=bool)
        units = np.arange(len(kl))
        ax.bar(units[active], kl[active], color="tab:blue")
        ax.bar(units[~active], kl[~active], color="tab:gray")
        ax.set_title(f"{name}: {active.sum()} of {len(kl)} units active, {kl.sum():.2f} nats in all", fontsize=10)
        ax.set_ylabel("KL (nats)")
        ax.grid(axis="y", alpha=0.3)
    axes[-1, 0].set_xticks(units)
    axes[-1, 0].set_xlabel("latent unit u")
    axes[0, 0].legend(handles=[plt.Rectangle((0, 0), 1, 1, color="tab:blue"),
                               plt.Rectangle((0, 0), 1, 1, color="tab:gray")],
                      labels=["active", "inactive"], loc="upper right", fontsize=8)
    fig.suptitle(title)
    return _finish(fig)


def show_grids(grids: Sequence[torch.Tensor], titles: Sequence[str], nrow: int = 8, title: str = "") -> plt.Figure:
    """Image grids side by side, one titled panel each: e.g. samples of two models, or from two distributions."""
    if len(grids) != len(titles) or len(grids) == 0:
        raise ValueError(f"give one title per grid of images; got {len(grids)} grids and {len(titles)} titles.")
    rows = max(-(-len(images) // nrow) for images in grids)
    fig, axes = plt.subplots(1, len(grids), figsize=(0.65 * nrow * len(grids), 0.65 * rows + 0.9), squeeze=False)
    for ax, images, name in zip(axes[0], grids, titles):
        grid = _make_grid(_as_images(images), nrow=nrow, padding=2, pad_value=1.0)  # (3, H, W)
        ax.imshow(grid.permute(1, 2, 0).numpy())  # (3, H, W) -> (H, W, 3)
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle(title)
    return _finish(fig)
