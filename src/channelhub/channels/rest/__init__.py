"""The REST channel (mobile and web)."""

from channelhub.channels.rest.api import routes
from channelhub.channels.rest.auth import auth_routes

__all__ = ["auth_routes", "routes"]
