"""ISO 20022 messages, pure: bytes in, checked values out, and back.

Shared by the interbank channel (pacs.008 in, pacs.002 out), the ``iso20022`` connector
(pacs.008 and pacs.028 out, pacs.002 in) and the simulated clearing house.
"""
