"""Local development mail helpers for Mailsync (never used in production).

- :mod:`mailsync_devmail.smtp_server`: SMTP submission server (AUTH required) that delivers
  every accepted message into Dovecot over LMTP.
- :mod:`mailsync_devmail.accounts`: manage the Dovecot passwd-file shared by both.
"""
