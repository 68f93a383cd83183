"""The mappings shipped with channelhub, for the simulated core (docs/connectors.md,
"Mappings"): ``core-balance.yaml`` and ``core-debit.yaml``.
"""
