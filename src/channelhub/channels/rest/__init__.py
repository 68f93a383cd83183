"""The REST channel (mobile and web)."""

from channelhub.channels.rest.api import routes

__all__ = ["routes"]
