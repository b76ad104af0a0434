"""The live event feed end to end, against the real binary with real clients.

- `GET /rooms/{room}/ws` (WebSocket, the `websockets` package) and
  `GET /rooms/{room}/events` (Server-Sent Events, `requests` and a small line parser):
  a subscriber that drops out mid-meeting and resumes (`from`, `Last-Event-ID`) ends
  with every event of the room exactly once, in order, as the audit trail has them;
- a participant token ends with its right, whichever gateway ended it (a kick over NATS
  request/reply, a room expiry), and its open stream ends with a `revoked` message and,
  on a WebSocket, close code 4001;
- chat history paging (`GET /rooms/{room}/messages`);
- someone waiting in the lobby sees only what concerns them.

Every wait has a deadline; nothing sleeps a fixed time to let the server catch up."""

import asyncio
import json
import time

import nats
import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import Server
from nats_support import TOKEN, Conclave, NatsServer, nats_server_binary

# Longest wait for one event (or the end of a stream) before the test fails.
WAIT = 15.0

# What every message of a stream carries (docs: the audit view plus `stream_version`).
FIELDS = {"seq", "at", "stream", "stream_version", "event_type", "actor", "gateway",
          "protocol", "correlation_id", "event"}


# ---------- REST ----------

def call(server, method, path, token=None, json=None, expect=200):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = requests.request(method, f"{server.url}{path}", headers=headers, json=json, timeout=30)
    assert r.status_code == expect, f"{method} {path} -> {r.status_code} {r.text}"
    return r.json()


def admin_call(server, method, path, json=None, expect=200):
    r = requests.request(method, f"{server.url}{path}", headers=server.admin(), json=json,
                         timeout=30)
    assert r.status_code == expect, f"{method} {path} -> {r.status_code} {r.text}"
    return r.json()


def last_seq(answer) -> int:
    """The sequence number of the last event a command answer reports."""
    assert answer["events"], answer
    return answer["events"][-1]["seq"]


def join(server, room, who, token=None) -> tuple[str, int]:
    """Joins as a guest (or with a token); returns the new token and the join's seq."""
    body = {} if token else {"as": who}
    a = call(server, "POST", f"/rooms/{room}/join", token, body, expect=201)
    return a["token"], last_seq(a)


def audit_seqs(server, room, lo, hi) -> list[int]:
    """The room's journal sequence numbers in [lo, hi], from the admin audit view."""
    out, after = [], lo - 1
    while True:
        page = admin_call(server, "GET", f"/audit?room={room}&after={after}&limit=1000")
        out += [e["seq"] for e in page["entries"] if e["seq"] <= hi]
        if page["complete"] or not page["entries"] or page["entries"][-1]["seq"] >= hi:
            return out
        after = page["next_after"]


def assert_participant_message(m, room):
    assert FIELDS <= m.keys(), m
    assert "remote_addr" not in m, m
    assert "remote" not in m["event"]["data"], m
    assert m["stream"] == f"room:{room}", m
    assert set(m["event"]) >= {"type", "at", "actor", "stream", "data"}, m
    assert m["event"]["type"] == m["event_type"], m


# ---------- clients ----------

class WsFeed:
    """A WebSocket subscriber of a room's feed (synchronous `websockets` client)."""

    def __init__(self, server, room, token, start=None, in_query=False):
        query = [] if start is None else [f"from={start}"]
        headers = {}
        if in_query:
            query.append(f"access_token={token}")
        else:
            headers["Authorization"] = f"Bearer {token}"
        url = f"ws://127.0.0.1:{server.port}/rooms/{room}/ws"
        if query:
            url += "?" + "&".join(query)
        self.ws = connect(url, additional_headers=headers, open_timeout=WAIT,
                          close_timeout=5)

    def next(self) -> dict:
        return json.loads(self.ws.recv(timeout=WAIT))

    def until(self, seq) -> list[dict]:
        """Messages up to and including the event numbered `seq`."""
        got = []
        deadline = time.monotonic() + WAIT
        while not got or got[-1].get("seq", 0) < seq:
            assert time.monotonic() < deadline, f"no event {seq} yet; got {got}"
            got.append(self.next())
        return got

    def rest_until_closed(self) -> tuple[list[dict], int]:
        """Every message until the server closes the socket, and the close code."""
        got = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                got.append(self.next())
            except ConnectionClosed as e:
                return got, e.rcvd.code if e.rcvd else None
        raise AssertionError(f"the socket stayed open; got {got}")

    def close(self):
        self.ws.close()


