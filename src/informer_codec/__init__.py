"""informer: a learned image codec for the command line."""

__version__ = "0.1.0"
