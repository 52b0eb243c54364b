"""Access to users' mail servers, shared by ingest, send and the api.

One place decides how a user-given server is reached: the host guard (`hosts`) resolves the
name once, refuses non-public addresses unless the operator allows them, and connects to the
very address it checked; sessions (`imap`) run on the event loop; every failure is one of the
few kinds in `errors`, which the api's answers and the mailbox status both use.
"""
