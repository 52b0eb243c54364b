"""Every message on the broker, one module per family.

Each message is a CloudEvents envelope (`Event`) whose `type` carries the version
(`mailsync.email.logged.v1`); a breaking change is a new type.
"""
