"""The email senders as their users meet them: what arrives at SendGrid or in the outbox, and
which failures are worth retrying."""

from __future__ import annotations

import json
import logging
import pickle
import socket
import time
import urllib.request
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.error import HTTPError

import pytest

from activities.email import (
    OutboxSender,
    OutgoingEmail,
    PermanentSendError,
    SendGridSender,
    TransientSendError,
    build_sender,
)
from config import Settings
from tests.fakes import FakeSendGrid

API_KEY = "SG.test-key"
FROM = "Relance Demo <relance@relance.test>"


def make_email(**changes: Any) -> OutgoingEmail:
    fields: dict[str, Any] = {
        "idempotency_key": "INV-1:reminder_1:email",
        "to_email": "zoe.martin@client.test",
        "to_name": "Zoé Martin",
        "subject": "Facture INV-1 échue",
        "text": "Bonjour,\nla facture INV-1 est échue.",
        "html": "<p>Bonjour,</p><p>la facture INV-1 est échue.</p>",
        "custom_args": {"invoice": "INV-1", "step": "reminder_1"},
        "categories": ["reminder_1", "courteous"],
    }
    fields.update(changes)
    return OutgoingEmail(**fields)


@pytest.fixture
def sendgrid() -> Iterator[FakeSendGrid]:
    with FakeSendGrid(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
def sender(sendgrid: FakeSendGrid) -> SendGridSender:
    return SendGridSender(api_key=API_KEY, host=sendgrid.url, from_email=FROM, timeout=2)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# -- SendGrid ---------------------------------------------------------------------------------


def test_sendgrid_delivers_the_message_and_returns_its_id(
    sendgrid: FakeSendGrid, sender: SendGridSender
) -> None:
    receipt = sender.send(make_email())

    [message] = sendgrid.messages
    assert receipt.provider == "sendgrid"
    assert receipt.provider_message_id == message.message_id
    assert message.body["from"] == {"email": "relance@relance.test", "name": "Relance Demo"}
    assert message.to == [{"email": "zoe.martin@client.test", "name": "Zoé Martin"}]
    assert message.subject == "Facture INV-1 échue"
    assert list(message.contents) == ["text/plain", "text/html"]
    assert message.contents["text/plain"] == "Bonjour,\nla facture INV-1 est échue."
    assert message.contents["text/html"] == "<p>Bonjour,</p><p>la facture INV-1 est échue.</p>"
    assert message.custom_args == {"invoice": "INV-1", "step": "reminder_1"}
    assert message.categories == ["reminder_1", "courteous"]
    assert message.headers["user-agent"].startswith("sendgrid/")


def test_sendgrid_text_only_message_without_recipient_name(
    sendgrid: FakeSendGrid, sender: SendGridSender
) -> None:
    sender.send(make_email(to_name=None, html=None, custom_args={}, categories=[]))

    [message] = sendgrid.messages
    assert message.to == [{"email": "zoe.martin@client.test"}]
    assert message.contents == {"text/plain": "Bonjour,\nla facture INV-1 est échue."}
    assert "custom_args" not in message.body
    assert "categories" not in message.body


def test_sendgrid_host_with_trailing_slash(sendgrid: FakeSendGrid) -> None:
    sender = SendGridSender(api_key=API_KEY, host=sendgrid.url + "/", from_email=FROM)

    sender.send(make_email())

    assert len(sendgrid.messages) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_sendgrid_client_errors_are_permanent_and_carry_sendgrids_message(
    sendgrid: FakeSendGrid, sender: SendGridSender, status: int
) -> None:
    sendgrid.fail_next(status, message=f"refused with {status}")

    with pytest.raises(PermanentSendError) as caught:
        sender.send(make_email())

    assert caught.value.status_code == status
    assert f"refused with {status}" in str(caught.value)
    assert sendgrid.messages == []


def test_sendgrid_wrong_api_key_is_permanent(sendgrid: FakeSendGrid) -> None:
    sender = SendGridSender(api_key="SG.revoked", host=sendgrid.url, from_email=FROM)

    with pytest.raises(PermanentSendError) as caught:
        sender.send(make_email())

    assert caught.value.status_code == 401
    assert "authorization grant is invalid" in str(caught.value)


def test_sendgrid_invalid_address_is_permanent_and_names_the_field(
    sendgrid: FakeSendGrid, sender: SendGridSender
) -> None:
    with pytest.raises(PermanentSendError) as caught:
        sender.send(make_email(to_email="zoe.martin-at-client.test"))

    assert caught.value.status_code == 400
    assert "Does not contain a valid address." in caught.value.reason
    assert "personalizations.0.to.0.email" in caught.value.reason
    assert sendgrid.messages == []


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_sendgrid_overload_and_server_errors_are_transient_then_a_retry_goes_through(
    sendgrid: FakeSendGrid, sender: SendGridSender, status: int
) -> None:
    sendgrid.fail_next(status)

    with pytest.raises(TransientSendError) as caught:
        sender.send(make_email())
    receipt = sender.send(make_email())

    assert caught.value.status_code == status
    assert sendgrid.requests_count == 2
    assert [m.message_id for m in sendgrid.messages] == [receipt.provider_message_id]


def test_sendgrid_unreachable_is_transient() -> None:
    sender = SendGridSender(
        api_key=API_KEY, host=f"http://127.0.0.1:{closed_port()}", from_email=FROM
    )

    with pytest.raises(TransientSendError) as caught:
        sender.send(make_email())

    assert caught.value.status_code is None
    assert "unreachable" in str(caught.value)


def test_sendgrid_hung_server_times_out_as_transient(sendgrid: FakeSendGrid) -> None:
    sender = SendGridSender(api_key=API_KEY, host=sendgrid.url, from_email=FROM, timeout=0.3)
    sendgrid.delay_next(1.0)

    started = time.monotonic()
    with pytest.raises(TransientSendError):
        sender.send(make_email())

    assert time.monotonic() - started < 0.9
    # The slow server still accepted it: a timeout means "unknown", which is why retries go
    # through the idempotency key.
    deadline = time.monotonic() + 3
    while not sendgrid.messages and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(sendgrid.messages) == 1


def test_sendgrid_debug_logging_does_not_leak_the_api_key(
    sender: SendGridSender, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        sender.send(make_email())

    assert API_KEY not in caplog.text
    assert "zoe.martin@client.test" not in caplog.text


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"api_key": ""}, "API key"),
        ({"host": "api.sendgrid.com"}, "http"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_sendgrid_sender_refuses_a_bad_configuration_up_front(
    changes: dict[str, Any], complaint: str
) -> None:
    arguments: dict[str, Any] = {
        "api_key": API_KEY,
        "host": "https://api.sendgrid.com",
        "from_email": FROM,
    }
    arguments.update(changes)

    with pytest.raises(ValueError, match=complaint):
        SendGridSender(**arguments)


# -- outbox -----------------------------------------------------------------------------------


def read_eml(path: Path) -> EmailMessage:
    with path.open("rb") as handle:
        message = BytesParser(policy=policy.default).parse(handle)
    assert isinstance(message, EmailMessage)
    return message


def body_of(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None and part.get_content_subtype() == subtype
    content: str = part.get_content()
    return content


def test_outbox_writes_a_readable_eml(tmp_path: Path) -> None:
    directory = tmp_path / "not" / "yet" / "there"
    sender = OutboxSender(directory, FROM)

    receipt = sender.send(make_email())

    [path] = directory.glob("*.eml")
    assert receipt.provider == "outbox"
    assert receipt.provider_message_id == path.name
    assert path.name.startswith("INV-1_reminder_1_email-")
    message = read_eml(path)
    assert message["From"] == FROM
    assert message["To"] == "Zoé Martin <zoe.martin@client.test>"
    assert message["Subject"] == "Facture INV-1 échue"
    assert message["Message-ID"].endswith("@relance.test>")
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert message["X-Relance-Key"] == "INV-1:reminder_1:email"
    assert message["X-Relance-Arg-invoice"] == "INV-1"
    assert message["X-Relance-Arg-step"] == "reminder_1"
    assert message.get_all("X-Relance-Category") == ["reminder_1", "courteous"]
    assert body_of(message, "plain").rstrip("\n") == "Bonjour,\nla facture INV-1 est échue."
    assert body_of(message, "html").rstrip("\n") == (
        "<p>Bonjour,</p><p>la facture INV-1 est échue.</p>"
    )


def test_outbox_a_retry_writes_the_same_parts_and_a_text_holding_the_boundary_stays_whole(
    tmp_path: Path,
) -> None:
    sender = OutboxSender(tmp_path, FROM)
    [path] = [tmp_path / str(sender.send(make_email()).provider_message_id)]
    boundary = read_eml(path).get_boundary()
    sender.send(make_email())
    assert read_eml(path).get_boundary() == boundary  # a retry: the same message again

    # A text that happens to hold that boundary must not be cut in two by it.
    text = f"Bonjour,\n--{boundary}\nla facture INV-1 est échue."
    sender.send(make_email(text=text))

    message = read_eml(path)
    assert message.get_boundary() != boundary
    assert body_of(message, "plain").rstrip("\n") == text
    assert body_of(message, "html").startswith("<p>Bonjour,</p>")


def test_outbox_writes_what_the_email_package_itself_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The outbox keeps the header classes the email package makes (a speed-up); the file a
    # debtor's mail client opens must be the same, byte for byte, apart from its Date.
    def written(folder: Path) -> bytes:
        sender = OutboxSender(folder, FROM)
        sender.send(make_email(to_name='Zoé Martin, SARL "Les Tilleuls"'))
        sender.send(make_email(idempotency_key="INV-2:reminder_1:email"))
        files = sorted(folder.glob("*.eml"))
        assert len(files) == 2
        return b"".join(
            b"".join(
                line for line in f.read_bytes().splitlines(True) if not line.startswith(b"Date:")
            )
            for f in files
        )

    kept = written(tmp_path / "kept")
    monkeypatch.setattr("activities.email.outbox._POLICY", policy.default)
    assert kept == written(tmp_path / "stdlib")


def test_outbox_text_only_message_is_single_part(tmp_path: Path) -> None:
    sender = OutboxSender(tmp_path, FROM)

    sender.send(make_email(html=None, to_name=None))

    [path] = tmp_path.glob("*.eml")
    message = read_eml(path)
    assert not message.is_multipart()
    assert message.get_content_type() == "text/plain"
    assert message["To"] == "zoe.martin@client.test"


def test_outbox_same_key_twice_leaves_one_file_with_the_latest_content(tmp_path: Path) -> None:
    sender = OutboxSender(tmp_path, FROM)

    first = sender.send(make_email(subject="first attempt"))
    second = sender.send(make_email(subject="second attempt"))

    assert first.provider_message_id == second.provider_message_id
    assert [p.name for p in tmp_path.iterdir()] == [first.provider_message_id]
    message = read_eml(tmp_path / str(first.provider_message_id))
    assert message["Subject"] == "second attempt"


def test_outbox_keys_that_sanitise_alike_get_their_own_files(tmp_path: Path) -> None:
    sender = OutboxSender(tmp_path, FROM)

    names = {
        sender.send(make_email(idempotency_key=key)).provider_message_id
        for key in ["INV/1:step", "INV:1:step", "../../INV-1:step", "x" * 300]
    }

    assert len(names) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(str(n) for n in names)


def test_outbox_unparseable_address_is_permanent_and_writes_nothing(tmp_path: Path) -> None:
    sender = OutboxSender(tmp_path, FROM)

    with pytest.raises(PermanentSendError):
        sender.send(make_email(to_email="zoe.martin-at-client.test"))

    assert list(tmp_path.iterdir()) == []


# -- the message model ------------------------------------------------------------------------


def test_subject_line_breaks_from_templates_are_folded() -> None:
    assert make_email(subject="Facture INV-1\n  échue\n").subject == "Facture INV-1 échue"


def test_send_errors_survive_pickling() -> None:
    error = pickle.loads(pickle.dumps(TransientSendError("busy", 429)))

    assert (error.reason, error.status_code, str(error)) == ("busy", 429, "busy (HTTP 429)")


# -- build_sender -----------------------------------------------------------------------------


def test_build_sender_defaults_to_the_outbox_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RELANCE_EMAIL_BACKEND", raising=False)
    monkeypatch.delenv("RELANCE_SENDGRID_API_KEY", raising=False)
    monkeypatch.delenv("RELANCE_OUTBOX_DIR", raising=False)
    settings = Settings(_env_file=None, data_dir=tmp_path, email_from=FROM)

    sender = build_sender(settings)

    assert isinstance(sender, OutboxSender)
    assert sender.directory == tmp_path / "outbox"
    sender.send(make_email())
    assert read_eml(next((tmp_path / "outbox").glob("*.eml")))["From"] == FROM


def test_build_sender_uses_the_configured_outbox_dir(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, email_backend="outbox", outbox_dir=tmp_path / "mail")

    sender = build_sender(settings)

    assert isinstance(sender, OutboxSender)
    assert sender.directory == tmp_path / "mail"


def test_build_sender_picks_sendgrid_when_given_a_key(
    sendgrid: FakeSendGrid, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RELANCE_EMAIL_BACKEND", raising=False)
    settings = Settings(
        _env_file=None, sendgrid_api_key=API_KEY, sendgrid_host=sendgrid.url, email_from=FROM
    )

    sender = build_sender(settings)
    receipt = sender.send(make_email())

    assert isinstance(sender, SendGridSender)
    assert sender.name == "sendgrid"
    assert [m.message_id for m in sendgrid.messages] == [receipt.provider_message_id]
    assert sendgrid.messages[0].body["from"]["email"] == "relance@relance.test"


# -- the fake keeps SendGrid's HTTP contract --------------------------------------------------


def post(url: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url + "/v3/mail/send",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except HTTPError as error:
        return error.code, json.loads(error.read())


def test_fake_requires_a_bearer_key(sendgrid: FakeSendGrid) -> None:
    status, body = post(sendgrid.url, {})

    assert status == 401
    assert body == {"errors": [{"message": "authorization required", "field": None, "help": None}]}


def test_fake_names_every_invalid_field(sendgrid: FakeSendGrid) -> None:
    status, body = post(
        sendgrid.url,
        {
            "personalizations": [{"to": [{"name": "no address"}], "custom_args": {"n": 1}}],
            "from": {"email": "relance"},
            "content": [{"type": "text/html", "value": "<p>x</p>"}, {"type": "text/plain"}],
        },
        {"Authorization": f"Bearer {API_KEY}"},
    )

    assert status == 400
    assert {error["field"] for error in body["errors"]} == {
        "personalizations.0.to.0.email",
        "personalizations.0.custom_args.n",
        "from.email",
        "subject",
        "content.1.value",
        "content",
    }
    assert sendgrid.messages == []


def test_fake_injected_failures_are_counted_but_not_recorded(sendgrid: FakeSendGrid) -> None:
    sendgrid.fail_next(500, times=2)
    minimal = {
        "personalizations": [{"to": [{"email": "a@b.test"}]}],
        "from": {"email": "relance@relance.test"},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "t"}],
    }
    auth = {"Authorization": f"Bearer {API_KEY}"}

    statuses = [post(sendgrid.url, minimal, auth)[0] for _ in range(3)]

    assert statuses == [500, 500, 202]
    assert sendgrid.requests_count == 3
    assert len(sendgrid.messages) == 1


# -- header injection -------------------------------------------------------------------------

# A debtor name as an attacker would hand it over: an RFC 2047 encoded word whose decoded text
# is a line break and a Bcc header, and a stored name with raw line breaks (from before names
# were validated).
ENCODED_WORD_NAME = "=?utf-8?q?Evil=0D=0ABcc:_spy@evil.example?="
RAW_BREAK_NAME = "Dupont\r\nBcc: spy@evil.example"
EXPECTED_HEADERS = {
    "Message-ID",
    "Date",
    "From",
    "To",
    "Subject",
    "MIME-Version",
    "Content-Type",
    "X-Relance-Key",
    "X-Relance-Arg-invoice",
    "X-Relance-Arg-step",
    "X-Relance-Category",
}


@pytest.mark.parametrize("name", [ENCODED_WORD_NAME, RAW_BREAK_NAME])
def test_outbox_name_cannot_add_a_header(tmp_path: Path, name: str) -> None:
    receipt = OutboxSender(tmp_path, FROM).send(make_email(to_name=name))

    raw = (tmp_path / str(receipt.provider_message_id)).read_bytes()
    # Parsed as a mail server would, and as a client would after decoding encoded words.
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert set(message.keys()) <= EXPECTED_HEADERS, message.keys()
    head = raw.split(b"\r\n\r\n")[0]
    assert not [line for line in head.split(b"\r\n") if line.lower().startswith(b"bcc")]
    [to] = message["To"].addresses
    assert to.addr_spec == "zoe.martin@client.test"
    assert "\r" not in to.display_name and "\n" not in to.display_name
    assert "evil.example" in to.display_name  # the name is kept, harmless, not dropped


@pytest.mark.parametrize("name", [ENCODED_WORD_NAME, RAW_BREAK_NAME])
def test_sendgrid_name_cannot_add_a_header(
    sendgrid: FakeSendGrid, sender: SendGridSender, name: str
) -> None:
    sender.send(make_email(to_name=name))

    [message] = sendgrid.messages
    [recipient] = message.to
    assert recipient["email"] == "zoe.martin@client.test"
    assert not {"bcc", "cc", "headers"} & set(message.personalization)
    assert "headers" not in message.body
    # SendGrid writes the To header from this name: it must decode to no header text.
    assert not set(recipient["name"]) & {"\r", "\n"}
    assert "=?" not in recipient["name"]


def test_a_name_with_a_raw_line_break_does_not_fail_every_later_email(tmp_path: Path) -> None:
    outbox = OutboxSender(tmp_path, FROM)
    for step in ("reminder_1", "reminder_2"):
        outbox.send(make_email(idempotency_key=f"INV-1:{step}:email", to_name=RAW_BREAK_NAME))
    assert len(list(tmp_path.glob("*.eml"))) == 2
