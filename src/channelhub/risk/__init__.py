"""Real-time risk control: rules in CEL over the transaction, the customer and velocity
features; deny and watch lists; recorded decisions and a review queue."""
