"""Idempotency keys in the store: one claim per principal and key, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from store import idempotency as store

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
TTL = timedelta(hours=24)
LOCK = timedelta(seconds=60)


def _claim(engine: Engine, *, now: datetime = T0, body: str = "b1", key: str = "k1") -> store.Claim:
    return store.claim(
        engine,
        principal="apikey:1",
        key=key,
        operation="POST /v1/invoices/F-1/disputes",
        fingerprint=body,
        now=now,
        ttl=TTL,
        lock=LOCK,
    )


def test_concurrent_claims_of_one_key_let_exactly_one_through(any_engine: Engine) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: _claim(any_engine), range(8)))

    assert sum(isinstance(r, store.Claimed) for r in results) == 1
    assert all(isinstance(r, store.Claimed | store.InProgress) for r in results)


def test_a_completed_claim_replays_and_another_body_is_a_mismatch(any_engine: Engine) -> None:
    claimed = _claim(any_engine)
    assert isinstance(claimed, store.Claimed)
    store.complete(any_engine, claimed, 201, '{"dispute_id":"D-1"}', {"location": "/x"})

    again = _claim(any_engine, now=T0 + timedelta(hours=1))
    other = _claim(any_engine, now=T0 + timedelta(hours=1), body="b2")

    assert again == store.Replay(201, '{"dispute_id":"D-1"}', {"location": "/x"})
    assert isinstance(other, store.Mismatch) and other.same_operation


def test_a_claim_whose_request_died_is_taken_over_after_the_lock(any_engine: Engine) -> None:
    first = _claim(any_engine)
    assert isinstance(first, store.Claimed)

    assert isinstance(_claim(any_engine, now=T0 + timedelta(seconds=30)), store.InProgress)
    taken = _claim(any_engine, now=T0 + timedelta(seconds=61))

    assert isinstance(taken, store.Claimed) and taken.token != first.token
    # The dead request's late answer is not recorded over the new claim's.
    store.complete(any_engine, first, 201, "late", {})
    store.complete(any_engine, taken, 201, "fresh", {})
    replay = _claim(any_engine, now=T0 + timedelta(minutes=5))
    assert isinstance(replay, store.Replay) and replay.body == "fresh"


def test_a_released_claim_runs_again_and_an_expired_key_is_forgotten(any_engine: Engine) -> None:
    first = _claim(any_engine)
    assert isinstance(first, store.Claimed)
    store.release(any_engine, first)
    second = _claim(any_engine)
    assert isinstance(second, store.Claimed)
    store.complete(any_engine, second, 200, "ok", {})

    later = _claim(any_engine, now=T0 + TTL + timedelta(seconds=1), body="another body")

    assert isinstance(later, store.Claimed)
    assert store.purge_expired(any_engine, T0 + 2 * TTL + timedelta(seconds=2)) == 1
