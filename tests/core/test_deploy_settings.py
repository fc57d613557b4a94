"""Production settings refuse to start without their secrets; the embedded default just works."""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_SECRET_KEY = "k3Jx9-Vq2Lm8Rt5Wz1Np7Ys4Hd6Fb0Gc-Te3Ua9Oi2Pl5Mn8Bv1Cx4Zq7Wr0Ey6Ut"
PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DEBUG": "false",
    "SECRET_KEY": PRODUCTION_SECRET_KEY,
    "ALLOWED_HOSTS": "example.fr",
    "SITE_URL": "https://consent.example.fr",
    "EMAIL_URL": "smtp+tls://user:password@smtp.example.fr:587",
    "SUPPRESSION_HMAC_KEY": "Rw8-Pq3Lz7Xn1Vb5Tc9Hy2Md6Kf0Gs4Ja8Ue3Oi7Wl1Ep5Nr9Qt2Bx6Cz0Ym4Dh8",
    "LEDGER_SEAL_KEY": "Lg5-Tz8Qa2Wn6Ek0Ry4Hp9Uc3Vm7Sd1Fb5Jx9Oi3Nl7Ct2Bq6Gw0Ze4Ks8Ma2Pv6",
    "FIELD_ENCRYPTION_KEY": "q1VvU8y3Zt2rXo5nW9kL0hP4gJ7mB6cD-eF_aS1dQ2w=",
    "CONTROLLER_NAME": "Vélos Martin SAS",
    "CONTROLLER_ADDRESS": "12 rue des Cyclistes, 69002 Lyon",
    "DPO_CONTACT": "dpo@velos-martin.example",
    "PRIVACY_NOTICE_URL": "https://www.velos-martin.example/confidentialite",
}


def manage(
    *arguments: str, cwd: Path = ROOT, **environment: str
) -> subprocess.CompletedProcess[str]:
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
        cwd=cwd,
        env={**minimal, **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_check_is_clean_with_the_full_production_environment():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("missing", "advice"),
    [
        ("SECRET_KEY", "secrets.token_urlsafe"),
        ("SUPPRESSION_HMAC_KEY", "secrets.token_urlsafe"),
        ("LEDGER_SEAL_KEY", "secrets.token_urlsafe"),
        ("FIELD_ENCRYPTION_KEY", "base64.urlsafe_b64encode(os.urandom(32))"),
        ("SITE_URL", "https://"),
        ("EMAIL_URL", "smtp+tls://"),
        ("CONTROLLER_NAME", "GDPR Art. 13"),
        ("CONTROLLER_ADDRESS", "GDPR Art. 13"),
        ("DPO_CONTACT", "GDPR Art. 13(1)(b)"),
        ("PRIVACY_NOTICE_URL", "GDPR Art. 13"),
    ],
)
def test_production_refuses_to_start_without_each_required_setting(missing, advice):
    environment = {name: value for name, value in PRODUCTION.items() if name != missing}

    result = manage("check", **environment)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr
    assert advice in result.stderr


@pytest.mark.parametrize("url", ["consolemail://", "memorymail://", "dummymail://"])
def test_production_refuses_an_email_url_that_loses_mail(url):
    result = manage("check", **{**PRODUCTION, "EMAIL_URL": url})

    assert result.returncode != 0
    assert "EMAIL_URL" in result.stderr


@pytest.mark.parametrize("key", ["not-a-fernet-key", "c2hvcnQ=", "x" * 44])
def test_a_malformed_field_encryption_key_is_refused(key):
    result = manage("check", **{**PRODUCTION, "FIELD_ENCRYPTION_KEY": key})

    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEY is not a Fernet key" in result.stderr


def test_the_suppression_key_is_its_own_setting_not_the_secret_key():
    script = "from django.conf import settings; print(settings.SUPPRESSION_HMAC_KEY)"

    result = manage("shell", "-c", script, **PRODUCTION)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == PRODUCTION["SUPPRESSION_HMAC_KEY"]


def test_production_requires_two_factor_authentication_of_staff():
    script = "from django.conf import settings; print(settings.STAFF_OTP_REQUIRED)"

    result = manage("shell", "-c", script, **PRODUCTION)

    assert result.stdout.strip().splitlines()[-1] == "True"


def test_debug_on_keeps_the_dev_defaults():
    script = (
        "from django.conf import settings; "
        "print(settings.SITE_URL, bool(settings.LEDGER_SEAL_KEY), settings.EMAIL_BACKEND, "
        "settings.STAFF_OTP_REQUIRED)"
    )

    result = manage("shell", "-c", script, DJANGO_SETTINGS_MODULE="config.settings", DEBUG="true")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == [
        "http://127.0.0.1:8000",
        "True",
        "django.core.mail.backends.console.EmailBackend",
        "False",
    ]


