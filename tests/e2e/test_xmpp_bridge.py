"""One Conclave room, several protocols: XMPP occupants (slixmpp through a real prosody,
Conclave's XEP-0114 component `conference.localhost`) in the same rooms as HTTP
participants and SIP IM (Kamailio IMC) members, against the real binary.

- chat crosses from HTTP and SIP to XMPP and back, and is journaled with the sender's
  identity and gateway;
- moderation made on one protocol holds on the others (a kick in XMPP, a room ban over
  HTTP, a server ban, a ban of an account that links an `xmpp:` identity);
- prosody restarting mid-conversation loses nothing a sender saw acknowledged.

One prosody and one Conclave (XMPP and SIP gateways) for the module; every room is the
test's own. Waiting is for stanzas, events and health, with deadlines; never a sleep."""

import asyncio
import json
import secrets

import pytest
import requests
from websockets.asyncio.client import connect as ws_connect

from sip_support import DOMAIN as SIP_DOMAIN, RawImUser, admin, members, rest
from xmpp_support import (
    COMPONENT, MucClient, StanzaError, async_test, close_all, muc_item, start_conclave,
    status_codes, wait_xmpp_connected, xmpp_health,
)

WAIT = 10.0


@pytest.fixture(scope="module")
def bridge(conclave_bin, prosody, tmp_path_factory):
    """Conclave with its XMPP component on the module's prosody and its SIP gateway open
    to guests of its domain."""
    server = start_conclave(conclave_bin, tmp_path_factory.mktemp("conclave"), prosody,
                            args=["--sip-open-registration", "true"])
    yield server
    server.stop()


def new_room(server, label: str) -> tuple[str, str, str]:
    """A fresh public room created over HTTP by a fresh guest, its owner, with no session
    in it: (name, room JID, the owner's token)."""
    tag = secrets.token_hex(3)
    name, owner = f"{label}-{tag}", f"web:owner{tag}"
    answer = rest(server, "POST", "/rooms", json={"room": name, "as": owner}, expect=201)
    assert answer["owners"] == [owner], answer
    return name, f"{name}@{COMPONENT}", answer["token"]


async def clients(prosody, *users: str) -> list[MucClient]:
    cs = [MucClient(prosody.c2s_port, u) for u in users]
    await asyncio.gather(*(c.connect() for c in cs))
    return cs


def audit(server, room: str, event_type: str) -> list[dict]:
    page = admin(server, "GET", f"/audit?room={room}&type={event_type}&limit=10000")
    assert page["complete"], page
    return page["entries"]


def err(e: StanzaError) -> tuple[str, str, str]:
    return e.type, e.condition, e.text


def plain_presence(p) -> dict:
    """What an occupant's presence says about someone on another protocol: the item's
    attributes (no `jid` in a semi-anonymous room for a non-moderator) and the codes."""
    return {"type": p["type"] or "available", "item": muc_item(p), "codes": status_codes(p)}


async def ws_until(ws, pred, what: str) -> dict:
    """Reads the room feed until a message matching `pred`."""
    seen = []
    try:
        async with asyncio.timeout(WAIT):
            while True:
                seen.append(json.loads(await ws.recv()))
                if pred(seen[-1]):
                    return seen[-1]
    except TimeoutError:
        raise AssertionError(f"no {what} on the feed; got {seen}") from None


# ------------------------------------------------------------------ chat


