"""`parse`: the CPU a message's reading costs at ingest, against the standard library's full parse.

Over the real-world corpus (`tests/data/real_world`, 309 messages from public MIME-parser test
suites), `parse_cpu_ms_per_msg` is what ingest spends per message before publishing it: the
byte-level limiter (`limits.inspect_message`) and the one-pass header reader
(`headers.mail_message`). The baseline, in the same run, is `email` with `policy.default`
parsing the whole message and reading the same fields (subject, from, to, cc, date,
Message-ID) and its text body. Where `fast_mail_parser` is importable (`uv run --with
fast-mail-parser python -m bench parse`), `parse_cpu_ms_per_msg_fast_mail_parser` is measured
against the same baseline; docs/ingest.md records the comparison and why the header reader was
chosen. `BENCH_PARSE_ROUNDS` (5) sets how often the corpus is read.
"""

import contextlib
import importlib
import os
import time
from collections.abc import Callable
from email import policy
from email.parser import BytesParser
from typing import Any

from bench.context import REPO, BenchContext
from bench.report import Figure
from mailsync_ingest.headers import MessageContext, mail_message
from mailsync_ingest.limits import Limits, inspect_message

CORPUS = REPO / "tests" / "data" / "real_world"
_CONTEXT = MessageContext("bench", "bench@corpus.test")
_LIMITS = Limits()


def corpus() -> list[bytes]:
    return [
        path.read_bytes()
        for path in sorted(CORPUS.rglob("*"))
        if path.is_file()
        and path.suffix not in (".json", ".md")
        and not path.name.startswith(("LICENSE", "COPYING", "NOTICE"))
    ]


def ingest_reading(data: bytes) -> object:
    inspection = inspect_message(data, _LIMITS)
    return mail_message(
        inspection.header_block,
        context=_CONTEXT,
        raw_id="bench",
        size=len(data),
        body=inspection.data[len(inspection.header_block) :],
        defects=inspection.defects,
    )


def stdlib_full_parse(data: bytes) -> object:
    message: Any = BytesParser(policy=policy.default).parsebytes(data)
    fields = []
    for name in ("subject", "from", "to", "cc", "date", "message-id"):
        try:
            fields.append(message[name])
        except Exception:  # a header the policy cannot read counts as read
            fields.append(None)
    try:
        body = message.get_body(preferencelist=("plain", "html"))
        fields.append(body.get_content() if body is not None else None)
    except Exception:
        fields.append(None)
    return fields


def cpu_ms_per_message(
    read: Callable[[bytes], object], messages: list[bytes], rounds: int
) -> float:
    start = time.process_time()
    for _ in range(rounds):
        for data in messages:
            with contextlib.suppress(Exception):  # a parser's failure costs what it cost
                read(data)
    return (time.process_time() - start) * 1000 / (rounds * len(messages))


async def run(context: BenchContext) -> list[Figure]:
    messages = corpus()
    rounds = int(os.environ.get("BENCH_PARSE_ROUNDS", "5"))
    baseline = cpu_ms_per_message(stdlib_full_parse, messages, rounds)
    figures = [
        Figure(
            "parse_cpu_ms_per_msg",
            cpu_ms_per_message(ingest_reading, messages, rounds),
            "ms",
            baseline,
        ),
    ]
    try:
        fast = importlib.import_module("fast_mail_parser")
    except ImportError:
        return figures
    figures.append(
        Figure(
            "parse_cpu_ms_per_msg_fast_mail_parser",
            cpu_ms_per_message(fast.parse_email, messages, rounds),
            "ms",
            baseline,
        )
    )
    return figures
