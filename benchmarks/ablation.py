"""What each speed choice of course_utils's training loop is worth, measured on its own, on the same machine and data.

    python benchmarks/ablation.py --epochs 5 --docs

Each variant trains the article's VAE (batch 128, Adam at lr 1e-3) for --epochs passes over full MNIST held in
memory; the variants take turns every 20 steps (so that the machine's drift in speed slows them all alike), and the
table gives each one's median seconds per training pass (no test pass), and its time over all epochs including the
first, warm-up one: torch.compile's first epoch includes its compilation. The first row is fit's default, the second
fit(..., fast=True); the rows marked "not kept" are alternatives the course measured and left out.
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
from course_utils.losses import kl_divergence  # noqa: E402
from course_utils.models import VAE  # noqa: E402
from course_utils.setup import seed_everything  # noqa: E402
from course_utils.train import loss_terms  # noqa: E402


def course_loss(model, x):
    """fit's loss: model(x), then losses.vae_loss (binary cross-entropy on the sigmoid's probabilities, as the
    article)."""
    return loss_terms(model, x)["loss"]


def logits_loss(model, x):
    """The alternative: the decoder's last layer without its sigmoid, and F.binary_cross_entropy_with_logits."""
    mu, logvar = model.encode(x)
    z = model.reparameterize(mu, logvar)
    logits = model.fc4(F.relu(model.fc3(z))).float()  # VAE.decode, before its sigmoid
    recon = F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="none").sum(1)
    return (recon + kl_divergence(mu.float(), logvar.float())).mean()


STEPS = 20  # training steps per turn: variants alternate every few hundredths of a second
FUSED = {"fused": True}
VARIANTS = {  # name: (loss, autocast dtype, Adam keyword arguments, compile)
    "fit's default: in-memory batches, float32, Adam": (course_loss, None, {}, False),
    "+ Adam(fused=True): fit(..., fast=True)": (course_loss, None, FUSED, False),
    "not kept: fast=True + bf16 autocast (the CPU has native bf16)": (course_loss, torch.bfloat16, FUSED, False),
    "not kept: fit's default with BCE from logits (F.binary_cross_entropy_with_logits)": (logits_loss, None, {}, False),
    "not kept: fit's default with Adam(foreach=True)": (course_loss, None, {"foreach": True}, False),
    "not kept: fast=True + torch.compile of the forward pass and loss": (course_loss, None, FUSED, True),
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
            with torch.autocast("cpu", dtype=self.autocast or torch.bfloat16, enabled=self.autocast is not None):
                loss = self.loss(self.model, xb)
            self.optimizer.zero_grad()
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
