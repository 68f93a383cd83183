"""The customer-account-user center: customers, users, staff, products, accounts and cards."""
