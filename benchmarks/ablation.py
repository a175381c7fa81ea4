"""What makes course_utils's training loop fast: each choice measured on its own, on the same machine and data.

    python benchmarks/ablation.py --epochs 5 --docs

Each variant trains the article's VAE (batch 128, Adam at lr 1e-3) for --epochs passes over full MNIST held in
memory; the variants take turns every 20 steps (so that the machine's drift in speed slows them all alike), and the
table gives each one's median seconds per training pass (no test pass), and its time over all epochs including the
first, warm-up one: torch.compile's first epoch includes its compilation. The images are checked once, as
train_epoch does (validate.checked_data). The last two rows bound what leaving autograd out could save.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from _report import cold_compile_cache, measured, mnist_folder, publish  # benchmarks/, this script's folder

cold_compile_cache()  # before torch is imported
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from course_utils import data as course_data  # noqa: E402
from course_utils.losses import kl_divergence, reconstruction_loss_with_logits, vae_loss  # noqa: E402
from course_utils.models import VAE  # noqa: E402
from course_utils.setup import seed_everything  # noqa: E402
from course_utils.train import loss_terms  # noqa: E402
from course_utils.validate import checked_data  # noqa: E402


def probabilities_loss(model, x):
    """The article's way: sigmoid outputs, then binary cross-entropy on probabilities (course_utils.losses.vae_loss)."""
    x_hat, mu, logvar = model(x)
    return vae_loss(x_hat, x, mu, logvar)


def pytorch_logits_loss(model, x):
    """Cross-entropy from the decoder's logits through PyTorch's F.binary_cross_entropy_with_logits."""
    mu, logvar = model.encode(x)
    logits = model.decode_logits(model.reparameterize(mu, logvar)).float()
    recon = F.binary_cross_entropy_with_logits(logits.flatten(1), x.flatten(1), reduction="none").sum(1)
    return (recon + kl_divergence(mu.float(), logvar.float())).mean()


def logits_loss(model, x):
    """course_utils.train.loss_terms: cross-entropy from the logits through losses.reconstruction_loss_with_logits."""
    return loss_terms(model, x)["loss"]


def hand_written_loss(model, x):
    """The same computation written out inline, without course_utils's functions and checks: what they cost."""
    h = F.relu(model.fc1(x.view(-1, 784)))
    mu, logvar = model.fc21(h).float(), model.fc22(h).float()
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    logits = model.fc4(F.relu(model.fc3(z))).float()
    recon = reconstruction_loss_with_logits(logits, x.view(-1, 784))
    return (recon + 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)).mean()


@torch.no_grad()
def backprop_by_hand(model, x, dtype=torch.bfloat16, latent_dtype=None):
    """course_utils's step (products in dtype, the loss in x's float32) with its backward pass written out as matrix
    products: no autograd, no modules, no checks, so what it saves bounds what those cost. Returns the loss and writes
    every parameter's .grad itself. latent_dtype: the dtype of the small products next to the code z (fc21, fc22,
    fc3), dtype unless given.
    """
    full, small = x.dtype, latent_dtype or dtype
    fc1, fc21, fc22, fc3, fc4 = model.fc1, model.fc21, model.fc22, model.fc3, model.fc4
    x = x.view(-1, 784)                                                  # (B, 784)
    x_, w1, w4 = x.to(dtype), fc1.weight.to(dtype), fc4.weight.to(dtype)
    w21, w22, w3 = fc21.weight.to(small), fc22.weight.to(small), fc3.weight.to(small)
    a1 = torch.addmm(fc1.bias.to(dtype), x_, w1.t())                     # (B, 400)
    h = a1.relu().to(small)
    mu = torch.addmm(fc21.bias.to(small), h, w21.t()).to(full)           # (B, 20)
    logvar = torch.addmm(fc22.bias.to(small), h, w22.t()).to(full)       # (B, 20)
    std = torch.exp(0.5 * logvar)
    eps = torch.randn_like(std)
    z = torch.addcmul(mu, std, eps)                                      # mu + std * eps
    z_ = z.to(small)
    a3 = torch.addmm(fc3.bias.to(small), z_, w3.t())                     # (B, 400)
    h3 = a3.relu().to(dtype)
    logits = torch.addmm(fc4.bias.to(dtype), h3, w4.t()).to(full)        # (B, 784)
    loss = (reconstruction_loss_with_logits(logits, x) + kl_divergence(mu, logvar)).mean()

    scale = 1.0 / len(x)                                                 # d loss / d (each example's terms)
    g_logits = (torch.sigmoid(logits) - x).mul_(scale)                   # (B, 784)
    g_logits_ = g_logits.to(dtype)
    fc4.weight.grad, fc4.bias.grad = g_logits_.t().mm(h3).to(full), g_logits.sum(0)
    g_a3 = g_logits_.mm(w4).to(small).mul_(a3 > 0)                       # (B, 400), through the ReLU
    fc3.weight.grad, fc3.bias.grad = g_a3.t().mm(z_).to(full), g_a3.sum(0).to(full)
    g_z = g_a3.mm(w3).to(full)                                           # (B, 20)
    g_mu = g_z + scale * mu                                              # the KL's 0.5 mu^2
    g_logvar = 0.5 * (g_z * eps * std + scale * torch.expm1(logvar))    # z through std; the KL's 0.5 (e^logvar - 1)
    g_mu_, g_logvar_ = g_mu.to(small), g_logvar.to(small)
    fc21.weight.grad, fc21.bias.grad = g_mu_.t().mm(h).to(full), g_mu.sum(0)
    fc22.weight.grad, fc22.bias.grad = g_logvar_.t().mm(h).to(full), g_logvar.sum(0)
    g_a1 = torch.addmm(g_mu_.mm(w21), g_logvar_, w22).mul_(a1 > 0)      # (B, 400)
    fc1.weight.grad, fc1.bias.grad = g_a1.to(dtype).t().mm(x_).to(full), g_a1.sum(0).to(full)
    return loss