@async_test
async def test_chat_crosses_between_http_and_xmpp(bridge, prosody):
    name, room, _ = new_room(bridge, "web")
    (alice,) = await clients(prosody, "alice")
    try:
        r = await alice.join(room, "alice")
        assert r.occupants == [] and {110, 170} <= r.codes

        # An HTTP participant is an occupant to XMPP, named by its identity's user part.
        dave = rest(bridge, "POST", f"/rooms/{name}/join", json={"as": "web:dave"}, expect=201)
        p = await alice.wait_presence(f"{room}/dave")
        assert plain_presence(p) == {"type": "available", "codes": set(),
                                     "item": {"role": "participant", "affiliation": "none"}}
        # A second one whose name an XMPP occupant holds: `~web` appended.
        other = rest(bridge, "POST", f"/rooms/{name}/join", json={"as": "web:alice"}, expect=201)
        await alice.wait_presence(f"{room}/alice~web")

        ws = await ws_connect(f"ws://127.0.0.1:{bridge.port}/rooms/{name}/ws",
                              additional_headers={"Authorization": f"Bearer {dave['token']}"},
                              open_timeout=WAIT)
        try:
            # HTTP -> XMPP: groupchat from room/dave, its stanza-id the journal's message id.
            sent = rest(bridge, "POST", f"/rooms/{name}/messages", dave["token"],
                        {"body": "hello from the web"}, expect=201)
            m = await alice.wait_message(f"{room}/dave", type_="groupchat",
                                         body="hello from the web")
            sid = m.xml.find("{urn:xmpp:sid:0}stanza-id")
            assert (sid.get("by"), sid.get("id")) == (room, sent["message"])

            # XMPP -> HTTP: the live feed of the web participant, then the history.
            mid = alice.send_groupchat(room, "hello from xmpp")
            mine = await alice.wait_message(f"{room}/alice", type_="groupchat",
                                            body="hello from xmpp")
            assert mine["id"] == mid
            ev = await ws_until(ws, lambda e: e["event_type"] == "chat_message"
                                and e["actor"] == "xmpp:alice@localhost", "alice's line")
            assert (ev["gateway"], ev["protocol"], ev["event"]["data"]["body"]) == \
                ("xmpp", "xmpp", "hello from xmpp")
            history = rest(bridge, "GET", f"/rooms/{name}/messages", dave["token"])["messages"]
            assert [(h["from"], h["body"]) for h in history] == [
                ("web:dave", "hello from the web"), ("xmpp:alice@localhost", "hello from xmpp")]
            assert history[1]["message"] == \
                mine.xml.find("{urn:xmpp:sid:0}stanza-id").get("id")

            # The journal names each sender by identity and gateway.
            assert [(e["actor"], e["gateway"], e["protocol"], e["event"]["data"]["body"])
                    for e in audit(bridge, name, "chat_message")] == [
                ("web:dave", "web", "http", "hello from the web"),
                ("xmpp:alice@localhost", "xmpp", "xmpp", "hello from xmpp")]

            # Leaving over HTTP: unavailable, role none, to XMPP; the feed ends (4001).
            rest(bridge, "POST", f"/rooms/{name}/leave", dave["token"], {})
            p = await alice.wait_presence(f"{room}/dave", type_="unavailable")
            assert plain_presence(p) == {"type": "unavailable", "codes": set(),
                                         "item": {"role": "none", "affiliation": "none"}}
            await ws_until(ws, lambda e: e.get("type") == "revoked", "revoked")
            async with asyncio.timeout(WAIT):
                await ws.wait_closed()
            assert ws.close_code == 4001
        finally:
            await ws.close()
        assert set(members(bridge, name)) == {"xmpp:alice@localhost", "web:alice"}
        rest(bridge, "POST", f"/rooms/{name}/leave", other["token"], {})
        await alice.wait_presence(f"{room}/alice~web", type_="unavailable")
    finally:
        await close_all([alice])


