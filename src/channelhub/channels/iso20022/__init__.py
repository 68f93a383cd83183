"""ISO 20022 messages: the interbank channel's XML (pacs.008 in, pacs.002 and camt.053 out)."""
