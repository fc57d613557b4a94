"""The CRM push benchmark (bench/crm_sync.py) compares like with like: its bare `requests`
loop sends the HubSpot emulator (in its own process) the same upsert bodies, 100 inputs a
call, as `connection_push`, and both wait out the emulator's 429s to the last contact."""

from collections.abc import Iterator

import pytest

from bench.crm_sync import Emulator, baseline_push, product_push, push_fixture

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

EVENTS = 250


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    running = Emulator()
    try:
        yield running
    finally:
        running.stop()


def test_the_baseline_sends_the_same_bodies_as_the_product_in_full_batches(
    emulator: Emulator,
) -> None:
    connection_id = push_fixture(EVENTS, emulator.url)

    emulator.reset(ratio=0.0, retry_after="1")
    product = product_push(connection_id)
    by_product = emulator.stats()
    emulator.reset(ratio=0.0, retry_after="1")
    baseline = baseline_push(emulator.url)
    by_baseline = emulator.stats()

    assert product["delivered"] == baseline["delivered"] == EVENTS
    assert by_product["contacts"] == by_baseline["contacts"] == EVENTS
    assert by_product["inputs_per_call"] == by_baseline["inputs_per_call"] == {"50": 1, "100": 2}
    assert by_product["upsert_bytes"] == by_baseline["upsert_bytes"] > EVENTS * 100


def test_both_sides_wait_out_the_emulator_s_429s_and_deliver_everything(
    emulator: Emulator,
) -> None:
    connection_id = push_fixture(EVENTS, emulator.url)

    emulator.reset(ratio=0.5, retry_after="0.05")
    product = product_push(connection_id)
    by_product = emulator.stats()
    emulator.reset(ratio=0.5, retry_after="0.05")
    baseline = baseline_push(emulator.url)
    by_baseline = emulator.stats()

    # the same seed: the same calls refused on both sides
    assert by_product["statuses"] == by_baseline["statuses"]
    assert int(by_product["statuses"]["429"]) == product["failures"] == baseline["throttled"] > 0
    assert product["delivered"] == baseline["delivered"] == EVENTS
    assert by_product["contacts"] == by_baseline["contacts"] == EVENTS
