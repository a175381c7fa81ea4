"""Seeds, device choice, the fast-mode switch and the environment check."""
import pytest
import torch

from course_utils import setup


def test_seed_everything_repeats():
    setup.seed_everything(5)
    a = torch.rand(3)
    setup.seed_everything(5)
    assert torch.equal(a, torch.rand(3))


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("0", False), ("", False), ("off", False)])
def test_fast_mode(monkeypatch, value, expected):
    monkeypatch.setenv("COURSE_FAST", value)
    assert setup.fast_mode() is expected


def test_fast_mode_rejects_nonsense(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "maybe")
    with pytest.raises(ValueError, match="COURSE_FAST"):
        setup.fast_mode()


def test_get_device_prefers_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert setup.get_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert setup.get_device().type == "cpu"


def test_check_env_hints_at_missing_data(capsys):
    hints = setup.check_env()
    out = capsys.readouterr().out
    assert "torch" in out and "device" in out
    assert any("COURSE_DATA" in hint for hint in hints)


def test_course_utils_imports_without_torchvision():
    """A CPU-only torch may come without a matching torchvision (Binder's build): importing the package, its models,
    losses, training and plots must not need it; only drawing an image grid or downloading does."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torchvision'] = None\n"  # import torchvision now raises ImportError
            "import course_utils.plot, course_utils.train, course_utils.checkpoints, course_utils.explore\n"
            "import course_utils.classifier, course_utils.frechet, course_utils.likelihood, course_utils.exercises\n"
            "print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]
