"""The settings are production-safe with only DEBUG=false, SECRET_KEY and ALLOWED_HOSTS set."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_SECRET_KEY = "k3Jx9-Vq2Lm8Rt5Wz1Np7Ys4Hd6Fb0Gc-Te3Ua9Oi2Pl5Mn8Bv1Cx4Zq7Wr0Ey6Ut"


def manage(*arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """Run manage.py in a fresh process whose environment holds only what is given.

    ENV_FILE=/dev/null keeps a developer's .env out of it.
    """
    minimal = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "ENV_FILE": "/dev/null",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env={**minimal, **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_check_is_clean_with_debug_off_a_secret_key_and_allowed_hosts():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        SECRET_KEY=PRODUCTION_SECRET_KEY,
        ALLOWED_HOSTS="example.fr",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    result = manage(
        "check", DJANGO_SETTINGS_MODULE="config.settings", DEBUG="false", ALLOWED_HOSTS="example.fr"
    )

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
