"""The partner channel (open API): OAuth 2 client credentials and signed requests."""

from channelhub.channels.openapi.api import routes

__all__ = ["routes"]