@async_test
async def test_chat_crosses_between_sip_imc_and_xmpp(bridge, prosody):
    name, room, _ = new_room(bridge, "imc")
    frank = await asyncio.to_thread(RawImUser, bridge, "frank")
    (alice,) = await clients(prosody, "alice")
    try:
        r = await asyncio.to_thread(frank.send, f"chat-{name}", "#join")
        assert r.code == 200
        await asyncio.to_thread(frank.wait_message, "*** You have joined the room")

        # The SIP member is an occupant to XMPP; the XMPP joiner is announced over SIP.
        r = await alice.join(room, "alice")
        assert [(p["from"].resource, plain_presence(p)) for p in r.occupants] == [
            ("frank", {"type": "available", "codes": set(),
                       "item": {"role": "participant", "affiliation": "none"}})]
        await asyncio.to_thread(frank.wait_message, "*** <alice@localhost> has joined the room")

        # XMPP -> SIP: one MESSAGE from the room's URI, "<sender>: text".
        alice.send_groupchat(room, "hello sip side")
        await alice.wait_message(f"{room}/alice", body="hello sip side")
        m = await asyncio.to_thread(frank.wait_message, "<alice@localhost>: hello sip side")
        assert m.header("from").startswith(f"<sip:chat-{name}@{SIP_DOMAIN}>")
        assert m.start.startswith("MESSAGE sip:frank@127.0.0.1:")

        # SIP -> XMPP: 200 once journaled, a groupchat from room/frank.
        r = await asyncio.to_thread(frank.send, f"chat-{name}", "hello xmpp side")
        assert r.code == 200
        await alice.wait_message(f"{room}/frank", type_="groupchat", body="hello xmpp side")
        # Frank never gets his own line back: a later line from alice arrives alone.
        alice.send_groupchat(room, "after you")
        await asyncio.to_thread(frank.wait_message, "<alice@localhost>: after you")
        assert [b for b in frank.bodies() if not b.startswith("***")] == [
            "<alice@localhost>: hello sip side", "<alice@localhost>: after you"]

        assert [(e["actor"], e["gateway"], e["event"]["data"]["body"])
                for e in audit(bridge, name, "chat_message")] == [
            ("xmpp:alice@localhost", "xmpp", "hello sip side"),
            ("sip:frank@localhost", "sip", "hello xmpp side"),
            ("xmpp:alice@localhost", "xmpp", "after you")]
        assert set(members(bridge, name)) == {"xmpp:alice@localhost", "sip:frank@localhost"}
    finally:
        await close_all([alice])
        frank.close()


# ------------------------------------------------------------------ moderation


@async_test
async def test_moderation_holds_across_protocols(bridge, prosody):
    name, room, owner = new_room(bridge, "mod")
    other, other_room, _ = new_room(bridge, "other")
    rest(bridge, "POST", f"/rooms/{name}/roles", owner,
         {"subject": "xmpp:alice@localhost", "role": "moderator"})
    alice, dave, bob = await clients(prosody, "alice", "dave", "bob")
    try:
        r = await alice.join(room, "alice")
        assert (r.item["role"], r.item["affiliation"]) == ("moderator", "admin")
        await dave.join(room, "dave")
        await bob.join(room, "bob")

        # A kick in XMPP is the engine's, journaled with the XMPP identity as actor.
        await alice.set_role(room, "dave", "none", reason="off topic")
        p = await dave.wait_presence(f"{room}/dave", type_="unavailable", codes={307, 110})
        assert (muc_item(p)["role"], muc_item(p)["reason"]) == ("none", "off topic")
        kicks = audit(bridge, name, "peer_kick")
        assert [(e["actor"], e["gateway"], e["protocol"], e["event"]["data"]) for e in kicks] == [
            ("xmpp:alice@localhost", "xmpp", "xmpp",
             {"room": name, "subject": "xmpp:dave@localhost", "reason": "off topic"})]
        await dave.join(room, "dave")          # a kick is not a ban

        # A room ban over HTTP by the owner's token removes the XMPP occupant (301)...
        rest(bridge, "POST", f"/rooms/{name}/bans", owner,
             {"subject": "xmpp:dave@localhost", "reason": "spam"}, expect=201)
        p = await dave.wait_presence(f"{room}/dave", type_="unavailable", codes={301, 110})
        assert muc_item(p) == {"role": "none", "affiliation": "outcast",
                               "jid": "dave@localhost/muc", "reason": "spam"}
        p = await alice.wait_presence(f"{room}/dave", type_="unavailable", codes={301})
        assert muc_item(p)["affiliation"] == "outcast"
        # ...and refuses its return.
        with pytest.raises(StanzaError) as e:
            await dave.join(room, "dave")
        assert err(e.value) == ("auth", "forbidden", "banned")
        assert await alice.affiliation_list(room, "outcast") == ["dave@localhost"]

        # A server ban (admin) removes bob from the room and keeps him out of every room,
        # an existing one and one his join would create.
        admin(bridge, "POST", "/bans", {"subject": "xmpp:bob@localhost", "reason": "abuse"},
              expect=201)
        p = await bob.wait_presence(f"{room}/bob", type_="unavailable", codes={301, 110})
        assert (muc_item(p)["affiliation"], muc_item(p)["reason"]) == ("outcast", "abuse")
        fresh = f"fresh-{secrets.token_hex(3)}"
        for target in (room, other_room, f"{fresh}@{COMPONENT}"):
            with pytest.raises(StanzaError) as e:
                await bob.join(target, "bob")
            assert err(e.value) == ("auth", "forbidden", "banned"), target
        r = requests.get(f"{bridge.url}/rooms/{fresh}", headers=bridge.admin(), timeout=10)
        assert r.status_code == 404
        denied = [(e["actor"], e["gateway"], e["event"]["data"]["reason"])
                  for e in audit(bridge, name, "join_denied")]
        assert denied == [("xmpp:dave@localhost", "xmpp", "banned"),
                          ("xmpp:bob@localhost", "xmpp", "banned")]
        assert set(members(bridge, name)) == {"xmpp:alice@localhost"}
    finally:
        await close_all([alice, dave, bob])


