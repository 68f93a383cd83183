"""The deterministic demo bank."""

from channelhub.demo.seed import seed

__all__ = ["seed"]
