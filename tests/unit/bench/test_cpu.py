"""The benchmark's CPU meter reads what a process really spent, and nothing before `start`."""

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench.cpu import CpuMeter

SPIN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


@contextmanager
def spinning(seconds: float) -> Iterator[int]:
    """A process that burns `seconds` of CPU, then waits to be let go; its pid."""
    worker = subprocess.Popen(
        [sys.executable, "-c", SPIN.format(seconds=seconds) + "input()"], stdin=subprocess.PIPE
    )
    try:
        yield worker.pid
    finally:
        worker.communicate(b"\n", timeout=10)


def test_the_cpu_a_service_spends_while_measured_is_counted() -> None:
    with spinning(0.4) as pid:
        meter = CpuMeter({"worker": pid})
        meter.start()
        time.sleep(1.0)
        used = meter.stop()

    assert 0.25 <= used.by_part["worker"] <= 1.0
    assert used.wall_seconds >= 1.0
    assert used.ms_per(100)["worker"] == 1000 * used.by_part["worker"] / 100


def test_cpu_spent_before_start_is_left_out() -> None:
    with spinning(0.4) as pid:
        time.sleep(1.0)
        meter = CpuMeter({"worker": pid})
        meter.start()
        time.sleep(0.2)
        used = meter.stop()

    assert used.by_part["worker"] < 0.1