class SseFeed:
    """A Server-Sent Events subscriber: `requests` streaming plus a line parser.

    The read timeout bounds every wait for a line; `until` adds an overall deadline."""

    def __init__(self, server, room, token, start=None, last_event_id=None):
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        query = "" if start is None else f"?from={start}"
        self.resp = requests.get(f"{server.url}/rooms/{room}/events{query}", headers=headers,
                                 stream=True, timeout=(WAIT, WAIT))
        assert self.resp.status_code == 200, self.resp.text
        assert self.resp.headers["content-type"].startswith("text/event-stream")
        self.lines = self.resp.iter_lines(chunk_size=1)

    def next(self) -> tuple[str, str | None, dict]:
        """The next event: (event name, id, data as JSON)."""
        name, ident, data = "message", None, []
        for raw in self.lines:
            line = raw.decode("utf-8")
            if line == "":
                if data:
                    return name, ident, json.loads("\n".join(data))
                name, ident = "message", None
                continue
            if line.startswith(":"):
                continue  # keep-alive comment
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "id":
                ident = value
            elif field == "data":
                data.append(value)
        raise EOFError("the event stream ended")

    def until(self, seq) -> list[tuple[str, str | None, dict]]:
        got = []
        deadline = time.monotonic() + WAIT
        while not got or got[-1][2].get("seq", 0) < seq:
            assert time.monotonic() < deadline, f"no event {seq} yet; got {got}"
            got.append(self.next())
        return got

    def close(self):
        self.resp.close()


# ---------- the scripted meeting of tests 1 and 2 ----------

class Meeting:
    """Alice (owner), Bob and Carol make events through REST; Sam subscribes."""

    def __init__(self, server, room):
        self.server, self.room = server, room
        created = call(server, "POST", "/rooms", json={"room": room, "as": "web:alice"},
                       expect=201)
        self.alice, _ = join(server, room, "web:alice", token=created["token"])
        self.sam, self.sam_joined = join(server, room, "web:sam")

    def live_part(self) -> list[int]:
        """Events while Sam listens; the seq of each step."""
        s, r = self.server, self.room
        self.bob, bob_joined = join(s, r, "web:bob")
        return [
            bob_joined,
            last_seq(call(s, "POST", f"/rooms/{r}/messages", self.alice, {"body": "agenda?"},
                          expect=201)),
            last_seq(call(s, "POST", f"/rooms/{r}/hand/raise", self.bob, {})),
        ]

    def offline_part(self) -> int:
        """Events while Sam is away; the last seq."""
        s, r = self.server, self.room
        self.carol, _ = join(s, r, "web:carol")
        call(s, "POST", f"/rooms/{r}/messages", self.bob, {"body": "item 1: the feed"},
             expect=201)
        call(s, "POST", f"/rooms/{r}/hand/raise", self.carol, {})
        call(s, "POST", f"/rooms/{r}/hand/lower", self.alice, {"subject": "web:bob"})
        call(s, "POST", f"/rooms/{r}/mute", self.alice, {"subject": "web:carol"})
        return last_seq(call(s, "POST", f"/rooms/{r}/messages", self.carol,
                             {"body": "sorry, muted"}, expect=201))

    def after_return(self) -> int:
        """One more event once Sam is back: nothing after it may be a leftover."""
        return last_seq(call(self.server, "POST", f"/rooms/{self.room}/messages", self.bob,
                             {"body": "bye"}, expect=201))


# ---------- 1. WebSocket: resume with from = last seq + 1 ----------

def test_websocket_subscriber_resumes_with_every_event_once_in_order(server):
    room = "retro-ws"
    m = Meeting(server, room)
    feed = WsFeed(server, room, m.sam, start=m.sam_joined)
    got = []
    for seq in m.live_part():
        got += feed.until(seq)
    feed.close()

    last_offline = m.offline_part()
    # Back, with the token in the query this time (as a browser would).
    feed = WsFeed(server, room, m.sam, start=got[-1]["seq"] + 1, in_query=True)
    got += feed.until(last_offline)
    got += feed.until(m.after_return())
    feed.close()

    seqs = [g["seq"] for g in got]
    assert seqs == audit_seqs(server, room, m.sam_joined, seqs[-1])
    assert len(set(seqs)) == len(seqs)
    for g in got:
        assert_participant_message(g, room)
    types = [g["event_type"] for g in got]
    for t in ("room_join", "chat_message", "hand_raise", "audio_mute"):
        assert t in types, types


