import json
import logging
from collections.abc import Iterator

import pytest
from faststream.rabbit import RabbitBroker

from mailsync_shared.structured_logging import ACCESS_LOGGER, FASTSTREAM_LOGGERS, configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in FASTSTREAM_LOGGERS)]
    saved = [(logger, logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    yield
    for logger, handlers, level, propagate in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def test_service_and_framework_logs_are_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("capture", "INFO")
    RabbitBroker("amqp://guest:guest@127.0.0.1:5672/")
    logging.getLogger("mailsync_capture.handlers").info("captured", extra={"workspace_id": "w1"})
    logging.getLogger("faststream").info("app starting")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["message"] for line in lines] == ["captured", "app starting"]
    assert lines[0]["workspace_id"] == "w1"
    assert {line["service"] for line in lines} == {"capture"}


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("DEBUG", True)])
def test_per_delivery_access_lines_only_at_debug(
    capsys: pytest.CaptureFixture[str], level: str, shown: bool
) -> None:
    configure_logging("associate", level)
    logging.getLogger(ACCESS_LOGGER).info("Processed")
    logging.getLogger("mailsync_associate.handlers").warning("kept")
    messages = [json.loads(line)["message"] for line in capsys.readouterr().out.splitlines()]
    assert messages == (["Processed", "kept"] if shown else ["kept"])


def test_records_below_the_level_are_dropped_by_the_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("send", "WARNING")
    logging.getLogger("faststream").info("app starting")
    logging.getLogger("mailsync_send.sender").error("failed")
    messages = [json.loads(line)["message"] for line in capsys.readouterr().out.splitlines()]
    assert messages == ["failed"]
