"""Structured logging: one JSON object per line on stdout.

Log records carry ids (workspace, mailbox, message) as `extra` fields, never secrets or bodies.
"""

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

# FastStream gives these loggers a coloured stdout handler unless one is already there.
ACCESS_LOGGER = "faststream.access.rabbit"
FASTSTREAM_LOGGERS = ("faststream", ACCESS_LOGGER)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    handler.setLevel(level.upper())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in FASTSTREAM_LOGGERS:
        framework = logging.getLogger(name)
        framework.handlers[:] = [handler]
        framework.propagate = False
    # FastStream's "Received"/"Processed" line per delivery repeats what the services' own
    # log lines say (with the workspace, mailbox and message ids); kept for DEBUG only.
    access = logging.getLogger(ACCESS_LOGGER)
    access.setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)
    for noisy in ("aiormq", "aio_pika", "pymongo", "imapclient", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