# ---------- 2. Server-Sent Events: resume with Last-Event-ID ----------

def test_sse_subscriber_resumes_with_last_event_id_every_event_once_in_order(server):
    room = "retro-sse"
    m = Meeting(server, room)
    feed = SseFeed(server, room, m.sam, start=m.sam_joined)
    got = []
    for seq in m.live_part():
        got += feed.until(seq)
    feed.close()

    last_offline = m.offline_part()
    # Back the way EventSource reconnects: the last id seen, in Last-Event-ID.
    feed = SseFeed(server, room, m.sam, last_event_id=got[-1][1])
    got += feed.until(last_offline)
    got += feed.until(m.after_return())
    feed.close()

    for name, ident, data in got:
        assert name == "message", (name, data)
        assert ident == str(data["seq"]), (ident, data)
        assert_participant_message(data, room)
    seqs = [d["seq"] for _, _, d in got]
    assert seqs == audit_seqs(server, room, m.sam_joined, seqs[-1])
    assert len(set(seqs)) == len(seqs)


# ---------- 3. A kick over NATS revokes the token and ends the stream ----------

@pytest.fixture
def nats_stack(conclave_bin, tmp_path):
    if nats_server_binary() is None:
        pytest.skip("nats-server is not installed (apt-get install nats-server)")
    logs = tmp_path / "logs"
    logs.mkdir()
    ns = NatsServer(tmp_path / "nats-store", logs)
    ns.start()
    c = Conclave(conclave_bin, tmp_path / "data", logs, ns.url)
    try:
        c.setup_stream()
        c.start()
        yield c, ns
    finally:
        c.stop()
        ns.kill()


async def nats_command(url, name, fields):
    """One request to conclave.cmd.<name> as the service (operator rights)."""
    nc = await nats.connect(url, connect_timeout=WAIT)
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                msg = await nc.request(f"conclave.cmd.{name}", json.dumps(fields).encode(),
                                       timeout=WAIT, headers={"Conclave-Token": TOKEN})
                return json.loads(msg.data)
            except nats.errors.NoRespondersError:
                # The responder subscribes in the background once connected.
                assert time.monotonic() < deadline, f"nobody serves conclave.cmd.{name}"
                await asyncio.sleep(0.05)
    finally:
        await nc.close()


def test_kick_over_nats_revokes_the_token_and_closes_its_websocket(nats_stack):
    c, ns = nats_stack
    room = "ops-sync"
    call(c, "POST", "/rooms", json={"room": room, "as": "web:olga"}, expect=201)
    bob, _ = join(c, room, "web:bob")
    assert call(c, "GET", "/me", bob)["identity"] == "web:bob"
    feed = WsFeed(c, room, bob)

    reply = asyncio.run(nats_command(ns.url, "kick", {"room": room, "subject": "web:bob"}))
    assert reply["ok"], reply

    err = call(c, "GET", "/me", bob, expect=401)["error"]
    assert err["code"] == "auth.token_revoked", err
    err = call(c, "GET", f"/rooms/{room}/members", bob, expect=401)["error"]
    assert err["code"] == "auth.token_revoked", err

    got, code = feed.rest_until_closed()
    assert [g.get("event_type") for g in got[:-1]] == ["peer_kick"], got
    assert got[0]["seq"] == reply["seqs"][-1], (got, reply)
    assert got[0]["gateway"] == "nats" and got[0]["protocol"] == "nats", got[0]
    assert got[-1]["type"] == "revoked" and got[-1]["code"] == "auth.token_revoked", got
    assert code == 4001


# ---------- 4. Room expiry revokes the token ----------

