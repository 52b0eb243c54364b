"""Local tooling: the service stack as processes, and the demo workspace."""
