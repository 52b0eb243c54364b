"""`make bench`: every suite's figures in one table and in `.bench/latest.json`.

Each suite measures its pipeline figure beside a baseline taken in the same run, so the ratio
means the same on any machine. Run one suite with `python -m bench backfill`.
"""

import asyncio
import sys
from collections.abc import Awaitable, Callable

from bench import associate_scaling, backfill, live, parse, scale, send
from bench.context import REPO, BenchContext
from bench.report import Figure, table, write

Suite = Callable[[BenchContext], Awaitable[list[Figure]]]

SUITES: dict[str, Suite] = {
    "backfill": backfill.run,
    "send": send.run,
    "live": live.run,
    "scale": scale.run,
    "associate_scaling": associate_scaling.run,
    "parse": parse.run,
}


async def main(selected: list[str]) -> int:
    unknown = [name for name in selected if name not in SUITES]
    if unknown:
        print(f"unknown suite(s): {', '.join(unknown)}; choose from {', '.join(SUITES)}")
        return 2
    context = BenchContext.from_env()
    figures: list[Figure] = []
    for name in selected or list(SUITES):
        figures.extend(await SUITES[name](context))
    write(figures)
    print()
    print(table(figures))
    print(f"\nwritten to {REPO / '.bench/latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
