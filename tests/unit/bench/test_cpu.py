"""The benchmark's CPU meter reads what a process really spent, and nothing before `start`."""

import subprocess
import sys
import time

from bench.cpu import CpuMeter

SPIN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


def spinning(seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", SPIN.format(seconds=seconds) + "input()"], stdin=subprocess.PIPE
    )


def test_the_cpu_a_service_spends_while_measured_is_counted() -> None:
    worker = spinning(0.4)
    try:
        meter = CpuMeter({"worker": worker.pid})
        meter.start()
        time.sleep(1.0)
        used = meter.stop()
    finally:
        worker.communicate(b"\n", timeout=10)

    assert 0.25 <= used.by_part["worker"] <= 1.0
    assert used.wall_seconds >= 1.0
    assert used.ms_per(100)["worker"] == 1000 * used.by_part["worker"] / 100


def test_cpu_spent_before_start_is_left_out() -> None:
    worker = spinning(0.4)
    try:
        time.sleep(1.0)
        meter = CpuMeter({"worker": worker.pid})
        meter.start()
        time.sleep(0.2)
        used = meter.stop()
    finally:
        worker.communicate(b"\n", timeout=10)

    assert used.by_part["worker"] < 0.1
