"""How far apart are two sets of images? The Frechet distance between their features, the MNIST analogue of FID.

Heusel et al. (2017), "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium", score a
generator by fitting a Gaussian to the features of real images and one to those of generated images, in the last
hidden layer of a trained classifier, and measuring the Frechet (2-Wasserstein) distance between the two Gaussians::

    d^2 = ||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))

FID uses an Inception network on photographs; here the features are those of the course's digit classifier
(course_utils.classifier.digit_classifier), so the numbers are comparable only with each other, not with FID scores.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .memory import in_batches
from .validate import check_images


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean (D,) and covariance (D, D) of features (N, D), in float64: the Gaussian fitted to them."""
    if not isinstance(features, torch.Tensor) or features.ndim != 2 or len(features) < 2:
        raise ValueError(f"features must be a tensor (N, D) with N >= 2 rows; got "
                         f"{tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__}.")
    f = features.double()
    return f.mean(dim=0), torch.cov(f.T)  # (D,), (D, D) with the unbiased 1 / (N - 1)


def _sqrt_psd(c: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a positive semi-definite matrix, by its eigendecomposition."""
    eigenvalues, vectors = torch.linalg.eigh(c)
    return vectors @ torch.diag(eigenvalues.clamp(min=0).sqrt()) @ vectors.T


def gaussian_frechet_distance(mu_a: torch.Tensor, cov_a: torch.Tensor, mu_b: torch.Tensor,
                              cov_b: torch.Tensor) -> float:
    """The squared Frechet distance between N(mu_a, cov_a) and N(mu_b, cov_b), in closed form (a float, >= 0).

    tr (C_a C_b)^(1/2) is computed as tr (S C_b S)^(1/2) with S = C_a^(1/2): the same number (the two matrices are
    similar), but the second is symmetric, so its square root comes from a stable eigendecomposition.
    """
    mu_a, cov_a, mu_b, cov_b = (t.double() for t in (mu_a, cov_a, mu_b, cov_b))
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (len(mu_a), len(mu_a)):
        raise ValueError(f"the two Gaussians must have the same dimension D: means (D,) and covariances (D, D); got "
                         f"{tuple(mu_a.shape)}, {tuple(cov_a.shape)}, {tuple(mu_b.shape)}, {tuple(cov_b.shape)}.")
    s = _sqrt_psd(cov_a)
    cross = torch.linalg.eigvalsh(s @ cov_b @ s).clamp(min=0).sqrt().sum()  # tr (C_a C_b)^(1/2)
    d2 = (mu_a - mu_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * cross
    return max(d2.item(), 0.0)  # rounding can leave -1e-12 for identical Gaussians


@torch.no_grad()
def classifier_features(x: torch.Tensor, classifier: nn.Module, batch_size: int = 100) -> torch.Tensor:
    """The classifier's features of images x (N, 1, 28, 28) in [0, 1], (N, D) on the CPU, in eval mode and batches."""
    check_images(x, "the images")
    was_training, device = classifier.training, next(classifier.parameters()).device
    classifier.eval()
    try:
        return in_batches(lambda xb: classifier.features(xb.to(device)), x, batch_size)  # (N, D)
    finally:
        classifier.train(was_training)


def frechet_distance(x_a: torch.Tensor, x_b: torch.Tensor, classifier: Optional[nn.Module] = None,
                     batch_size: int = 100) -> float:
    """The squared Frechet distance (what FID reports) between two sets of images (N, 1, 28, 28), in the digit
    classifier's feature space.

    0 for two identical sets; it grows as one set drifts from the other. Both sets need at least 2 images, and many
    more for a stable number: the covariance of 128 features wants thousands (compare sets of equal size).
    classifier defaults to course_utils.classifier.digit_classifier(), loaded (or trained once) on first use.
    """
    if classifier is None:
        from .classifier import digit_classifier  # the trained instrument, loaded only when it is needed
        classifier = digit_classifier()
    stats_a = feature_statistics(classifier_features(x_a, classifier, batch_size))
    stats_b = feature_statistics(classifier_features(x_b, classifier, batch_size))
    return gaussian_frechet_distance(*stats_a, *stats_b)
