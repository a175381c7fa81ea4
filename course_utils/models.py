"""The course's autoencoders (plain and variational, fully connected, convolutional and conditional), and the small
digit classifier that measures what they generate."""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .diffusion import NoisePredictor
from .validate import check_device, check_image_shape
from .vq import Quantized, quantize

__all__ = ["IMAGE_SIZE", "NUM_CLASSES", "VAEOutput", "Autoencoder", "GaussianVAE", "VAE", "ConditionalVAE",
           "ConvAutoencoder", "ConvVAE", "DigitClassifier", "VQVAEOutput", "VQVAE", "NoisePredictor"]

IMAGE_SIZE = 28 * 28  # MNIST pixels per image
NUM_CLASSES = 10


class VAEOutput(NamedTuple):
    """What a VAE's forward pass returns; unpacks like a tuple: x_hat, mu, logvar = model(x)."""
    x_hat: torch.Tensor   # (B, 1, 28, 28) reconstruction, pixel probabilities in [0, 1]
    mu: torch.Tensor      # (B, latent_dim) mean of q(z | x)
    logvar: torch.Tensor  # (B, latent_dim) log-variance of q(z | x)


def _flat(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """x as (B, 784), after checks that read no pixel values: its shape, and that it is on the model's device."""
    check_image_shape(x)
    check_device(model, x)
    return x.flatten(1)  # (B, 1, 28, 28) -> (B, 784)


def _image(x_flat: torch.Tensor) -> torch.Tensor:
    return x_flat.view(-1, 1, 28, 28)  # (B, 784) -> (B, 1, 28, 28)


class Autoencoder(nn.Module):
    """A plain autoencoder: 784 -> hidden_dim -> latent_dim -> hidden_dim -> 784."""

    def __init__(self, latent_dim: int = 20, hidden_dim: int = 400):
        super().__init__()
        self.latent_dim, self.hidden_dim = latent_dim, hidden_dim
        self.encoder = nn.Sequential(nn.Linear(IMAGE_SIZE, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, IMAGE_SIZE),
                                     nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 28, 28) -> codes z (B, latent_dim)."""
        return self.encoder(_flat(self, x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes z (B, latent_dim) -> images x_hat (B, 1, 28, 28) in [0, 1]."""
        return _image(self.decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images x (B, 1, 28, 28) -> reconstructions x_hat (B, 1, 28, 28)."""
        return self.decode(self.encode(x))


class GaussianVAE(nn.Module):
    """What every VAE shares: the reparameterization trick, the forward pass and sampling from the prior."""

    latent_dim: int

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I) when training; mu itself in eval mode (as the article)."""
        if not self.training:
            return mu
        std = torch.exp(0.5 * logvar)  # sigma = exp(log(sigma^2) / 2)
        eps = torch.randn_like(std)
        return mu + std * eps

    def forward(self, x: torch.Tensor) -> VAEOutput:
        """Images x (B, 1, 28, 28) -> x_hat, mu, logvar: encode, sample z, decode."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return VAEOutput(self.decode(z), mu, logvar)

    @torch.no_grad()
    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """New images (num_samples, 1, 28, 28): decode z ~ N(0, I), the prior."""
        device = next(self.parameters()).device
        z = torch.randn(num_samples, self.latent_dim, generator=generator, device="cpu").to(device)
        return self.decode(z)


class VAE(GaussianVAE):
    """The article's VAE: encoder 784-400 with mu and logvar heads of latent_dim, decoder latent_dim-400-784."""

    def __init__(self, latent_dim: int = 20, hidden_dim: int = 400):
        super().__init__()
        self.latent_dim, self.hidden_dim = latent_dim, hidden_dim
        self.fc1 = nn.Linear(IMAGE_SIZE, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, latent_dim)  # mu head
        self.fc22 = nn.Linear(hidden_dim, latent_dim)  # logvar head
        self.fc3 = nn.Linear(latent_dim, hidden_dim)
        self.fc4 = nn.Linear(hidden_dim, IMAGE_SIZE)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 1, 28, 28) -> mu, logvar, each (B, latent_dim)."""
        h = F.relu(self.fc1(_flat(self, x)))  # (B, 784) -> (B, hidden_dim)
        return self.fc21(h), self.fc22(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes z (B, latent_dim) -> images x_hat (B, 1, 28, 28) in [0, 1]."""
        h = F.relu(self.fc3(z))  # (B, latent_dim) -> (B, hidden_dim)
        return _image(torch.sigmoid(self.fc4(h)))  # (B, hidden_dim) -> (B, 784) -> (B, 1, 28, 28)


class ConditionalVAE(GaussianVAE):
    """A VAE told the digit: q(z | x, y) and p(x | z, y), with y one-hot; decode(z, y) draws digit y."""

    def __init__(self, latent_dim: int = 20, hidden_dim: int = 400, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.latent_dim, self.hidden_dim, self.num_classes = latent_dim, hidden_dim, num_classes
        self.fc1 = nn.Linear(IMAGE_SIZE + num_classes, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, latent_dim)
        self.fc22 = nn.Linear(hidden_dim, latent_dim)
        self.fc3 = nn.Linear(latent_dim + num_classes, hidden_dim)
        self.fc4 = nn.Linear(hidden_dim, IMAGE_SIZE)

    def _one_hot(self, y: torch.Tensor, batch: int) -> torch.Tensor:
        if y is None:
            raise ValueError("A ConditionalVAE needs the digits' labels y: call model(x, y), and train it on data "
                             "with labels, (x, y) as load_mnist returns them.")
        if not isinstance(y, torch.Tensor) or y.shape != (batch,) or y.dtype != torch.int64:
            raise ValueError(f"y must be int64 labels of shape ({batch},) in 0..{self.num_classes - 1}; got "
                             f"{getattr(y, 'dtype', type(y).__name__)}, shape {tuple(getattr(y, 'shape', ()))}. "
                             f"Use e.g. torch.tensor([3, 7]) or y.long().")
        return F.one_hot(y, self.num_classes).to(self.fc1.weight.dtype)  # (B,) -> (B, num_classes)

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels -> mu, logvar of q(z | x, y), each (B, latent_dim)."""
        x_flat = _flat(self, x)
        h = F.relu(self.fc1(torch.cat([x_flat, self._one_hot(y, len(x_flat))], dim=1)))  # (B, 784 + 10)
        return self.fc21(h), self.fc22(h)

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Codes z (B, latent_dim) and labels y (B,) -> images of those digits (B, 1, 28, 28) in [0, 1]."""
        h = F.relu(self.fc3(torch.cat([z, self._one_hot(y, len(z))], dim=1)))  # (B, latent_dim + 10)
        return _image(torch.sigmoid(self.fc4(h)))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> VAEOutput:
        """Images x and labels y -> x_hat, mu, logvar."""
        mu, logvar = self.encode(x, y)
        return VAEOutput(self.decode(self.reparameterize(mu, logvar), y), mu, logvar)

    @torch.no_grad()
    def sample(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One new image of each digit in y (B,): decode z ~ N(0, I) with that label."""
        if isinstance(y, torch.Tensor) and len(y) and (y.min() < 0 or y.max() >= self.num_classes):
            raise ValueError(f"y must hold digits in 0..{self.num_classes - 1}; got {y.min().item()} to "
                             f"{y.max().item()}.")
        z = torch.randn(len(y), self.latent_dim, generator=generator, device="cpu").to(self.fc1.weight.device)
        return self.decode(z, y.to(z.device))


def _conv_encoder(channels: int = 32) -> nn.Sequential:
    return nn.Sequential(  # (B, 1, 28, 28) -> (B, 2c, 7, 7) -> (B, 2c * 49)
        nn.Conv2d(1, channels, 3, stride=2, padding=1), nn.ReLU(),             # -> (B, c, 14, 14)
        nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), nn.ReLU(),  # -> (B, 2c, 7, 7)
        nn.Flatten(),
    )


def _conv_decoder(latent_dim: int, channels: int = 32) -> nn.Sequential:
    return nn.Sequential(  # (B, latent_dim) -> (B, 1, 28, 28) pixel values in [0, 1]
        nn.Linear(latent_dim, 2 * channels * 49), nn.ReLU(),
        nn.Unflatten(1, (2 * channels, 7, 7)),                                                   # -> (B, 2c, 7, 7)
        nn.ConvTranspose2d(2 * channels, channels, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # 14x14
        nn.ConvTranspose2d(channels, 1, 3, stride=2, padding=1, output_padding=1),               # -> (B, 1, 28, 28)
        nn.Sigmoid(),
    )


class ConvAutoencoder(Autoencoder):
    """A convolutional autoencoder: two stride-2 convolutions down to 7x7, two transposed ones back up."""

    def __init__(self, latent_dim: int = 20, channels: int = 32):
        nn.Module.__init__(self)
        self.latent_dim, self.channels = latent_dim, channels
        self.encoder = nn.Sequential(_conv_encoder(channels), nn.Linear(2 * channels * 49, latent_dim))
        self.decoder = _conv_decoder(latent_dim, channels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 28, 28) -> codes z (B, latent_dim)."""
        return self.encoder(_image(_flat(self, x)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes z (B, latent_dim) -> images x_hat (B, 1, 28, 28) in [0, 1]."""
        return self.decoder(z)


class ConvVAE(GaussianVAE):
    """A convolutional VAE: the ConvAutoencoder's layers with mu and logvar heads."""

    def __init__(self, latent_dim: int = 20, channels: int = 32):
        super().__init__()
        self.latent_dim, self.channels = latent_dim, channels
        self.encoder = _conv_encoder(channels)
        self.fc_mu = nn.Linear(2 * channels * 49, latent_dim)
        self.fc_logvar = nn.Linear(2 * channels * 49, latent_dim)
        self.decoder = _conv_decoder(latent_dim, channels)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 1, 28, 28) -> mu, logvar, each (B, latent_dim)."""
        h = self.encoder(_image(_flat(self, x)))  # (B, 784) -> (B, 1, 28, 28) -> (B, 2c * 49)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes z (B, latent_dim) -> images x_hat (B, 1, 28, 28) in [0, 1]."""
        return self.decoder(z)


class DigitClassifier(nn.Module):
    """A small convolutional MNIST classifier, the course's measuring instrument for generated digits (not a model
    the course teaches): two 3x3 convolutions with max pooling, a hidden layer of feature_dim features, 10 logits."""

    def __init__(self, channels: int = 16, feature_dim: int = 128):
        super().__init__()
        self.channels, self.feature_dim = channels, feature_dim
        self.body = nn.Sequential(  # (B, 1, 28, 28) -> (B, feature_dim)
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),                 # -> (B, c, 14, 14)
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),      # -> (B, 2c, 7, 7)
            nn.Flatten(), nn.Linear(2 * channels * 49, feature_dim), nn.ReLU(),               # -> (B, feature_dim)
        )
        self.head = nn.Linear(feature_dim, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 28, 28) -> the hidden layer's features (B, feature_dim), what Frechet distances compare."""
        return self.body(_image(_flat(self, x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 28, 28) -> logits (B, 10), one score per digit (softmax gives probabilities)."""
        return self.head(self.features(x))


class VQVAEOutput(NamedTuple):
    """What a VQVAE's forward pass returns: x_hat, z_e, z_q, indices = model(x)."""
    x_hat: torch.Tensor    # (B, 1, 28, 28) reconstruction, pixel probabilities in [0, 1]
    z_e: torch.Tensor      # (B, num_slots, code_dim) the encoder's output, before quantization
    z_q: torch.Tensor      # (B, num_slots, code_dim) the nearest codes (straight-through gradient to z_e)
    indices: torch.Tensor  # (B, num_slots) int64, which code each slot took


class VQVAE(nn.Module):
    """A vector-quantized autoencoder (van den Oord et al. 2017) with the VAE's layers: 784 -> hidden_dim -> num_slots
    vectors of code_dim, each replaced by the nearest of num_codes codes, then code_dim * num_slots -> hidden_dim ->
    784. An image becomes num_slots whole numbers, each in 0..num_codes - 1."""

    def __init__(self, num_codes: int = 64, code_dim: int = 4, num_slots: int = 10, hidden_dim: int = 400):
        super().__init__()
        self.num_codes, self.code_dim, self.num_slots, self.hidden_dim = num_codes, code_dim, num_slots, hidden_dim
        self.fc1 = nn.Linear(IMAGE_SIZE, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, num_slots * code_dim)
        self.codebook = nn.Parameter(torch.empty(num_codes, code_dim).normal_())
        self.fc3 = nn.Linear(num_slots * code_dim, hidden_dim)
        self.fc4 = nn.Linear(hidden_dim, IMAGE_SIZE)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 28, 28) -> z_e (B, num_slots, code_dim), the continuous vectors before quantization."""
        h = F.relu(self.fc1(_flat(self, x)))  # (B, 784) -> (B, hidden_dim)
        z_e = self.fc2(h).view(-1, self.num_slots, self.code_dim)  # (B, num_slots * code_dim) -> (B, S, D)
        return F.normalize(z_e, dim=-1)  # unit length: see quantize

    def quantize(self, z_e: torch.Tensor) -> Quantized:
        """z_e (B, num_slots, code_dim) -> z_q of that shape (nearest codes, straight-through), indices (B, S)."""
        codebook = F.normalize(self.codebook, dim=1)  # (K, D) unit-length codes
        z_q, indices = quantize(z_e.reshape(-1, self.code_dim), codebook)  # (B * S, D) vectors, one by one
        return Quantized(z_q.view_as(z_e), indices.view(z_e.shape[:2]))  # back to (B, S, D) and (B, S)

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """Codes z_q (B, num_slots, code_dim) -> images x_hat (B, 1, 28, 28) in [0, 1]."""
        h = F.relu(self.fc3(z_q.flatten(1)))  # (B, S, D) -> (B, S * D) -> (B, hidden_dim)
        return _image(torch.sigmoid(self.fc4(h)))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (B, num_slots) -> images (B, 1, 28, 28): what a prior over the indices would be decoded by."""
        return self.decode(F.normalize(self.codebook, dim=1)[indices])  # (B, S) -> (B, S, D) -> images

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        """Images x (B, 1, 28, 28) -> x_hat, z_e, z_q, indices: encode, quantize, decode."""
        z_e = self.encode(x)
        z_q, indices = self.quantize(z_e)
        return VQVAEOutput(self.decode(z_q), z_e, z_q, indices)
