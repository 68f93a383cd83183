"""The built-in core ledger: double-entry postings, balances and holds."""