def test_room_expiry_revokes_the_token(conclave_bin, tmp_path):
    # The shortest inactivity timeout the server accepts is one minute
    # (policy.inactivity_timeout_mins), so this test takes about that long.
    logs = tmp_path / "logs"
    logs.mkdir()
    s = Server(conclave_bin, tmp_path / "data", logs,
               env={"CONCLAVE_INACTIVITY_TIMEOUT_MINS": "1"})
    s.start()
    try:
        room = "short-lived"
        # An identity that creates a room gets a token with no session: the room stays
        # empty, so it expires after the inactivity timeout.
        owner = call(s, "POST", "/rooms", json={"room": room, "as": "web:olga"},
                     expect=201)["token"]
        assert call(s, "GET", "/me", owner)["room"] == room
        feed = WsFeed(s, room, owner)

        deadline = time.monotonic() + 60 + 60
        while True:
            r = requests.get(f"{s.url}/rooms/{room}", headers=s.admin(), timeout=10)
            if r.status_code == 404:
                assert r.json()["error"]["code"] == "room.not_found"
                break
            assert r.status_code == 200, r.text
            assert time.monotonic() < deadline, "the room never expired"
            time.sleep(0.2)
        expired = admin_call(s, "GET", f"/audit?room={room}&type=room_expire")["entries"]
        assert len(expired) == 1, expired

        err = call(s, "GET", "/me", owner, expect=401)["error"]
        assert err["code"] == "auth.token_revoked", err
        got, code = feed.rest_until_closed()
        assert got and got[-1]["type"] == "revoked", got
        assert code == 4001
    finally:
        s.stop()


# ---------- 5. Chat history paging ----------

def test_chat_history_pages_by_sequence(server):
    room = "history"
    created = call(server, "POST", "/rooms", json={"room": room, "as": "web:alice"},
                   expect=201)
    alice, _ = join(server, room, "web:alice", token=created["token"])
    bob, _ = join(server, room, "web:bob")
    posted = []
    for who, body in ((alice, "one"), (bob, "two <b>bold</b>"), (alice, "three")):
        a = call(server, "POST", f"/rooms/{room}/messages", who, {"body": body}, expect=201)
        posted.append((last_seq(a), a["message"]))

    first = call(server, "GET", f"/rooms/{room}/messages?limit=2", bob)
    assert first["room"] == room
    assert [(m["seq"], m["message"]) for m in first["messages"]] == posted[:2]
    assert [m["body"] for m in first["messages"]] == ["one", "two bold"]
    assert [m["from"] for m in first["messages"]] == ["web:alice", "web:bob"]
    assert [m["html_stripped"] for m in first["messages"]] == [False, True]
    assert all(m["address"] and m["at"] for m in first["messages"])
    assert first["next_after"] == posted[1][0]

    second = call(server, "GET", f"/rooms/{room}/messages?after={first['next_after']}&limit=2",
                  alice)
    assert [(m["seq"], m["body"]) for m in second["messages"]] == [(posted[2][0], "three")]
    last = admin_call(server, "GET",
                      f"/rooms/{room}/messages?after={second['next_after']}&limit=2")
    assert last["messages"] == [] and last["next_after"] is None


# ---------- 6. The lobby: only what concerns the waiting person ----------

def test_lobby_waiter_is_refused_the_roster_and_sees_only_their_own_events(server):
    room = "with-lobby"
    created = call(server, "POST", "/rooms", json={"room": room, "as": "web:alice"},
                   expect=201)
    call(server, "PATCH", f"/rooms/{room}", created["token"], {"lobby": True})
    alice, _ = join(server, room, "web:alice", token=created["token"])

    knock = call(server, "POST", f"/rooms/{room}/knock", json={"as": "web:dave"}, expect=201)
    dave, knocked = knock["token"], last_seq(knock)
    err = call(server, "GET", f"/rooms/{room}/members", dave, expect=403)["error"]
    assert err["code"] == "lobby.waiting", err
    feed = WsFeed(server, room, dave, start=knocked)

    # Other people's doings while Dave waits: chat, another knock, a hand.
    call(server, "POST", f"/rooms/{room}/messages", alice, {"body": "before we start"},
         expect=201)
    call(server, "POST", f"/rooms/{room}/knock", json={"as": "web:erin"}, expect=201)
    call(server, "POST", f"/rooms/{room}/hand/raise", alice, {})
    admitted = call(server, "POST", f"/rooms/{room}/admit", alice, {"subject": "web:dave"})

    got = feed.until(last_seq(admitted))
    feed.close()
    assert [(g["seq"], g["event_type"]) for g in got] == (
        [(knocked, "lobby_knock")] + [(e["seq"], e["type"]) for e in admitted["events"]]), got
    # The server gives sessions a lease (default 300 s): the admission starts one.
    assert [e["type"] for e in admitted["events"]] == ["lobby_admit", "room_join", "session_renew"]
    for g in got:
        assert_participant_message(g, room)
