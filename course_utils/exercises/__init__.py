"""Self-checks for the exercises: check_kl(my_kl) prints a verdict, "PASS: ..." or "NOT YET: ...", and returns None.

Each check runs the learner's function on several cases, one of them drawn fresh on every call (so an answer
hard-coded to the fixed cases fails), and compares it with an independent reference: torch.distributions, autograd,
brute force. A check never raises: a crash, None, a wrong type, device, dtype or shape, an input changed in place, a
result that cannot train (where the answer must be differentiable) is a NOT YET that says so. The first NOT YET says
what is wrong; a second NOT YET in a row from the same check adds a hint on how to fix it; a PASS starts over.

For tests: passes(check_kl, my_kl) runs a check silently and returns whether it passed; last_verdict holds the
verdict the last check printed (a Verdict: passed, message).

The checks live in small modules by topic (kl, training, gradients, latent_space, likelihood); the machinery they
share is in _verdict. Import them from here: from course_utils.exercises import check_kl.
"""
from __future__ import annotations

from course_utils.exercises import _verdict
from course_utils.exercises._verdict import Case, Spec, Verdict, passes
from course_utils.exercises._verdict import _failures, _fresh_generator  # noqa: F401 (tests read and replace them here)
from course_utils.exercises.generators import check_q_sample, check_quantize
from course_utils.exercises.gradients import check_gaussian_posterior, check_reparameterize, check_score_function
from course_utils.exercises.kl import check_free_bits, check_kl, check_kl_gaussians, check_vae_loss
from course_utils.exercises.latent_space import check_active_units, check_slerp
from course_utils.exercises.likelihood import check_log_weights, check_logmeanexp
from course_utils.exercises.training import check_psnr, check_reconstruction_loss, check_threshold, check_training_step

__all__ = ["Verdict", "Spec", "Case", "passes",
           "check_kl", "check_kl_gaussians", "check_vae_loss", "check_free_bits",
           "check_reconstruction_loss", "check_training_step", "check_psnr", "check_threshold",
           "check_reparameterize", "check_score_function", "check_gaussian_posterior",
           "check_slerp", "check_active_units",
           "check_logmeanexp", "check_log_weights",
           "check_q_sample", "check_quantize"]


def __getattr__(name: str) -> object:
    """exercises.last_verdict: the verdict of the last check that ran, read when asked (it changes on every check)."""
    if name == "last_verdict":
        return _verdict.last_verdict
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
