"""What the benchmarks' harness reports beside each run: the CPU its work cost in this process
and in the PostgreSQL backend serving the connection (bench/README.md, "the measures")."""

import pytest
from django.db import connection

from bench.harness import database_cpu, measure

pytestmark = pytest.mark.django_db


def _busy_in_database() -> None:
    """About a second of CPU in the backend, almost none here."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM generate_series(1, 20000000)")
        cursor.fetchone()


def _busy_in_python() -> None:
    sum(n * n for n in range(3_000_000))


@pytest.mark.postgres
def test_database_cpu_is_the_backend_of_this_connection_and_grows_with_its_work() -> None:
    before = database_cpu()
    _busy_in_database()
    after = database_cpu()

    assert before is not None and after is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert before[0] == after[0] == cursor.fetchone()[0]
    assert after[1] - before[1] > 0.2


@pytest.mark.postgres
def test_measure_puts_each_cpu_on_its_side() -> None:
    in_database = measure(_busy_in_database, units=1)
    in_python = measure(_busy_in_python, units=1)

    assert in_database.database_cpu_s is not None and in_python.database_cpu_s is not None
    assert in_database.database_cpu_s > 0.2 > in_database.python_cpu_s
    assert in_python.python_cpu_s > 0.05 > in_python.database_cpu_s
    _python_us, database_us = in_database.cpu_us_per_unit()
    assert database_us == pytest.approx(1e6 * in_database.database_cpu_s)


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the embedded default's case")
def test_database_cpu_is_unknown_on_another_database() -> None:
    assert database_cpu() is None
    assert measure(_busy_in_python, units=1).database_cpu_s is None
