"""HTTP webhooks: subscriptions, their deliveries, and the Standard Webhooks signature."""
