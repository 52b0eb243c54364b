"""The web console: server-rendered pages over the api's own data layer, at `/console`."""
