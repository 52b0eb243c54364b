"""Fixtures every test in this folder uses."""

import pytest
from faststream.rabbit import RabbitBroker


@pytest.fixture(autouse=True)
def declared_topology(broker: RabbitBroker) -> None:
    """The session's vhost holds the project's exchanges and queues before any test runs."""
