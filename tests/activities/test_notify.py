"""Back-office webhooks as a receiver meets them: a real HTTP server on loopback checks the
signature the way an integrator would, and answers with the statuses that decide retries."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.notify import (
    WEBHOOK_REJECTED,
    WEBHOOK_UNAVAILABLE,
    BackofficeEvent,
    BackofficeEventKind,
    NotifyActivities,
    backoffice_event_id,
)
from config import Settings
from domain.money import Money
from domain.signing import sign, verify_signature
from tests.fakes.backoffice import Receiver, running_receiver

SECRET = "whsec_test_0123456789abcdef"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as state:
        yield state


def settings_for(*urls: str, timeout: float = 5.0) -> Settings:
    return Settings(
        _env_file=None,
        backoffice_webhook_urls=list(urls),
        backoffice_webhook_secret=SECRET if urls else None,
        backoffice_webhook_timeout_seconds=timeout,
    )


def make_event(**changes: Any) -> BackofficeEvent:
    fields: dict[str, Any] = {
        "event_id": backoffice_event_id("INV-N1", BackofficeEventKind.STAGE_CHANGED, 3),
        "kind": BackofficeEventKind.STAGE_CHANGED,
        "invoice_number": "INV-N1",
        "debtor_id": "CUST-42",
        "stage": "formal_notice",
        "outstanding": Money.of("1200.00", "EUR"),
        "occurred_at": datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        "data": {"from": "overdue", "to": "formal_notice"},
    }
    fields.update(changes)
    return BackofficeEvent(**fields)


def run(
    activities: NotifyActivities, event: BackofficeEvent, env: ActivityEnvironment | None = None
) -> int:
    result: int = (env or ActivityEnvironment()).run(activities.notify_backoffice, event)
    return result


# ------------------------------------------------------------------ what a receiver sees


def test_each_url_gets_the_event_signed_with_the_shared_secret(receiver: Receiver) -> None:
    settings = settings_for(receiver.url("/erp"), receiver.url("/crm"))
    event = make_event()

    assert run(NotifyActivities(settings), event) == 2

    assert [r.path for r in receiver.requests] == ["/erp", "/crm"]
    for request in receiver.requests:
        assert request.headers["Relance-Event-Id"] == "INV-N1:stage_changed:3"
        assert request.headers["Content-Type"] == "application/json"
        header = request.headers["Relance-Signature"]
        assert verify_signature(SECRET, header, request.body)
        assert not verify_signature("another-secret-of-some-length", header, request.body)
        # Any change to the body breaks it: receivers must verify the raw bytes.
        assert not verify_signature(SECRET, header, request.body.replace(b"1200", b"1"))
        assert json.loads(request.body) == {
            "event_id": "INV-N1:stage_changed:3",
            "kind": "stage_changed",
            "invoice_number": "INV-N1",
            "debtor_id": "CUST-42",
            "stage": "formal_notice",
            # A decimal string, never a float.
            "outstanding": {"amount": "1200.00", "currency": "EUR"},
            "occurred_at": "2026-03-02T09:30:00Z",
            "data": {"from": "overdue", "to": "formal_notice"},
        }


def test_no_urls_means_no_request_and_zero(receiver: Receiver) -> None:
    assert run(NotifyActivities(settings_for()), make_event()) == 0
    assert receiver.requests == []


# ------------------------------------------------------------------ what is retried


@pytest.mark.parametrize("status", [500, 503, 408, 429])
def test_not_now_statuses_are_retryable(receiver: Receiver, status: int) -> None:
    receiver.statuses["/erp"] = [status]

    with pytest.raises(ApplicationError) as caught:
        run(NotifyActivities(settings_for(receiver.url("/erp"))), make_event())

    assert caught.value.type == WEBHOOK_UNAVAILABLE
    assert not caught.value.non_retryable
    assert f"HTTP {status}" in caught.value.message


@pytest.mark.parametrize("status", [400, 401, 404, 410, 301])
def test_a_rejection_is_not_retried(receiver: Receiver, status: int) -> None:
    receiver.statuses["/erp"] = [status]

    with pytest.raises(ApplicationError) as caught:
        run(NotifyActivities(settings_for(receiver.url("/erp"))), make_event())

    assert caught.value.type == WEBHOOK_REJECTED
    assert caught.value.non_retryable


def test_a_receiver_too_slow_or_gone_is_retryable(receiver: Receiver) -> None:
    receiver.delay = 1.0
    slow = NotifyActivities(settings_for(receiver.url("/slow"), timeout=0.2))
    with pytest.raises(ApplicationError) as slow_caught:
        run(slow, make_event())
    assert slow_caught.value.type == WEBHOOK_UNAVAILABLE
    assert not slow_caught.value.non_retryable

    # Nothing listens on port 9 (discard) on loopback: the connection is refused.
    gone = NotifyActivities(settings_for("http://127.0.0.1:9/hook"))
    with pytest.raises(ApplicationError) as gone_caught:
        run(gone, make_event())
    assert not gone_caught.value.non_retryable
    # The message names where, not the URL's path or query (they may hold a token).
    assert "127.0.0.1:9" in gone_caught.value.message
    assert "/hook" not in gone_caught.value.message


def test_a_retry_posts_only_to_the_urls_that_did_not_answer(receiver: Receiver) -> None:
    receiver.statuses["/down"] = [503]
    activities = NotifyActivities(
        settings_for(receiver.url("/ok"), receiver.url("/down"), receiver.url("/refuses"))
    )
    receiver.statuses["/refuses"] = [400]
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])

    with pytest.raises(ApplicationError) as first:
        run(activities, make_event(), env)
    assert not first.value.non_retryable  # one URL is only down: the whole activity is retried

    # The next attempt starts from the last heartbeat, as Temporal hands it over.
    env.info = dataclasses.replace(env.info, attempt=2, heartbeat_details=[beats[-1]])
    with pytest.raises(ApplicationError) as second:
        run(activities, make_event(), env)

    assert [r.path for r in receiver.requests] == ["/ok", "/down", "/refuses", "/down"]
    # Every URL has answered; one refused for good: that is not retried any more.
    assert second.value.type == WEBHOOK_REJECTED
    assert second.value.non_retryable


# ------------------------------------------------------------------ verify_signature


def test_verify_signature_checks_the_time_window() -> None:
    body = b'{"event_id":"INV-1:paid:9"}'
    header = sign(SECRET, body, 1_767_225_600)

    assert verify_signature(SECRET, header, body, tolerance=300, now=1_767_225_600 + 299)
    assert not verify_signature(SECRET, header, body, tolerance=300, now=1_767_225_600 + 301)
    assert not verify_signature(SECRET, header, body, tolerance=300, now=1_767_225_600 - 301)


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "t=abc,v1=00", "v1=00", "t=1767225600", "t=1767225600,t=1,v1=00"],
)
def test_verify_signature_refuses_malformed_headers(header: str | None) -> None:
    assert not verify_signature(SECRET, header, b"{}", now=1_767_225_600)


def test_verify_signature_accepts_any_of_several_v1_during_a_secret_rotation() -> None:
    body = b"{}"
    new = sign(SECRET, body, 1_767_225_600)
    old = sign("the-previous-secret-0000", body, 1_767_225_600).split(",")[1]
    assert verify_signature(SECRET, f"{new},{old}", body, now=1_767_225_600)
    assert verify_signature("the-previous-secret-0000", f"{new},{old}", body, now=1_767_225_600)


def test_the_documented_test_vector() -> None:
    body = b'{"event_id":"F-1:paid:3"}'
    assert (
        sign("whsec_relance_example_secret", body, 1767225600)
        == "t=1767225600,v1=16a9b14b4ffe5f0a3fbd5cf28683a2faa28eda70bc88d6cc434f117742f4a990"
    )


# ------------------------------------------------------------------ under Temporal


@workflow.defn(sandboxed=False)
class NotifyOnce:
    @workflow.run
    async def run(self, event: BackofficeEvent) -> int:
        result: int = await workflow.execute_activity(
            "notify_backoffice",
            event,
            result_type=int,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100),
                non_retryable_error_types=[WEBHOOK_REJECTED],
            ),
        )
        return result


async def test_temporal_retries_until_every_receiver_took_it(
    time_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    receiver.statuses["/down"] = [500, 502]
    activities = NotifyActivities(settings_for(receiver.url("/ok"), receiver.url("/down")))
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    with ThreadPoolExecutor(max_workers=4) as pool:
        async with Worker(
            time_env.client,
            task_queue=task_queue,
            workflows=[NotifyOnce],
            activities=[activities.notify_backoffice],
            activity_executor=pool,
        ):
            notified = await time_env.client.execute_workflow(
                NotifyOnce.run, make_event(), id=f"notify-{uuid.uuid4()}", task_queue=task_queue
            )

    assert notified == 2
    down = receiver.to("/down")
    assert len(down) == 3
    # Each attempt is signed afresh, under the same event id.
    assert {r.headers["Relance-Event-Id"] for r in down} == {"INV-N1:stage_changed:3"}
    assert all(verify_signature(SECRET, r.headers["Relance-Signature"], r.body) for r in down)
    # The receiver that answered at once was not bothered again (heartbeat details).
    assert len(receiver.to("/ok")) == 1


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    "value",
    [
        "https://erp.test/hook, http://127.0.0.1:9000/x",
        '["https://erp.test/hook", "http://127.0.0.1:9000/x"]',
    ],
)
def test_urls_are_read_as_a_list_or_json(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RELANCE_BACKOFFICE_WEBHOOK_URLS", value)
    monkeypatch.setenv("RELANCE_BACKOFFICE_WEBHOOK_SECRET", SECRET)
    settings = Settings(_env_file=None)
    assert settings.backoffice_webhook_urls == ["https://erp.test/hook", "http://127.0.0.1:9000/x"]


def test_urls_need_a_secret_and_a_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELANCE_BACKOFFICE_WEBHOOK_URLS", "https://erp.test/hook")
    with pytest.raises(ValueError, match="needs RELANCE_BACKOFFICE_WEBHOOK_SECRET"):
        Settings(_env_file=None)
    monkeypatch.setenv("RELANCE_BACKOFFICE_WEBHOOK_SECRET", "short")
    with pytest.raises(ValueError, match="at least 16"):
        Settings(_env_file=None)
    monkeypatch.setenv("RELANCE_BACKOFFICE_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("RELANCE_BACKOFFICE_WEBHOOK_URLS", "erp.test/hook")
    with pytest.raises(ValueError, match="must be http"):
        Settings(_env_file=None)
    monkeypatch.setenv("RELANCE_BACKOFFICE_WEBHOOK_URLS", "")
    assert Settings(_env_file=None).backoffice_webhook_urls == []
