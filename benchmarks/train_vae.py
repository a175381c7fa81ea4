"""Train the article's VAE on the same machine and data through different pipelines, taking turns, and compare.

    python benchmarks/train_vae.py --epochs 10 --json results.json

1. course_utils, as fit trains by default: in-memory tensors cut into batches, train.train_epoch and train.evaluate
   (float32, plain Adam, model(x) and losses.vae_loss).
2. course_utils with fit(..., fast=True), the opt-in speed switch: the same loop with Adam fused into one kernel per
   step (--no-fast leaves it out).
3. The article's pipeline: torchvision datasets.MNIST with transforms.ToTensor() and a shuffled DataLoader
   (batch 128), a VAE with sigmoid outputs, and its loss (BCE averaged over batch and pixels plus KLD / (B * 784)).

All use the article's model (784-400-20), batch 128, Adam at lr 1e-3, the same initial weights and the same number of
threads; --seeds repeats the whole comparison. Each epoch is one pass over the training set plus one over the test
set, as the training scripts do. All test losses are measured by one function: summed BCE plus KL per image, in nats,
at z = mu (eval mode) and with z sampled. Run it on a quiet machine: it reports median epoch times, and a loaded
machine makes every pipeline slower.
"""
from __future__ import annotations

import argparse
import gzip
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _report import command, mnist_folder, publish  # benchmarks/, this script's folder

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from course_utils import data as course_data  # noqa: E402
from course_utils.models import VAE  # noqa: E402
from course_utils.setup import seed_everything  # noqa: E402
from course_utils.train import TrainConfig, evaluate, loss_terms, make_optimizer, train_epoch  # noqa: E402


class ArticleVAE(nn.Module):
    """The article's model, as written there (in current PyTorch): sigmoid outputs, flat (B, 784) images."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        if self.training:
            std = torch.exp(0.5 * logvar)
            return mu + std * torch.randn_like(std)
        return mu

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))  # (B, 1, 28, 28) -> (B, 784)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def article_loss(recon_x, x, mu, logvar):
    """The article's loss: BCE averaged over batch and pixels, KLD divided by BATCH_SIZE * 784."""
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784))
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld / (len(x) * 784)


def article_loaders(raw_gz: Path, root: Path, batch_size: int, seed: int):
    """torchvision's MNIST over un-gzipped copies of the files, with ToTensor and shuffled DataLoaders."""
    from torchvision import datasets, transforms

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in course_data.FILES["train"] + course_data.FILES["test"]:
        source = raw_gz / name if (raw_gz / name).exists() else raw_gz / f"{name}.gz"
        blob = source.read_bytes()
        (raw / name).write_bytes(gzip.decompress(blob) if source.suffix == ".gz" else blob)
    train = datasets.MNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    test = datasets.MNIST(str(root), train=False, download=False, transform=transforms.ToTensor())
    g = torch.Generator().manual_seed(seed)
    return (torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=True, generator=g),
            torch.utils.data.DataLoader(test, batch_size=batch_size, shuffle=False))


def article_epoch(model, optimizer, train_loader, test_loader) -> None:
    """One epoch of the article's training script: a training pass, then a test pass through the loader."""
    model.train()
    for x, _ in train_loader:
        optimizer.zero_grad()
        recon, mu, logvar = model(x)
        loss = article_loss(recon, x, mu, logvar)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        for x, _ in test_loader:
            model(x)


