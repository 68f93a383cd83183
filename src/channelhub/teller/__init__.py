"""The branch teller desk's business: identifying the customer present, the teller's
authority and a supervisor's approval over it (four-eyes), cash taken in and paid out
against the branch's cash account, onboarding, closing accounts, and the day's cash position.

The wire (``POST /teller/v1/services/{service_id}``) is the teller channel's; this package
holds what the desk means, as any domain package: rules, repository, service and steps.
"""

__all__: list[str] = []
