"""Play with a 2-D latent space: the plain functions that draw each view, and the ipywidgets that call them.

The widgets only read their controls and call a drawing function; the drawing functions take plain numbers, so they
are tested on their own and give the static figure that follows every widget in the notebooks (the website, GitHub's
viewer and nbval cannot move a slider).
"""
from __future__ import annotations

import io
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import torch
from torch import nn

from .latent import lerp, slerp
from .plot import _finish, _make_grid, draw_posteriors

PATHS: dict[str, Callable] = {"lerp": lerp, "slerp": slerp}  # the two walks of notebook 07


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def decode_codes(model: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Images (N, 1, 28, 28) on the CPU decoded from 2-D codes z (N, 2), in eval mode, without gradients."""
    if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != model.latent_dim:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"z must be codes of shape (N, {model.latent_dim}); got {shape}.")
    was_training = model.training
    model.eval()
    try:
        return model.decode(z.float().to(_device(model))).cpu().view(-1, 1, 28, 28)
    finally:
        model.train(was_training)


def walk(z0: torch.Tensor, z1: torch.Tensor, t: float, kind: str = "slerp",
         steps: int = 101) -> tuple[torch.Tensor, torch.Tensor]:
    """The path from z0 to z1 by lerp or slerp in steps points (steps, d), and its point at fraction t (d,): the
    path's point nearest to t (exactly at t for t a multiple of 1 / (steps - 1), such as the slider's 0.05 steps)."""
    if kind not in PATHS:
        raise ValueError(f"kind={kind!r} must be one of {sorted(PATHS)}.")
    if not 0 <= t <= 1:
        raise ValueError(f"t={t} must lie in [0, 1]: 0 is the first image's code, 1 the second's.")
    path = PATHS[kind](z0, z1, steps)  # (steps, d)
    return path, path[round(t * (steps - 1))]


def explorer_figure(model: nn.Module, mu: torch.Tensor, y: torch.Tensor, z: Sequence[float],
                    path: torch.Tensor | None = None, title: str = "") -> plt.Figure:
    """The codes mu (N, 2) coloured by digit y, the point z marked (and a path, if given), and the digit decoded at
    z."""
    z = torch.as_tensor(z, dtype=torch.float32).view(1, -1)  # (1, 2)
    image = decode_codes(model, z)[0, 0]  # (28, 28)
    fig, (ax, ax_image) = plt.subplots(1, 2, figsize=(8.5, 4), gridspec_kw={"width_ratios": [1.25, 1]})
    points = ax.scatter(mu[:, 0], mu[:, 1], c=y, cmap="tab10", s=3, alpha=0.5, vmin=-0.5, vmax=9.5)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    if path is not None:
        ax.plot(path[:, 0], path[:, 1], color="black", lw=1.5)
    ax.scatter(z[:, 0], z[:, 1], marker="*", s=250, c="black", edgecolors="white", label="z")
    ax.set(xlabel="$z_1$", ylabel="$z_2$", title=title or "Codes of test digits, and z", xlim=(-4, 4), ylim=(-4, 4))
    ax_image.imshow(image.numpy(), cmap="gray", vmin=0, vmax=1)
    ax_image.set_title(f"decoded at z = ({z[0, 0]:.2f}, {z[0, 1]:.2f})")
    ax_image.axis("off")
    return _finish(fig)


def _png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes, for an ipywidgets.Image."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def latent_explorer(model: nn.Module, mu: torch.Tensor, y: torch.Tensor):
    """A widget: sliders over z = (z_1, z_2) and the digit decoded there, drawn over the codes mu (N, 2) of digits y;
    a second tab walks a path (lerp or slerp) between the codes of two of those images, chosen by index."""
    import ipywidgets as widgets

    if mu.ndim != 2 or mu.shape[1] != 2:
        raise ValueError(f"the explorer draws 2-D codes: mu must be (N, 2); got {tuple(mu.shape)}.")
    slider = dict(min=-3.5, max=3.5, step=0.05, value=0.0, continuous_update=False)
    z1, z2 = widgets.FloatSlider(description="z_1", **slider), widgets.FloatSlider(description="z_2", **slider)
    first = widgets.BoundedIntText(value=0, min=0, max=len(mu) - 1, description="image a")
    second = widgets.BoundedIntText(value=1, min=0, max=len(mu) - 1, description="image b")
    kind = widgets.ToggleButtons(options=["lerp", "slerp"], value="slerp", description="path")
    t = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="t", continuous_update=False)
    tabs = widgets.Tab(children=[widgets.VBox([z1, z2]), widgets.VBox([widgets.HBox([first, second]), kind, t])])
    tabs.set_title(0, "point")
    tabs.set_title(1, "path")
    image = widgets.Image(format="png")

    def redraw(_=None) -> None:
        if tabs.selected_index == 1:
            path, z = walk(mu[first.value], mu[second.value], t.value, kind.value)
            fig = explorer_figure(model, mu, y, z.tolist(), path=path,
                                  title=f"{kind.value} from image {first.value} (digit {int(y[first.value])}) to "
                                        f"{second.value} (digit {int(y[second.value])})")
        else:
            fig = explorer_figure(model, mu, y, (z1.value, z2.value))
        image.value = _png(fig)

    for control in (z1, z2, first, second, kind, t):
        control.observe(redraw, names="value")
    tabs.observe(redraw, names="selected_index")
    redraw()
    return widgets.VBox([tabs, image])


def beta_figure(result: dict, title: str = "") -> plt.Figure:
    """One beta's view: its 2-D posteriors mu +- 2 sigma over the prior, samples from the prior, rate and distortion.

    result holds 'beta', 'mu', 'logvar', 'y' (codes of some test digits), 'samples' (images) and 'rate',
    'distortion' (nats per image), as beta_results returns them.
    """
    fig, (ax, ax_samples) = plt.subplots(1, 2, figsize=(9, 4.3))
    draw_posteriors(ax, result["mu"], result["logvar"], result["y"])  # the prior's circles, ellipses mu +- 2 sigma
    ax.set(xlim=(-4, 4), ylim=(-4, 4), aspect="equal", xlabel="$z_1$", ylabel="$z_2$",
           title=f"beta = {result['beta']:g}: posteriors mu ± 2σ over N(0, I)")
    grid = _make_grid(result["samples"], nrow=8, padding=2, pad_value=1.0)  # (3, H, W)
    ax_samples.imshow(grid.permute(1, 2, 0).numpy())
    ax_samples.axis("off")
    ax_samples.set_title(f"samples from the prior\nrate {result['rate']:.1f} nats, "
                         f"distortion {result['distortion']:.1f} nats")
    if title:
        fig.suptitle(title)
    return _finish(fig)


def beta_explorer(results: Sequence[dict]):
    """A widget: a slider over the betas of results (one dict per trained model, see beta_figure) and its view."""
    import ipywidgets as widgets

    by_beta = {f"{r['beta']:g}": r for r in results}
    choice = widgets.SelectionSlider(options=list(by_beta), value=list(by_beta)[0], description="beta",
                                     continuous_update=False)
    image = widgets.Image(format="png")

    def redraw(_=None) -> None:
        image.value = _png(beta_figure(by_beta[choice.value]))

    choice.observe(redraw, names="value")
    redraw()
    return widgets.VBox([choice, image])


@torch.no_grad()
def beta_result(model: nn.Module, beta: float, x: torch.Tensor, y: torch.Tensor, num_codes: int = 300,
                num_samples: int = 32, seed: int = 0) -> dict:
    """What beta_figure shows for one trained 2-D VAE: the posteriors of the first num_codes images of x (digits y),
    num_samples images decoded from the prior, and the mean rate (KL) and distortion (reconstruction) over x."""
    from .likelihood import elbo_terms

    was_training = model.training
    model.eval()
    try:
        mu, logvar = model.encode(x[:num_codes].to(_device(model)))
        terms = elbo_terms(model, x, generator=torch.Generator().manual_seed(seed))
        samples = model.sample(num_samples, generator=torch.Generator().manual_seed(seed)).cpu()
    finally:
        model.train(was_training)
    return {"beta": beta, "mu": mu.cpu(), "logvar": logvar.cpu(), "y": y[:num_codes].cpu(), "samples": samples,
            "rate": terms["kl"].mean().item(), "distortion": terms["recon"].mean().item()}
