"""Governance of outbound calls: circuit breakers, retries and timeouts, and the registry of
named back ends built from settings (DESIGN.md: governance/)."""
