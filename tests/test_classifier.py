"""The digit classifier's meters against brute-force counts and hand-computed entropies, its cache and checkpoint."""
import math
import warnings
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from conftest import SHARED_MNIST

from course_utils import classifier as clf
from course_utils.checkpoints import checkpoint_dir
from course_utils.models import DigitClassifier


class FixedDigits(DigitClassifier):
    """A stub whose prediction is written in the image: digit round(9 * first pixel), confidence set by scale."""

    def __init__(self, scale: float = 10.0):
        super().__init__(channels=1, feature_dim=1)
        self.scale = scale

    def forward(self, x):
        digit = (9 * x.flatten(1)[:, 0]).round().long()  # (B, 1, 28, 28) -> (B,)
        return self.scale * F.one_hot(digit, 10).float()  # (B, 10)


def images_reading(digits, seed=0):
    """Random images whose first pixel makes FixedDigits read the given digits."""
    x = torch.rand(len(digits), 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    x[:, 0, 0, 0] = torch.as_tensor(digits, dtype=torch.float32) / 9
    return x


@pytest.fixture(autouse=True)
def empty_cache():
    clf._loaded.clear()
    yield
    clf._loaded.clear()


def test_predict_digits_reads_the_stub():
    digits = [3, 3, 7, 0, 9, 1]
    prediction = clf.predict_digits(images_reading(digits), FixedDigits())
    assert prediction.dtype == torch.int64 and prediction.device.type == "cpu"
    assert prediction.tolist() == digits


def test_class_coverage_against_brute_force_and_hand_entropy():
    digits = [1] * 50 + [2] * 30 + [5] * 19 + [8] * 1  # 100 images, four digits; 8 is read in exactly 1 %
    coverage = clf.class_coverage(images_reading(digits), FixedDigits())
    counts = Counter(digits)
    assert coverage["counts"].dtype == torch.int64
    assert coverage["counts"].tolist() == [counts.get(k, 0) for k in range(10)]
    assert coverage["fractions"].tolist() == pytest.approx([counts.get(k, 0) / 100 for k in range(10)])
    by_hand = -sum(p * math.log2(p) for p in (0.5, 0.3, 0.19, 0.01))
    assert coverage["entropy_bits"] == pytest.approx(by_hand)
    assert coverage["classes_covered"] == 4


def test_class_coverage_extremes():
    even = clf.class_coverage(images_reading(list(range(10)) * 3), FixedDigits())
    assert even["entropy_bits"] == pytest.approx(math.log2(10)) and even["classes_covered"] == 10
    one = clf.class_coverage(images_reading([4] * 20), FixedDigits())
    assert one["entropy_bits"] == 0 and one["classes_covered"] == 1
    rare = clf.class_coverage(images_reading([4] * 200 + [6]), FixedDigits())  # 6 in under 1 % of the images
    assert rare["counts"][6] == 1 and rare["classes_covered"] == 1


def test_label_agreement_against_brute_force():
    digits = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9])
    y = torch.tensor([0, 1, 2, 0, 0, 5, 6, 1, 8, 9, 3, 9])
    by_hand = sum(int(d == t) for d, t in zip(digits.tolist(), y.tolist())) / len(y)
    assert clf.label_agreement(images_reading(digits), y, FixedDigits()) == pytest.approx(by_hand)


def test_confident_fraction_uses_the_softmax_maximum():
    x = images_reading([2] * 10)
    # softmax of (s, 0, ..., 0) gives the read digit e^s / (e^s + 9): above 0.9 for s = 5 (0.943), not for s = 4 (0.858)
    assert math.exp(5) / (math.exp(5) + 9) > 0.9 > math.exp(4) / (math.exp(4) + 9)
    assert clf.confident_fraction(x, 0.9, FixedDigits(scale=5.0)) == 1.0
    assert clf.confident_fraction(x, 0.9, FixedDigits(scale=4.0)) == 0.0


def test_predict_digits_batches_equal_one_batch():
    torch.manual_seed(0)
    model = DigitClassifier(channels=4, feature_dim=16)
    x = torch.rand(53, 1, 28, 28)
    one = clf.predict_probabilities(x, model, batch_size=1000)
    torch.testing.assert_close(clf.predict_probabilities(x, model, batch_size=7), one)
    assert torch.equal(clf.predict_digits(x, model, batch_size=7), one.argmax(dim=1))
    with torch.no_grad():
        torch.testing.assert_close(one, model.eval()(x).softmax(dim=1))


def test_predict_leaves_the_mode_and_needs_no_grad():
    model = DigitClassifier(channels=2, feature_dim=8).train()
    clf.predict_digits(torch.rand(3, 1, 28, 28), model)
    assert model.training  # restored
    model.eval()
    assert clf.predict_probabilities(torch.rand(3, 784), model).requires_grad is False


