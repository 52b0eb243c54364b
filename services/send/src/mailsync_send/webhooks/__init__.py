"""HTTP webhooks: public events recorded per subscription, then delivered signed, in order."""
