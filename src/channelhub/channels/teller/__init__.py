"""The teller desk channel: ``POST /teller/v1/services/{service_id}`` for a staff member
serving a customer who is present and identified, and the supervisor's approval routes."""

from channelhub.channels.teller.api import routes

__all__ = ["routes"]