@async_test
async def test_a_ban_of_an_account_keeps_its_xmpp_identity_out(bridge, prosody):
    name, room, owner = new_room(bridge, "acct")
    other, other_room, other_owner = new_room(bridge, "acct2")
    admin(bridge, "POST", "/accounts", {"account": "carol", "display_name": "Carol"}, expect=201)
    for address in ("xmpp:carol@localhost", "web:carol"):
        admin(bridge, "POST", "/accounts/carol/identities", {"address": address})
    alice, carol = await clients(prosody, "alice", "carol")
    try:
        await alice.join(room, "alice")
        await carol.join(room, "carol")
        await alice.wait_presence(f"{room}/carol")
        joins = audit(bridge, name, "room_join")
        assert joins[-1]["event"]["data"]["principal"] == "account:carol"

        # Banned over HTTP by its account principal: the XMPP session ends (301)...
        rest(bridge, "POST", f"/rooms/{name}/bans", owner, {"subject": "account:carol"},
             expect=201)
        p = await carol.wait_presence(f"{room}/carol", type_="unavailable", codes={301, 110})
        assert (muc_item(p)["role"], muc_item(p)["affiliation"]) == ("none", "outcast")
        # ...and no identity of the account enters: not over XMPP, not over HTTP.
        with pytest.raises(StanzaError) as e:
            await carol.join(room, "carol")
        assert err(e.value) == ("auth", "forbidden", "banned")
        r = requests.post(f"{bridge.url}/rooms/{name}/join", headers=bridge.admin(),
                          json={"as": "web:carol"}, timeout=10)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "membership.banned")
        denied = audit(bridge, name, "join_denied")
        assert [(e["actor"], e["event"]["data"]["principal"], e["event"]["data"]["reason"])
                for e in denied] == [("xmpp:carol@localhost", "account:carol", "banned"),
                                     ("web:carol", "account:carol", "banned")]

        # A ban naming another linked identity (web:carol) is the account's too.
        ban = rest(bridge, "POST", f"/rooms/{other}/bans", other_owner,
                   {"subject": "web:carol"}, expect=201)
        assert ban["events"][0]["data"]["subject"] == "account:carol"
        with pytest.raises(StanzaError) as e:
            await carol.join(other_room, "carol")
        assert err(e.value) == ("auth", "forbidden", "banned")
    finally:
        await close_all([alice, carol])


# ------------------------------------------------------------------ prosody restart


