"""Limit management: one set of ceilings for every channel, and their atomic reservation."""
