"""course_utils: the shared code of the course 'Generating Images with Autoencoders'.

One concept per module: `data` (MNIST), `models`, `losses`, `train`, `plot`, `setup`.
"""
__version__ = "0.1.0"
