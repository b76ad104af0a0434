"""Email invitations as VROOM sends them, against a local SMTP sink (aiosmtpd) on a free
loopback port: a `mailto:` invitation is mailed with a link to the page that carries the
single-use bearer secret; the link's secret admits once into a private room; the journal,
the audit and the logs never hold the secret (only its digest is stored). The relay
being down at first is retried with backoff. Optionally the link is followed in
headless Chromium (browser_support.py). Everything stays on 127.0.0.1."""

import email
import email.policy
import re
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import requests
from aiosmtpd.controller import Controller

import browser_support
from conftest import Server, free_port

LINK = re.compile(r"(http://127\.0\.0\.1:\d+/r/[^\s?]+\?invitation=[A-Za-z0-9%._~-]+)")


class Sink:
    """An SMTP server keeping every message it is given."""

    def __init__(self, port: int):
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"

    def start(self):
        self.controller.start()

    def stop(self):
        self.controller.stop()

    def wait(self, n: int, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"expected {n} mails, got {len(self.messages)}")


def call(server, method, path, token=None, json=None, expect=200):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = requests.request(method, f"{server.url}{path}", headers=headers, json=json, timeout=30)
    assert r.status_code == expect, f"{method} {path} -> {r.status_code} {r.text}"
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text


def mail_server(conclave_bin, tmp_path, smtp_port: int, *extra: str) -> Server:
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    return Server(conclave_bin, tmp_path / "data", logs, args=[
        "--smtp-relay", f"127.0.0.1:{smtp_port}", "--smtp-security", "none",
        "--smtp-from", "Conclave <conclave@example.org>", *extra])


@pytest.fixture
def sink():
    s = Sink(free_port())
    s.start()
    yield s
    s.stop()


@pytest.fixture
def mailing(conclave_bin, tmp_path, sink):
    s = mail_server(conclave_bin, tmp_path, sink.controller.port)
    s.start()
    yield s
    s.stop()


def invite_by_mail(server, room: str, to: str):
    created = call(server, "POST", "/rooms", json={"room": room, "as": "web:alice", "private": True},
                   expect=201)
    alice = created["token"]
    inv = call(server, "POST", f"/rooms/{room}/invitations", alice, {"invitee": to}, expect=201)
    # Delivered by mail: the inviter is not given the secret.
    assert inv["delivery"] == "email" and "secret" not in inv and "link" not in inv, inv
    return alice, inv


def link_of(msg) -> str:
    body = msg.get_body(preferencelist=("plain",)).get_content()
    m = LINK.search(body)
    assert m, body
    return m.group(1)


