"""ISO 20022 messages: the interbank channel's XML (camt.053 statements out)."""
