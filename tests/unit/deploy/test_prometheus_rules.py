"""The shipped Prometheus rules are valid and their alerts fire when, and only when, they should.

`promtool` comes with Debian's `prometheus` package, which `deploy/infra.sh` installs.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
RULES = REPO / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: `bash deploy/infra.sh start` installs it")
    return subprocess.run([binary, *args], cwd=RULES, capture_output=True, text=True, check=False)


def test_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_runbook_explains_every_alert_and_only_those() -> None:
    groups = yaml.safe_load((RULES / "rules.yml").read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}
    runbook = (REPO / "docs" / "operations.md").read_text()
    explained = set(re.findall(r"^\| `(Mailsync\w+)` \|", runbook, flags=re.MULTILINE))
    assert explained == alerts
