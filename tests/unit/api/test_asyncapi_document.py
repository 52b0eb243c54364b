"""The committed AsyncAPI document (docs/asyncapi.json) is what the code generates."""

import json
from pathlib import Path

from mailsync_api.app import API_VERSION
from mailsync_api.routes.events import public_events_document
from mailsync_shared.topology import PUBLIC_EVENTS

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.json"
BROKER = "amqp://localhost:5672/"


def generated() -> str:
    return json.dumps(public_events_document(BROKER, API_VERSION), indent=2, sort_keys=True) + "\n"


def test_committed_asyncapi_document_matches_the_contracts() -> None:
    current = generated()
    committed = DOCUMENT.read_text() if DOCUMENT.exists() else ""
    if committed != current:
        DOCUMENT.write_text(current)
    assert committed == current, "docs/asyncapi.json was stale and has been rewritten; commit it"


def test_every_public_event_has_a_channel_and_a_payload_schema() -> None:
    document = json.loads(generated())
    for event_type in PUBLIC_EVENTS:
        assert event_type.event_type in document["channels"]
        assert event_type.__name__ in json.dumps(document["components"]["schemas"])