@async_test
async def test_a_prosody_restart_loses_no_acknowledged_message(bridge, prosody):
    name, room, _ = new_room(bridge, "restart")
    senders = ("alice", "eve")
    n = 15

    def reflections(c, nick) -> list[str]:
        return [m["body"] for m in c.seen(lambda m: m.name == "message" and m["body"]
                                          and str(m["from"]) == f"{room}/{nick}")]

    async def exchange(cs, label: str, count: int) -> dict[str, list[str]]:
        """Each sends `count` lines at once; returns, per sender, the reflections of
        its own lines it got (what the room acknowledged), in arrival order, having
        checked that the other got the same lines in the same order."""
        sent = {c.user: [f"{c.user} {label} {i}" for i in range(count)] for c in cs}
        for i in range(count):
            for c in cs:
                c.send_groupchat(room, sent[c.user][i])
        got = {}
        for c in cs:
            for o in cs:
                last = await c.wait_message(f"{room}/{o.user}", body=sent[o.user][-1],
                                            timeout=WAIT)
                got[c.user, o.user] = reflections(c, o.user) + [last["body"]]
        assert got == {(c.user, o.user): sent[o.user] for c in cs for o in cs}
        return {c.user: got[c.user, c.user] for c in cs}

    old = await clients(prosody, *senders)
    new = []
    try:
        for c in old:
            await c.join(room, c.user)
        dave = rest(bridge, "POST", f"/rooms/{name}/join", json={"as": "web:dave"}, expect=201)
        for c in old:
            await c.wait_presence(f"{room}/dave")
        before = await exchange(old, "before", n)

        # A second burst, and prosody stops once the first line of it is reflected: the
        # rest is in flight. The web participant speaks while prosody is down.
        burst = {u: [f"{u} burst {i}" for i in range(n)] for u in senders}
        for i in range(n):
            for c in old:
                c.send_groupchat(room, burst[c.user][i])
        await old[0].wait_message(f"{room}/{senders[0]}", body=burst[senders[0]][0])
        reconnects = xmpp_health(bridge)["reconnects"]
        prosody.stop()
        for c in old:
            await c.wait_disconnected()
        acked = {c.user: [b for b in reflections(c, c.user) if " burst " in b] for c in old}
        acked[senders[0]].insert(0, burst[senders[0]][0])
        await asyncio.to_thread(wait_xmpp_connected, bridge, False)
        rest(bridge, "POST", f"/rooms/{name}/messages", dave["token"], {"body": "while down"},
             expect=201)
        prosody.start()
        h = await asyncio.to_thread(wait_xmpp_connected, bridge, True)
        assert h["reconnects"] > reconnects and h["state"] == "connected"

        # New sessions rejoin: the web participant is still there, its line in the
        # history; and the chat works again.
        new = await clients(prosody, *senders)
        for i, c in enumerate(new):
            r = await c.join(room, c.user, maxstanzas=1)
            assert {110, 170} <= r.codes
            assert sorted(o["from"].resource for o in r.occupants) == sorted(["dave", *senders[:i]])
            assert [(m["from"].resource, m["body"]) for m in r.history] == [("dave", "while down")]
        after = await exchange(new, "after", 3)

        # The journal: every line acknowledged before the stop, each once and in order;
        # of the burst, a prefix holding at least what was acknowledged (what was in
        # flight may or may not have reached the component); then what came after.
        lines = [(e["actor"], e["event"]["data"]["body"])
                 for e in audit(bridge, name, "chat_message")]
        for u in senders:
            mine = [b for a, b in lines if a == f"xmpp:{u}@localhost"]
            assert mine[:n] == before[u] and mine[-3:] == after[u], mine
            journaled_burst = mine[n:-3]
            assert journaled_burst == burst[u][:len(journaled_burst)], mine
            assert acked[u] == burst[u][:len(acked[u])], acked[u]
            assert len(acked[u]) <= len(journaled_burst), (acked[u], mine)
        assert [b for a, b in lines if a == "web:dave"] == ["while down"]
    finally:
        await close_all(old + new)