@pytest.mark.parametrize("bad, error, words", [
    (torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8), TypeError, "/ 255"),
    (torch.rand(4, 28), ValueError, "(B, 1, 28, 28)"),
    (2 * torch.rand(4, 1, 28, 28) + 0.5, ValueError, "[0, 1]"),
    (torch.full((2, 1, 28, 28), float("nan")), ValueError, "NaN"),
    ([[0.0] * 784], TypeError, "torch.Tensor"),
])
def test_bad_images_get_clear_errors(bad, error, words):
    with pytest.raises(error, match=None) as info:
        clf.predict_digits(bad, FixedDigits())
    assert words in str(info.value)


def test_other_bad_inputs():
    x = images_reading([1, 2, 3])
    with pytest.raises(ValueError, match="empty"):
        clf.class_coverage(torch.zeros(0, 1, 28, 28), FixedDigits())
    with pytest.raises(ValueError, match="int64 labels of shape"):
        clf.label_agreement(x, torch.tensor([1.0, 2.0, 3.0]), FixedDigits())
    with pytest.raises(ValueError, match="int64 labels of shape"):
        clf.label_agreement(x, torch.tensor([1, 2]), FixedDigits())
    with pytest.raises(ValueError, match="0..9"):
        clf.label_agreement(x, torch.tensor([1, 2, 10]), FixedDigits())
    with pytest.raises(ValueError, match="threshold"):
        clf.confident_fraction(x, 1.5, FixedDigits())
    with pytest.raises(ValueError, match="batch_size"):
        clf.predict_digits(x, FixedDigits(), batch_size=0)
    with pytest.raises(TypeError, match="DigitClassifier"):
        clf.predict_digits(x, "my classifier")


def tiny_mnist_loader(split):
    """300 training and 100 test images: random pixels, labels that the first pixel's brightness gives away."""
    n = 300 if split == "train" else 100
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    y = torch.randint(0, 10, (n,), generator=g)
    x = 0.3 * torch.rand(n, 1, 28, 28, generator=g)
    x[:, 0, :14, :14] += (y / 9 * 0.7).view(n, 1, 1)  # the label in the top-left quarter's brightness
    return x, y


def test_digit_classifier_trains_once_saves_caches_and_loads(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setattr(clf, "load_mnist", tiny_mnist_loader)
    model = clf.digit_classifier(device="cpu", progress=False)
    assert isinstance(model, DigitClassifier) and not model.training
    assert next(model.parameters()).device.type == "cpu"
    path = checkpoint_dir() / clf.CHECKPOINT
    assert path.exists() and "Loaded" not in capsys.readouterr().out
    assert clf.digit_classifier(device="cpu") is model  # the cache: no load, no training
    assert capsys.readouterr().out == ""

    clf._loaded.clear()
    again = clf.digit_classifier(device="cpu", progress=False)
    assert "Loaded the trained model" in capsys.readouterr().out  # from the checkpoint, not trained again
    assert again is not model
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    # the recorded accuracy is that of the saved model on the (first num_test) test images it was tested on
    x_test, y_test = tiny_mnist_loader("test")
    by_hand = (clf.predict_digits(x_test, again) == y_test).double().mean().item()
    assert clf.recorded_test_accuracy() == pytest.approx(by_hand)
    assert clf.test_accuracy(again) == pytest.approx(by_hand)  # the same 100 images through the other path
    assert clf.predict_digits(x_test).tolist() == clf.predict_digits(x_test, again).tolist()  # None: the cached one


def test_recorded_test_accuracy_without_a_checkpoint(tmp_path):
    assert clf.recorded_test_accuracy(tmp_path / "none.pt") is None


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="the original MNIST files are not beside the checkout")
def test_fast_mode_classifier_beats_chance_by_far_on_held_out_digits(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setenv("COURSE_DATA", str(SHARED_MNIST))
    model = clf.digit_classifier(device="cpu", progress=False)  # 5,000 training images, 2 epochs (a few seconds)
    x_test, y_test = clf.load_mnist("test")
    held_out = slice(clf.FAST["num_test"], None)  # test images fit_or_load did not even report on
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        accuracy = clf.label_agreement(x_test[held_out], y_test[held_out], model)
    assert accuracy > 0.9  # chance is 0.1


def test_digit_classifier_is_the_same_whatever_random_numbers_were_drawn_before(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setattr(clf, "load_mnist", tiny_mnist_loader)
    models = []
    for seed in (1, 2):
        monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path / str(seed)))  # trains each time
        torch.manual_seed(seed)
        models.append(clf.digit_classifier(device="cpu", progress=False))
    assert models[0] is not models[1]
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()):
        assert torch.equal(a, b)
