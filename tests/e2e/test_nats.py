"""The NATS gateway end to end: the real binary, a real nats-server with JetStream, and
nats-py as the subscriber and the command client.

A scripted meeting runs partly over NATS commands and partly over HTTP; the nats-server
is killed mid-meeting and restarted on the same store; an ordered JetStream consumer
must end with every journal record exactly once, in order."""

import asyncio
import json

import nats
import pytest
import requests

from nats_support import TOKEN, Conclave, NatsServer, nats_server_binary

pytestmark = pytest.mark.skipif(
    nats_server_binary() is None, reason="nats-server is not installed (apt-get install nats-server)")

ROOM = "Stand-up (ops) Ω"


@pytest.fixture
def stack(conclave_bin, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    ns = NatsServer(tmp_path / "nats-store", logs)
    ns.start()
    c = Conclave(conclave_bin, tmp_path / "data", logs, ns.url)
    c.setup_stream()
    c.start()
    yield ns, c
    c.stop()
    ns.kill()


async def command(nc, name, fields, act_as=None, token=TOKEN):
    headers = {"Conclave-Token": token}
    if act_as:
        headers["Conclave-Act-As"] = act_as
    for _ in range(100):
        try:
            msg = await nc.request(f"conclave.cmd.{name}", json.dumps(fields).encode(),
                                   timeout=10, headers=headers)
            return json.loads(msg.data)
        except nats.errors.NoRespondersError:
            # The responder (re)subscribes in the background after a (re)connect.
            await asyncio.sleep(0.05)
    raise AssertionError(f"nobody serves conclave.cmd.{name}")


async def ok(nc, name, fields, act_as=None):
    r = await command(nc, name, fields, act_as)
    assert r["ok"], r
    return r


def test_meeting_events_exactly_once_in_order_across_a_nats_restart(stack):
    ns, c = stack
    asyncio.run(scenario(ns, c))


async def scenario(ns, c):
    received = []
    reconnected = asyncio.Event()

    async def on_reconnect():
        reconnected.set()

    nc = await nats.connect(ns.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                            allow_reconnect=True, reconnected_cb=on_reconnect)

    async def wait_nats(pred):
        # Off the event loop, so the NATS client keeps running meanwhile.
        return await asyncio.to_thread(c.wait_nats, pred)
    js = nc.jetstream()

    async def on_event(msg):
        received.append((int(msg.headers["Conclave-Seq"]), msg.subject, json.loads(msg.data)))

    sub = await js.subscribe("conclave.events.>", cb=on_event, ordered_consumer=True,
                             idle_heartbeat=0.5)

    # Part 1 over NATS: a service creates the room, people join and chat (act-as).
    created = await ok(nc, "create_room", {"room": ROOM, "private": False,
                                           "owner": "sip:alice@example.org"})
    assert created["events"][0]["type"] == "room_create"
    # A room created over NATS is visible over HTTP.
    r = requests.get(f"{c.url}/rooms/{ROOM}", headers=c.admin(), timeout=10)
    assert r.status_code == 200, r.text
    for who in ("alice", "bob", "carol"):
        await ok(nc, "join", {"room": ROOM, "session": f"{who}-1", "credentials": {}},
                 act_as=f"sip:{who}@example.org")
    await ok(nc, "post_message", {"room": ROOM, "body": "agenda?"}, act_as="sip:alice@example.org")
    denied = await command(nc, "kick", {"room": ROOM, "subject": "sip:alice@example.org"},
                           act_as="sip:bob@example.org")
    assert denied["error"]["code"].startswith("perm."), denied
    bad = await command(nc, "create_room", {"room": "x"}, token="wrong-token-wrong-token")
    assert bad["error"]["code"] == "nats.unauthorized"
    await wait_nats(lambda h: h["lag"] == 0 and h["connected"])

    # The NATS server dies mid-meeting; the meeting goes on over HTTP.
    ns.kill()
    for path, body in ((f"/rooms/{ROOM}/mute", {"subject": "sip:bob@example.org"}),
                       (f"/rooms/{ROOM}/kick", {"subject": "sip:carol@example.org"})):
        r = requests.post(f"{c.url}{path}", json=body, headers=c.admin(), timeout=10)
        assert r.status_code == 200, r.text
    h = await wait_nats(lambda h: not h["connected"] and h["lag"] > 0)
    assert h["last_error"] is not None
    health = requests.get(f"{c.url}/about/health", timeout=10)
    assert health.status_code == 200
    metrics = requests.get(f"{c.url}/metrics", timeout=10).text
    assert "conclave_nats_lag_records" in metrics

    # It comes back on the same store; the outbox catches up, the meeting ends over NATS.
    await asyncio.to_thread(ns.start)
    await wait_nats(lambda h: h["connected"] and h["lag"] == 0)
    await asyncio.wait_for(reconnected.wait(), 30)
    await ok(nc, "unmute_audio", {"room": ROOM, "subject": "sip:bob@example.org"})
    for who in ("alice", "bob"):
        await ok(nc, "leave", {"room": ROOM, "session": f"{who}-1"}, act_as=f"sip:{who}@example.org")
    await ok(nc, "destroy_room", {"room": ROOM})
    head = (await wait_nats(lambda h: h["connected"] and h["lag"] == 0))["head"]

    for _ in range(300):
        if len(received) >= head:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # anything extra (a duplicate) would arrive now
    seqs = [s for s, _, _ in received]
    assert seqs == list(range(1, head + 1)), f"head {head}, received {seqs}"

    types = [e["data"]["type"] for _, _, e in received]
    assert "room_create" in types and "room_delete" in types, types
    first = next(e for _, _, e in received if e["data"]["type"] == "room_create")
    assert first["specversion"] == "1.0"
    assert first["source"] == "/conclave/e2e"
    assert first["data"]["meta"]["origin"]["gateway"] == "nats"
    assert first["data"]["meta"]["actor"] == "service:e2e-bot"
    subjects = {s for _, s, _ in received}
    assert "conclave.events.room.Stand-up%20%28ops%29%20%CE%A9.room_create" in subjects
    # The HTTP part of the meeting came through with its own origin.
    assert any(e["data"]["meta"]["origin"]["gateway"] == "web" for _, _, e in received)

    await sub.unsubscribe()
    await nc.close()