@torch.no_grad()
def nats_per_image(model, x: torch.Tensor, sample: bool = False, draws: int = 10) -> float:
    """Summed BCE plus KL per test image, the figure both pipelines are judged by.

    sample=False decodes z = mu (eval mode: the article's reparameterize); sample=True draws z ~ q(z | x), as the
    reference implementation's test loop does since it samples in eval mode too: the one-sample negative ELBO,
    averaged over `draws` independent draws so that the sampling noise (about 0.05 nats per draw) is averaged out.
    """
    model.train(sample)  # only reparameterize depends on the mode: neither model has dropout or batch norm
    total = 0.0
    for draw in range(draws if sample else 1):
        torch.manual_seed(draw)
        for start in range(0, len(x), 1000):
            xb = x[start:start + 1000]
            out = model(xb)
            recon, mu, logvar = out[0], out[1], out[2]
            bce = F.binary_cross_entropy(recon.reshape(len(xb), 784), xb.reshape(len(xb), 784), reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            total += (bce + kld).item()
    model.eval()
    return total / len(x) / (draws if sample else 1)


def flops_per_epoch(n_train: int, n_test: int, batch_size: int) -> float:
    """FLOPs of one epoch (a training step per batch plus the test forward passes), counted by PyTorch."""
    model, x = VAE(), torch.rand(batch_size, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        loss_terms(model, x)["loss"].backward()
    step = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()
        loss_terms(model, x)
    forward = counter.get_total_flops()
    return step * n_train / batch_size + forward * n_test / batch_size


def matmul_peak(n: int = 2048, repeats: int = 3) -> float:
    """The FLOP/s of a large square matmul: what this machine's cores can do at best (best of `repeats`)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def _loss(r: dict, key: str) -> str:
    values = r[f"{key}_per_seed"]
    return f"{r[key]:.2f}" + (f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else "")


def markdown_table(results: dict) -> str:
    """The results as a Markdown table, with the command and machine that produced them."""
    lines = [f"| pipeline | median epoch | a run of {results['epochs']} epochs | test loss, z = mu | "
             "test loss, z sampled | achieved | of the fp32 matmul peak |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    labels = {"article": "the article's pipeline (fp32)", "course_utils": "`course_utils`, `fit`'s default (fp32)",
              "course_utils_fast": "`course_utils`, `fit(..., fast=True)` (fp32, fused Adam)"}
    for name, label in labels.items():
        if name not in results:
            continue
        r = results[name]
        lines.append(f"| {label} | {r['epoch_s']:.2f} s | {r['run_s']:.1f} s | {_loss(r, 'test_loss')} | "
                     f"{_loss(r, 'test_loss_sampled')} | {r['gflops']:.0f} GFLOP/s | "
                     f"{100 * r['fraction_of_matmul_peak']:.0f}% |")
    pairs = results["ratio_of_pairs"]
    seeds = results["seeds"]
    lines += ["", f"Test losses in nats per image after {results['epochs']} epochs"
              + (f", mean ± standard deviation over {seeds} seeds (each seed: both pipelines from the same initial "
                 f"weights)" if seeds > 1 else "")
              + "; the sampled loss is averaged over 10 draws of z. "
              f"**Speed-up: {results['ratio']:.2f}x per epoch** (median epochs; within each back-to-back pair of "
              f"epochs the ratio was {pairs['median']:.2f}x at the median, {pairs['min']:.2f}x to {pairs['max']:.2f}x)"
              + (f"; with `fast=True`, {results['ratio_fast']:.2f}x" if "ratio_fast" in results else "")
              + ". "
              f"One epoch is {results['gflop_per_epoch']} GFLOP "
              f"(counted by `torch.utils.flop_counter`); a large fp32 matmul reaches {results['matmul_peak_gflops']} "
              f"GFLOP/s at best (measured between every pair of epochs) on this machine's {results['threads']} threads"
              + f". Peak memory of the benchmark process (all "
              f"pipelines): {results['peak_rss_mb']:,} MB. Measured with `{command()}` "
              f"(torch {results['torch']}, Python {results['python']}, {results['machine']}, "
              f"{time.strftime('%Y-%m-%d')})."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--seeds", type=int, default=1,
                        help="train both pipelines this many times (seeds seed, seed + 1, ...): test losses are means")
    parser.add_argument("--data", default=None, help="folder with the four MNIST files (default: COURSE_DATA or data/)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--no-fast", action="store_true", help="leave out the third pipeline, fit(..., fast=True)")
    parser.add_argument("--docs", action="store_true", help="also write the table to docs/_generated/benchmark.md")
    args = parser.parse_args()
    if args.epochs < 1 or args.seeds < 1 or args.batch_size < 1:
        parser.error("--epochs, --seeds and --batch-size must be whole numbers of at least 1, e.g. --epochs 10")

    folder = mnist_folder(args.data)
    x_train, y_train = course_data.load_mnist("train", root=folder)
    x_test, y_test = course_data.load_mnist("test", root=folder)
    tmp = tempfile.TemporaryDirectory()

    configs = {"course_utils": TrainConfig(batch_size=args.batch_size),
               "course_utils_fast": TrainConfig(batch_size=args.batch_size, fast=True)}
    pipelines = ["article", "course_utils"] + ([] if args.no_fast else ["course_utils_fast"])
    times: dict[str, list[float]] = {name: [] for name in pipelines}
    losses = {name: {"test_loss": [], "test_loss_sampled": []} for name in pipelines}
    peaks: list[float] = []
    for seed in range(args.seed, args.seed + args.seeds):
        seed_everything(seed)
        models = {"course_utils": VAE(), "article": ArticleVAE(), "course_utils_fast": VAE()}
        for name in ("article", "course_utils_fast"):  # the same layer names: all start from the same weights
            models[name].load_state_dict(models["course_utils"].state_dict())
        optimizers = {name: make_optimizer(models[name], config) for name, config in configs.items()}
        optimizers["article"] = torch.optim.Adam(models["article"].parameters(), lr=1e-3)
        shuffles = {name: torch.Generator().manual_seed(seed) for name in models}
        train_loader, test_loader = article_loaders(folder, Path(tmp.name), args.batch_size, seed)
        for epoch in range(1, args.epochs + 1):
            for name in pipelines:
                start = time.perf_counter()
                if name == "article":
                    article_epoch(models[name], optimizers[name], train_loader, test_loader)
                else:
                    train_epoch(models[name], optimizers[name], (x_train, y_train), configs[name], shuffles[name],
                                progress=False)
                    evaluate(models[name], (x_test, y_test))  # as fit does it: batches of 1,000, no gradients
                times[name].append(time.perf_counter() - start)
            # the machine's speed drifts: measure the peak between every pair of epochs and keep the best
            peaks.append(matmul_peak())
            print(f"seed {seed} epoch {epoch:>2}: "
                  + ", ".join(f"{name} {times[name][-1]:.2f} s" for name in pipelines),
                  flush=True)
        for name in pipelines:
            losses[name]["test_loss"].append(nats_per_image(models[name], x_test))
            losses[name]["test_loss_sampled"].append(nats_per_image(models[name], x_test, sample=True))

    flops = flops_per_epoch(len(x_train), len(x_test), args.batch_size)
    peak = max(peaks)
    results = {"epochs": args.epochs, "seeds": args.seeds, "batch_size": args.batch_size,
               "threads": torch.get_num_threads(),
               "torch": str(torch.__version__), "python": platform.python_version(), "machine": platform.machine(),
               "gflop_per_epoch": round(flops / 1e9, 1), "matmul_peak_gflops": round(peak / 1e9, 1),
               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    for name in times:
        epoch_s = statistics.median(times[name])
        runs = [times[name][i:i + args.epochs] for i in range(0, len(times[name]), args.epochs)]
        results[name] = {"epoch_s": round(epoch_s, 3), "epoch_times_s": [round(t, 3) for t in times[name]],
                         # a whole run of --epochs epochs: mean over the seeds
                         "run_s": round(statistics.mean(sum(run) for run in runs), 1),
                         "gflops": round(flops / epoch_s / 1e9, 1),
                         "fraction_of_matmul_peak": round(flops / epoch_s / peak, 3)}
        for key, values in losses[name].items():  # the mean over the seeds, and each seed's value
            results[name][key] = round(statistics.mean(values), 2)
            results[name][f"{key}_per_seed"] = [round(v, 2) for v in values]
    results["ratio"] = round(results["article"]["epoch_s"] / results["course_utils"]["epoch_s"], 2)
    if "course_utils_fast" in results:
        results["ratio_fast"] = round(results["article"]["epoch_s"] / results["course_utils_fast"]["epoch_s"], 2)
    # the ratio within each pair of back-to-back epochs: robust to the machine's speed drifting during the run
    pair_ratios = [a / c for a, c in zip(times["article"], times["course_utils"])]
    results["ratio_of_pairs"] = {"median": round(statistics.median(pair_ratios), 2),
                                 "min": round(min(pair_ratios), 2), "max": round(max(pair_ratios), 2)}

    publish(markdown_table(results), "benchmark.md", args.docs)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
