"""docker-compose.yml, read as Compose reads it (docker itself cannot run here).

Exports on a volume shared by web and worker, every setting reaching the app containers, real
health checks (the web and beat ones are run here against the live server and a heartbeat
file), and no port published but the web one, on 127.0.0.1 unless asked.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.api.live import LIVE_DB

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("migrate", "web", "worker", "beat")
# SPEC §2 and §3 "security": production does not start without them (config/settings.py).
REQUIRED = (
    "SECRET_KEY",
    "SUPPRESSION_HMAC_KEY",
    "LEDGER_SEAL_KEY",
    "FIELD_ENCRYPTION_KEY",
    "SITE_URL",
    "EMAIL_URL",
    "CONTROLLER_NAME",
    "CONTROLLER_ADDRESS",
    "DPO_CONTACT",
    "PRIVACY_NOTICE_URL",
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.mark.parametrize("name", APP_SERVICES, ids=lambda name: f"{name}-container")
def test_every_app_container_gets_the_whole_env_file(compose, name):
    env_files = services(compose)[name]["env_file"]

    assert {"path": ".env", "required": False} in env_files


@pytest.mark.parametrize("name", APP_SERVICES, ids=lambda name: f"{name}-container")
def test_the_settings_production_requires_are_demanded_by_compose_itself(compose, name):
    environment = services(compose)[name]["environment"]

    assert environment["DEBUG"] == "false"
    for setting in REQUIRED:
        assert re.fullmatch(rf"\$\{{{setting}:\?.+\}}", environment[setting]), setting
    assert "POSTGRES_PASSWORD:?" in environment["DATABASE_URL"]
    assert environment["REDIS_URL"].startswith("${REDIS_URL:-redis://redis:6379/")


def test_the_readme_s_env_example_sets_everything_compose_demands():
    readme = (ROOT / "README.md").read_text()
    example = readme.split("cat > .env <<'EOF'", 1)[1].split("EOF", 1)[0]
    names = {line.split("=", 1)[0] for line in example.split() if "=" in line}

    assert {*REQUIRED, "POSTGRES_PASSWORD", "ALLOWED_HOSTS"} <= names


def test_exports_live_on_one_volume_shared_by_web_and_worker(compose):
    for name in ("web", "worker"):
        service = services(compose)[name]
        private_root = service["environment"]["PRIVATE_ROOT"]
        assert f"private:{private_root}" in service["volumes"], name
    assert "private" in compose["volumes"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "var/private" in dockerfile  # created, and owned by the app user, in the image
    assert services(compose)["web"]["environment"]["PRIVATE_ROOT"] == "/app/var/private"


def test_only_the_web_port_is_published_and_on_localhost_unless_asked(compose):
    published = {name: s["ports"] for name, s in services(compose).items() if "ports" in s}

    assert published == {"web": ["${WEB_PORT:-127.0.0.1:8000}:8000"]}


def test_web_worker_and_beat_have_health_checks(compose):
    for name in ("web", "worker", "beat"):
        assert services(compose)[name]["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}, name
    worker = services(compose)["worker"]["healthcheck"]["test"]
    assert worker[0] == "CMD-SHELL"
    assert "celery -A config inspect ping -d celery@$$HOSTNAME" in worker[1]
    assert "/health/" in services(compose)["web"]["healthcheck"]["test"][-1]
    beat = services(compose)["beat"]
    assert beat["environment"]["BEAT_HEARTBEAT_FILE"] in beat["healthcheck"]["test"][-1]
    assert "--scheduler=core.beat:Scheduler" in beat["command"]


def run_check(code: str, **environment: str) -> int:
    return subprocess.run(  # noqa: S603 - our own compose file's command
        [sys.executable, "-c", code],
        env={"PATH": os.environ.get("PATH", ""), **environment},
        capture_output=True,
        timeout=30,
    ).returncode


@pytest.mark.slow
@LIVE_DB
def test_the_web_health_check_passes_against_a_healthy_server_only(
    compose, live_server, celery_worker
):
    code = services(compose)["web"]["healthcheck"]["test"][-1]
    code = code.replace("http://127.0.0.1:8000", live_server.url)

    assert run_check(code, ALLOWED_HOSTS="localhost") == 0
    assert run_check(code.replace("/health/", "/no-such-page/"), ALLOWED_HOSTS="localhost") != 0


def test_the_beat_health_check_reads_the_age_of_the_heartbeat(compose, tmp_path):
    code = services(compose)["beat"]["healthcheck"]["test"][-1]
    heartbeat = tmp_path / "beat-heartbeat"
    code = code.replace("/tmp/beat-heartbeat", str(heartbeat))  # noqa: S108

    assert run_check(code) != 0  # no heartbeat yet
    heartbeat.touch()
    assert run_check(code) == 0
    stale = time.time() - 10 * 60
    os.utime(heartbeat, (stale, stale))
    assert run_check(code) != 0
