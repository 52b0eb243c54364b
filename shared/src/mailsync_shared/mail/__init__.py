"""Small, pure helpers for mail headers and addresses."""
