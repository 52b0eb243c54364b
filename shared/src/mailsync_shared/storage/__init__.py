"""Storage over PyMongo's async API; every workspace query goes through `WorkspaceStore`."""
