"""The Frechet distance: the closed form against independent references, and the properties a quality meter needs."""
import numpy as np
import pytest
import scipy.linalg
import torch

from course_utils.data import load_mnist
from course_utils.frechet import (classifier_features, feature_statistics, frechet_distance,
                                  gaussian_frechet_distance)
from course_utils.models import DigitClassifier
from course_utils.train import fit


def _random_psd(d: int, g: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.01 * torch.eye(d, dtype=torch.float64)


@pytest.mark.parametrize("d", [1, 3, 16])
def test_closed_form_agrees_with_scipys_matrix_square_root(d):
    g = torch.Generator().manual_seed(d)
    mu_a, mu_b = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    cov_a, cov_b = _random_psd(d, g), _random_psd(d, g)
    cross = scipy.linalg.sqrtm(cov_a.numpy() @ cov_b.numpy())  # the textbook formula, with a general sqrtm
    expected = float(np.sum((mu_a - mu_b).numpy() ** 2) + np.trace(cov_a.numpy() + cov_b.numpy() - 2 * cross.real))
    assert gaussian_frechet_distance(mu_a, cov_a, mu_b, cov_b) == pytest.approx(expected, rel=1e-8, abs=1e-10)


def test_one_dimension_and_diagonal_covariances_have_simple_closed_forms():
    one = gaussian_frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]),
                                    torch.tensor([[9.0]]))
    assert one == pytest.approx((1 + 2) ** 2 + (2 - 3) ** 2)  # (m_a - m_b)^2 + (s_a - s_b)^2
    var_a, var_b = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    diagonal = gaussian_frechet_distance(torch.zeros(3), torch.diag(var_a), torch.zeros(3), torch.diag(var_b))
    assert diagonal == pytest.approx(((var_a.sqrt() - var_b.sqrt()) ** 2).sum().item())


def test_same_gaussian_gives_zero_and_the_distance_is_symmetric():
    g = torch.Generator().manual_seed(0)
    mu, cov = torch.randn(8, generator=g, dtype=torch.float64), _random_psd(8, g)
    mu_b, cov_b = torch.randn(8, generator=g, dtype=torch.float64), _random_psd(8, g)
    assert gaussian_frechet_distance(mu, cov, mu, cov) == pytest.approx(0, abs=1e-9)
    assert gaussian_frechet_distance(mu, cov, mu_b, cov_b) == pytest.approx(
        gaussian_frechet_distance(mu_b, cov_b, mu, cov), rel=1e-9)


def test_feature_statistics_are_the_sample_mean_and_unbiased_covariance():
    f = torch.randn(50, 4, generator=torch.Generator().manual_seed(1))
    mu, cov = feature_statistics(f)
    assert torch.allclose(mu, torch.from_numpy(f.double().numpy().mean(axis=0)))
    assert torch.allclose(cov, torch.from_numpy(np.cov(f.double().numpy(), rowvar=False)))


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="same dimension"):
        gaussian_frechet_distance(torch.zeros(2), torch.eye(2), torch.zeros(3), torch.eye(3))
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        classifier_features(torch.full((4, 1, 28, 28), 255.0), DigitClassifier())


@pytest.fixture(scope="module")
def small_meter():
    """A digit classifier trained for one epoch on 3,000 images (about 99% would need the full set: the tests need
    only features that tell digits apart), and 2,000 test images."""
    x, y = load_mnist("train")
    x_test, y_test = load_mnist("test")
    torch.manual_seed(0)
    classifier = DigitClassifier()
    fit(classifier, (x[:3000], y[:3000]), num_epochs=1, progress=False)
    return classifier, x_test[:2000], y_test[:2000]


def test_identical_sets_are_at_zero_and_the_meter_is_symmetric(small_meter):
    classifier, x, _ = small_meter
    assert frechet_distance(x, x.clone(), classifier) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(x[:1000], x[1000:] * 0.7, classifier) == pytest.approx(
        frechet_distance(x[1000:] * 0.7, x[:1000], classifier), rel=1e-6)


def test_the_distance_grows_with_the_strength_of_a_corruption(small_meter):
    classifier, x, _ = small_meter
    g = torch.Generator().manual_seed(2)
    noise = torch.randn(x.shape, generator=g)
    distances = [frechet_distance(x[:1000], (x[1000:] + s * noise[1000:]).clamp(0, 1), classifier)
                 for s in (0.0, 0.1, 0.2, 0.4, 0.8)]
    assert all(a < b for a, b in zip(distances, distances[1:])), distances


def test_two_halves_of_the_test_set_are_close_and_different_digits_far(small_meter):
    classifier, x, y = small_meter
    halves = frechet_distance(x[:1000], x[1000:], classifier)
    digits = frechet_distance(x[y < 5], x[y >= 5], classifier)
    blurred = frechet_distance(x[:1000], torch.nn.functional.avg_pool2d(x[1000:], 3, 1, 1), classifier)
    assert halves < 0.2 * digits and halves < 0.5 * blurred, (halves, digits, blurred)
