"""The offline deployment checkers that `deploy/infra.sh tools` builds or fetches into .infra/."""

import importlib.resources
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIGCHECK = REPO / ".infra" / "bin" / "configcheck"
KEDA_CRDS = REPO / ".infra" / "keda-crds"


def kubernetes_schemas() -> Path:
    """The Kubernetes JSON schemas the `kubernetes-validate` package ships (a dev dependency)."""
    return Path(str(importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"))


def configcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if not CONFIGCHECK.exists():
        pytest.fail(f"{CONFIGCHECK} is missing: `bash deploy/infra.sh tools` builds it")
    return subprocess.run(
        [str(CONFIGCHECK), *args], capture_output=True, text=True, check=False, env=env
    )


def keda_crds() -> Path:
    if not (KEDA_CRDS / "keda.sh_scaledobjects.yaml").exists():
        pytest.fail(f"{KEDA_CRDS} is missing: `bash deploy/infra.sh tools` fetches it")
    return KEDA_CRDS