def test_debug_defaults_to_off_as_soon_as_a_database_or_broker_is_named():
    for named in ({"DATABASE_URL": "postgres://u:p@db:5432/x"}, {"REDIS_URL": "redis://r:6379/0"}):
        result = manage("check", DJANGO_SETTINGS_MODULE="config.settings", **named)

        assert result.returncode != 0
        assert "SECRET_KEY is required when DEBUG=false" in result.stderr


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Path:
    """The project as `git clone` leaves it: no var/ folder, no .env, no virtualenv."""
    clone = tmp_path / "consentdesk"
    shutil.copytree(
        ROOT,
        clone,
        ignore=shutil.ignore_patterns(".git", ".venv", "var", ".env", "__pycache__", "*.pyc"),
    )
    return clone


@pytest.mark.slow
def test_the_readme_commands_work_as_printed_on_a_fresh_clone(fresh_clone: Path):
    """migrate, seed_demo, preference_link and create_api_client without bin/run or any setting."""
    nothing_set = {"DJANGO_SETTINGS_MODULE": "config.settings"}

    migrate = manage("migrate", "--noinput", cwd=fresh_clone, **nothing_set)
    assert migrate.returncode == 0, migrate.stderr
    assert (fresh_clone / "var" / "db.sqlite3").is_file()

    seed = manage("seed_demo", cwd=fresh_clone, **nothing_set)
    assert seed.returncode == 0, seed.stderr

    link = manage("preference_link", "camille.martin@example.fr", cwd=fresh_clone, **nothing_set)
    assert link.returncode == 0, link.stderr
    assert link.stdout.strip().splitlines()[-1].startswith("http://127.0.0.1:8000/p/")

    client = manage(
        "create_api_client",
        "my-form",
        "--scopes",
        "contacts:read",
        "contacts:write",
        "consents:write",
        cwd=fresh_clone,
        **nothing_set,
    )
    assert client.returncode == 0, client.stderr
    assert len(client.stdout.strip().splitlines()[-1]) >= 32


@pytest.mark.worker
def test_rate_limits_are_counted_once_for_every_process_on_redis():
    # given two processes of a deployment on Redis (web workers behind gunicorn, say); an hour's
    # window, so that two slow process starts never straddle the window's edge
    group = f"shared-{uuid.uuid4().hex}"
    script = (
        "from django.test import RequestFactory; "
        "from django_ratelimit.core import is_ratelimited; "
        "request = RequestFactory().post('/u/x/', REMOTE_ADDR='203.0.113.77'); "
        f"print(is_ratelimited(request, group='{group}', key='ip', rate='1/h', "
        "method=is_ratelimited.ALL, increment=True))"
    )
    environment = {**PRODUCTION, "REDIS_URL": os.environ["REDIS_URL"]}

    # when each sees one request from the same client
    first, second = (manage("shell", "-c", script, **environment) for _ in range(2))

    # then the second process knows of the first one's request
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    outcomes = [result.stdout.strip().splitlines()[-1] for result in (first, second)]
    assert outcomes == ["False", "True"]


def test_each_process_keeps_its_database_connection_between_requests():
    script = (
        "from django.conf import settings; "
        "database = settings.DATABASES['default']; "
        "print(database['CONN_MAX_AGE'], database['CONN_HEALTH_CHECKS'])"
    )

    kept = manage("shell", "-c", script, **PRODUCTION)
    chosen = manage("shell", "-c", script, **PRODUCTION, DATABASE_CONN_MAX_AGE="0")
    refused = manage("check", **PRODUCTION, DATABASE_CONN_MAX_AGE="-1")

    assert kept.stdout.splitlines()[-1] == "60 True", kept.stderr
    assert chosen.stdout.splitlines()[-1] == "0 True", chosen.stderr
    assert refused.returncode != 0
    assert "DATABASE_CONN_MAX_AGE cannot be negative" in refused.stderr


def test_the_former_controller_contact_still_names_the_dpo():
    # CONTROLLER_CONTACT was the DPO's address before DPO_CONTACT: a deployment that set only
    # it keeps working
    environment = {name: value for name, value in PRODUCTION.items() if name != "DPO_CONTACT"}
    script = "from django.conf import settings; print(settings.DPO_CONTACT)"

    result = manage(
        "shell", "-c", script, CONTROLLER_CONTACT="privacy@velos.example", **environment
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "privacy@velos.example"


@pytest.mark.parametrize(
    "recipients",
    [
        '[{"name": "Mailgun"}]',
        '{"name": "x"}',
        '[{"name": "Mailgun", "role": "email", "country": "US", "outside_eu": true}]',
    ],
)
def test_a_data_recipient_without_its_country_or_safeguard_is_refused(recipients):
    result = manage("check", **{**PRODUCTION, "DATA_RECIPIENTS": recipients})

    assert result.returncode != 0
    assert "DATA_RECIPIENTS" in result.stderr
