"""The parse benchmark reads the whole real-world corpus and reports against its baseline."""

import asyncio

import pytest

from bench import parse
from bench.context import BenchContext


def test_the_parse_figure_covers_the_corpus_with_the_stdlib_baseline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BENCH_PARSE_ROUNDS", "1")
    messages = parse.corpus()
    figures = {figure.name: figure for figure in asyncio.run(parse.run(BenchContext.from_env()))}

    assert len(messages) >= 300
    figure = figures["parse_cpu_ms_per_msg"]
    assert figure.unit == "ms"
    assert figure.value > 0
    assert figure.baseline is not None
    assert figure.baseline > 0
    assert all(parse.ingest_reading(data) is not None for data in messages[:20])
