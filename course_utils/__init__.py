"""course_utils: the shared code of the course 'Generating Images with Autoencoders'.

One concept per module: `data` (MNIST, read by `idx`), `models`, `losses`, `train`, `checkpoints`, `plot`,
`latent` (interpolation, active units), `metrics`, `estimators` (gradient estimators), `likelihood` (ELBO, IWAE),
`exercises` (self-checks), `validate` (input checks) and `setup` (seed, device, fast mode).
"""
__version__ = "0.1.0"