def backprop_by_hand_fp32_latent(model, x):
    """backprop_by_hand with the small products next to the code in float32: there oneDNN's fixed cost of a bf16
    product (tens of microseconds per call) is more than the product itself."""
    return backprop_by_hand(model, x, latent_dtype=torch.float32)


STEPS = 20  # training steps per turn: variants alternate every few hundredths of a second
FUSED = {"fused": True}
VARIANTS = {  # name: (loss, autocast dtype, Adam keyword arguments, compile); each row adds one choice
    "in-memory batches, BCE on sigmoid outputs, fp32": (probabilities_loss, None, {}, False),
    "+ BCE with logits (F.binary_cross_entropy_with_logits)": (pytorch_logits_loss, None, {}, False),
    "+ BCE with logits (losses.reconstruction_loss_with_logits)": (logits_loss, None, {}, False),
    "+ bf16 autocast": (logits_loss, torch.bfloat16, {}, False),
    "+ Adam(fused=True): course_utils's loop": (logits_loss, torch.bfloat16, FUSED, False),
    "course_utils's loop in float32 (no autocast)": (logits_loss, None, FUSED, False),
    "the same loop hand-written, without course_utils": (hand_written_loss, torch.bfloat16, FUSED, False),
    "not kept: Adam(foreach=True) instead of fused": (logits_loss, torch.bfloat16, {"foreach": True}, False),
    "not kept: course_utils's loop + torch.compile": (logits_loss, torch.bfloat16, FUSED, True),
    "bound: the same step with its backward pass written out by hand, no autograd": (backprop_by_hand, None, FUSED,
                                                                                      False),
    "the same, with the latent layers (fc21, fc22, fc3) in float32": (backprop_by_hand_fp32_latent, None, FUSED, False),
}


class Run:
    """One variant's model, optimizer and timings: an epoch is run a few steps at a time (steps), taking turns."""

    def __init__(self, loss, autocast, adam_kwargs, compiled, seed):
        seed_everything(seed)
        self.model = VAE()
        # the whole forward pass and loss as one graph; the last, smaller batch compiles a second one
        self.loss = torch.compile(loss, dynamic=False) if compiled else loss
        self.autocast = autocast
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, **adam_kwargs)
        self.shuffle = torch.Generator().manual_seed(seed)
        self.seconds: list[float] = []  # per epoch
        self._batches = iter(())

    def start_epoch(self, x: torch.Tensor, batch_size: int) -> None:
        self._batches = course_data.batches(x, None, batch_size, generator=self.shuffle)
        self.seconds.append(0.0)

    def steps(self, count: int) -> bool:
        """Up to count training steps of the current epoch, timed; False once the epoch is over."""
        start, done = time.perf_counter(), 0
        for _, (xb, _) in zip(range(count), self._batches):  # range first: no batch is drawn and dropped
            with checked_data(), torch.autocast("cpu", dtype=self.autocast, enabled=self.autocast is not None):
                loss = self.loss(self.model, xb)
            if loss.requires_grad:  # backprop_by_hand has written the gradients already
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
            self.optimizer.step()
            done += 1
        self.seconds[-1] += time.perf_counter() - start
        return done == count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per variant, after one warm-up")
    parser.add_argument("--data", default=None, help="folder with the four MNIST files (default: COURSE_DATA or data/)")
    parser.add_argument("--docs", action="store_true", help="also write the table to docs/_generated/ablation.md")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error("--epochs must be a whole number of at least 1, e.g. --epochs 5")
    x, _ = course_data.load_mnist("train", root=mnist_folder(args.data))
    runs = {name: Run(*variant, seed=0) for name, variant in VARIANTS.items()}
    for epoch in range(args.epochs + 1):  # epoch 0 warms up (and compiles); it is not counted
        for run in runs.values():
            run.start_epoch(x, 128)
        active = list(runs.values())
        while active:  # STEPS steps of each variant in turn: the machine's drift affects them all alike
            active = [run for run in active if run.steps(STEPS)]
        for name, run in runs.items():
            print(f"epoch {epoch}: {name:<45} {run.seconds[-1]:6.2f} s", flush=True)
    base = statistics.median(runs[next(iter(runs))].seconds[1:])
    lines = [f"| training pass over 60,000 images | median | speed-up | all {args.epochs + 1} epochs, first included |",
             "| --- | ---: | ---: | ---: |"]
    for name, run in runs.items():
        median = statistics.median(run.seconds[1:])
        note = f" (first epoch, compiling: {run.seconds[0]:.1f} s)" if VARIANTS[name][3] else ""
        lines.append(f"| {name}{note} | {median:.2f} s | {base / median:.2f}x | {sum(run.seconds):.1f} s |")
    lines += ["", measured(f"{args.epochs} timed epochs after one warm-up")]
    publish("\n".join(lines) + "\n", "ablation.md", args.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
