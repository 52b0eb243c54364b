"""Mailsync send: relays outbound mail from the user's own address, exactly once per request."""
