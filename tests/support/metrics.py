"""Reading a service's /metrics page (Prometheus' text format) in tests."""

import json

import httpx


def sample(scrape: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 when absent)."""
    for line in scrape.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(
            item.split("=", 1) for item in line[len(name) + 1 : line.index("}")].split(",")
        )
        if all(found.get(key) == json.dumps(value) for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def scrape(base_url: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await client.get("/metrics")
    response.raise_for_status()
    return response.text
