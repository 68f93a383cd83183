"""Outbound adapters to the bank's back-end systems (DESIGN.md: connectors/)."""