def secret_of(link: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["invitation"][0]


def assert_secret_nowhere(server, admin: str, secret: str):
    """Neither the audit, the feed's history, nor any file of the data directory (the
    journal, projections, checkpoints), nor the logs hold the secret."""
    audit = call(server, "GET", "/audit", admin)
    assert "send_invitation" in str(audit) and secret not in str(audit)
    listed = call(server, "GET", "/rooms/standup/invitations", admin)
    assert secret not in str(listed)
    needle = secret.encode()
    for f in Path(server.data_dir).rglob("*"):
        if f.is_file():
            assert needle not in f.read_bytes(), f"secret found in {f}"
    assert secret not in server.stderr()


def test_a_mailto_invitation_is_mailed_and_its_link_admits_once(mailing, sink):
    server = mailing
    alice, inv = invite_by_mail(server, "standup", "mailto:x@example.org")
    (rcpt, msg), = sink.wait(1)
    assert rcpt == ["x@example.org"]
    assert msg["To"] == "x@example.org"
    assert "conclave@example.org" in msg["From"]
    assert "standup" in msg["Subject"]
    link = link_of(msg)
    assert link.startswith(f"{server.url}/r/standup?invitation=")
    secret = secret_of(link)
    # The link opens the page.
    page = requests.get(link, timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # The invitation id alone is no key; the private room refuses the uninvited.
    err = call(server, "POST", "/rooms/standup/join",
               json={"as": "web:mallory", "invitation": inv["invitation"]}, expect=403)
    assert err["error"]["code"] == "perm.not_yours"
    # The link's secret admits, once.
    joined = call(server, "POST", "/rooms/standup/join",
                  json={"as": "web:xguest", "invitation_secret": secret}, expect=201)
    assert joined["role"] == "member"
    err = call(server, "POST", "/rooms/standup/join",
               json={"as": "web:eve", "invitation_secret": secret}, expect=410)
    assert err["error"]["code"] == "invitation.closed"
    listed = call(server, "GET", "/rooms/standup/invitations", alice)["invitations"]
    assert [i["state"] for i in listed] == ["used"]
    # Exactly one mail, and its outcome is in the metrics.
    time.sleep(0.3)
    assert len(sink.messages) == 1
    metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    assert 'conclave_mail_sent_total{kind="invitation"} 1' in metrics, metrics
    assert_secret_nowhere(server, server.admin_token, secret)


def test_a_relay_that_is_down_is_retried_with_backoff(conclave_bin, tmp_path):
    port = free_port()
    server = mail_server(conclave_bin, tmp_path, port, "--smtp-first-retry-ms", "300",
                         "--smtp-max-attempts", "10")
    server.start()
    sink = Sink(port)
    try:
        invite_by_mail(server, "standup", "mailto:late@example.org")
        # Nothing listens yet: the first tries fail and are retried.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            metrics = requests.get(f"{server.url}/metrics", timeout=10).text
            if re.search(r'conclave_mail_retries_total\{kind="invitation"\} [1-9]', metrics):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("no retry counted")
        sink.start()
        (rcpt, msg), = sink.wait(1, timeout=30)
        assert rcpt == ["late@example.org"]
        secret = secret_of(link_of(msg))
        call(server, "POST", "/rooms/standup/join",
             json={"as": "web:late", "invitation_secret": secret}, expect=201)
        metrics = requests.get(f"{server.url}/metrics", timeout=10).text
        assert 'conclave_mail_sent_total{kind="invitation"} 1' in metrics
    finally:
        sink.stop()
        server.stop()


def test_owners_are_notified_of_joins_when_configured(conclave_bin, tmp_path, sink):
    server = mail_server(conclave_bin, tmp_path, sink.controller.port, "--smtp-notify-joins", "true")
    server.start()
    try:
        # The owner is an account with a mailto: identity.
        admin = server.admin_token
        call(server, "POST", "/accounts", admin, {"account": "a1ce0001", "display_name": "Alice"},
             expect=201)
        call(server, "POST", "/accounts/a1ce0001/identities", admin,
             {"address": "mailto:alice@example.org"})
        call(server, "POST", "/rooms", admin,
             {"room": "daily", "owner": "account:a1ce0001"}, expect=201)
        call(server, "POST", "/rooms/daily/join", json={"as": "web:bob"}, expect=201)
        (rcpt, msg), = sink.wait(1)
        assert rcpt == ["alice@example.org"]
        body = msg.get_body(preferencelist=("plain",)).get_content()
        assert "web:bob joined your room" in body, body
    finally:
        server.stop()


@pytest.mark.skipif(browser_support.available() is not None,
                    reason=browser_support.available() or "")
def test_the_mailed_link_joins_in_the_browser(mailing, sink, tmp_path):
    from browser_support import Browsers
    server = mailing
    invite_by_mail(server, "standup", "mailto:x@example.org")
    (_, msg), = sink.wait(1)
    link = link_of(msg)
    browsers = Browsers(tmp_path)
    try:
        page = browsers.new()
        page.open(link)
        page.join("xguest")
        page.wait("return document.getElementById('my-role').textContent === 'member';",
                  what="the member role")
        # The secret left the address bar, and it is used up.
        assert "invitation=" not in page.js("return location.href;")
    finally:
        browsers.close()
    err = call(server, "POST", "/rooms/standup/join",
               json={"as": "web:eve", "invitation_secret": secret_of(link)}, expect=410)
    assert err["error"]["code"] == "invitation.closed"
