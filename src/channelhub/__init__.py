"""channelhub: the one backend every channel of a bank talks to."""

__version__ = "0.1.0"

__all__ = ["__version__"]
