"""course_utils: the shared code of the course 'Generating Images with Autoencoders'.

One concept per module: `data` (MNIST, read by `idx`), `models`, `losses`, `train`, `checkpoints`, `plot`,
`latent` (interpolation, active units), `metrics`, `estimators` (gradient estimators), `likelihood` (ELBO, IWAE),
`classifier` and `frechet` (the sample-quality meter), `explore` (widgets), `diffusion` (DDPM on a VAE's codes), `vq`
(vector quantization), `exercises` (self-checks), `validate` (input checks) and `setup` (seed, device, fast mode).
Importing it fixes how large tensors are allocated, so that freed memory goes back to the system (`memory`).
"""
from course_utils.memory import keep_large_allocations_on_mmap

__version__ = "0.1.0"
keep_large_allocations_on_mmap()
