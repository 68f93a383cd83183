"""The security center: one authentication and authorization for every channel."""
