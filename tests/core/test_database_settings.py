"""The database connection as the product configures it."""

import pytest
from django.db import connection


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_never_compiles_statements_just_in_time() -> None:
    """JIT compilation of one high-cost statement (a batch's lock statement at a million
    contacts) took longer than running it: the product's connections turn it off."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone() == ("off",)
