"""Multi-user chat (XEP-0045) end to end, with real clients (slixmpp) through a real
prosody, against two services held to the same tests:

- `muc.localhost`: prosody's built-in MUC, the reference. Every test passes there,
  which shows the test can pass; each asserts the protocol's codes and conditions, so
  it can fail.
- `conference.localhost`: Conclave's XEP-0114 component serving Conclave rooms.

Tests wait for stanzas, never for a fixed time; "did not arrive" is shown with a
barrier (a later stanza on the same path arrived first).
"""

import asyncio
import contextlib
import secrets
from datetime import datetime, timezone

import pytest

from xmpp_support import (
    COMPONENT, HAS_MUC_MAM, NS_MAM, NS_MUC_USER, NS_ROOMCONFIG, PROSODY_MUC, MucClient,
    Prosody, StanzaError, async_test, close_all, delay_stamp, muc_item, muc_user_x,
    start_conclave, status_codes,
)

CONFIG = "muc#roomconfig_"


class Service:
    def __init__(self, domain: str, prosody: Prosody, server=None):
        self.domain = domain
        self.prosody = prosody
        self.server = server

    @property
    def c2s_port(self) -> int:
        return self.prosody.c2s_port

    @property
    def is_prosody(self) -> bool:
        return self.domain == PROSODY_MUC

    def room(self, label: str) -> str:
        """A fresh room JID (rooms are never shared between tests)."""
        return f"{label}-{secrets.token_hex(4)}@{self.domain}"

    @contextlib.asynccontextmanager
    async def clients(self, *users: str):
        cs = [MucClient(self.c2s_port, u) for u in users]
        try:
            await asyncio.gather(*(c.connect() for c in cs))
            yield cs
        finally:
            await close_all(cs)


@pytest.fixture(scope="module", params=[
    pytest.param(PROSODY_MUC, id="prosody"),
    pytest.param(COMPONENT, id="conclave"),
])
def muc_service(request, prosody, tmp_path_factory):
    if request.param == PROSODY_MUC:
        yield Service(PROSODY_MUC, prosody)
        return
    conclave_bin = request.getfixturevalue("conclave_bin")
    server = start_conclave(conclave_bin, tmp_path_factory.mktemp("conclave"), prosody)
    try:
        yield Service(COMPONENT, prosody, server)
    finally:
        server.stop()


async def create_room(owner: MucClient, room: str, nick: str, config: dict | None = None,
                      optional=()) -> None:
    """Creates `room` by joining it (§10.1.1), then unlocks it: the instant room
    (§10.1.2), or the configuration form filled with `config` (§10.1.3)."""
    r = await owner.join(room, nick, until_subject=False)
    assert {110, 201} <= r.codes, r.self_presence
    if config:
        await owner.configure(room, config, optional=optional)
    else:
        await owner.submit_instant(room)


async def barrier(sender: MucClient, room: str, *receivers: MucClient) -> None:
    """A groupchat message from `sender` that every receiver has got: what the room
    sent them before it has arrived too."""
    body = f"barrier {secrets.token_hex(4)}"
    sender.send_groupchat(room, body)
    for r in receivers:
        await r.wait_message(room, type_="groupchat", body=body)


def err(e: StanzaError) -> tuple[str, str]:
    return e.type, e.condition


def parse_stamp(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


# ------------------------------------------------------------------ creation

@async_test
async def test_joining_a_new_room_creates_it_with_the_joiner_as_owner(muc_service):
    room = muc_service.room("create")
    async with muc_service.clients("alice") as (alice,):
        r = await alice.join(room, "alice", until_subject=False)
        # §10.1.1: 201 room created, 110 self-presence; owner and moderator.
        assert {110, 201} <= r.codes
        assert r.item["affiliation"] == "owner"
        assert r.item["role"] == "moderator"
        assert r.self_presence["from"].resource == "alice"


@async_test
async def test_a_new_room_is_locked_until_the_owner_accepts_the_instant_room(muc_service):
    room = muc_service.room("locked")
    async with muc_service.clients("alice", "bob") as (alice, bob):
        r = await alice.join(room, "alice", until_subject=False)
        assert 201 in r.codes
        # §10.1.1: nobody else may enter before the room is configured.
        with pytest.raises(StanzaError) as e:
            await bob.join(room, "bob")
        assert err(e.value) == ("cancel", "item-not-found")
        # §10.1.2: an empty submit form accepts the defaults and unlocks the room.
        await alice.submit_instant(room)
        r = await bob.join(room, "bob")
        assert 110 in r.codes and 201 not in r.codes
        assert r.item["affiliation"] == "none" and r.item["role"] == "participant"
        await alice.wait_presence(f"{room}/bob")


# ------------------------------------------------------------------ configuration

@async_test
async def test_the_configuration_form_names_and_shapes_the_room(muc_service):
    room = muc_service.room("config")
    async with muc_service.clients("alice") as (alice,):
        await alice.join(room, "alice", until_subject=False)
        form = await alice.config_form(room)
        fields = form.get_fields()
        form_type = fields["FORM_TYPE"]["value"]
        assert form_type in (NS_ROOMCONFIG, [NS_ROOMCONFIG])
        for var in ("roomname", "membersonly", "roomsecret", "moderatedroom", "whois",
                    "changesubject", "persistentroom"):
            assert CONFIG + var in fields, sorted(fields)
        await alice.configure(room, {
            CONFIG + "roomname": "Design review",
            CONFIG + "moderatedroom": True,
            CONFIG + "whois": "anyone",
            CONFIG + "membersonly": True,
            CONFIG + "passwordprotectedroom": True,
            CONFIG + "roomsecret": "s3cret",
        }, optional={CONFIG + "passwordprotectedroom"})
        info = await alice.disco_info(room)
        assert ("conference", "text", "Design review") in info["identities"]
        features = info["features"]
        assert "http://jabber.org/protocol/muc" in features
        assert {"muc_moderated", "muc_nonanonymous", "muc_membersonly",
                "muc_passwordprotected"} <= features
        assert not {"muc_unmoderated", "muc_semianonymous", "muc_open", "muc_unsecured"} & features
        # §10.2.1: the change is announced; 172: the room is now non-anonymous.
        m = await alice.wait_message(room, type_="groupchat",
                                     pred=lambda m: 172 in status_codes(m))
        assert not m["body"]

        # Back to an open, unmoderated, passwordless room.
        await alice.configure(room, {
            CONFIG + "moderatedroom": False,
            CONFIG + "membersonly": False,
            CONFIG + "passwordprotectedroom": False,
            CONFIG + "roomsecret": "",
        }, optional={CONFIG + "passwordprotectedroom"})
        features = (await alice.disco_info(room))["features"]
        assert {"muc_unmoderated", "muc_open", "muc_unsecured"} <= features


@async_test
async def test_a_non_owner_may_neither_read_nor_submit_the_configuration(muc_service):
    room = muc_service.room("notowner")
    async with muc_service.clients("alice", "bob") as (alice, bob):
        await create_room(alice, room, "alice")
        await bob.join(room, "bob")
        with pytest.raises(StanzaError) as e:
            await bob.config_form(room)
        assert err(e.value) == ("auth", "forbidden")
        with pytest.raises(StanzaError) as e:
            await bob.submit_instant(room)
        assert err(e.value) == ("auth", "forbidden")
        # Nor moderate: a participant kicking the owner.
        with pytest.raises(StanzaError) as e:
            await bob.set_role(room, "alice", "none")
        assert e.value.condition in ("forbidden", "not-allowed")


# ------------------------------------------------------------------ entering

@async_test
async def test_a_password_protected_room_wants_the_right_password(muc_service):
    room = muc_service.room("secret")
    async with muc_service.clients("alice", "bob") as (alice, bob):
        await create_room(alice, room, "alice", {
            CONFIG + "passwordprotectedroom": True,
            CONFIG + "roomsecret": "open sesame",
        }, optional={CONFIG + "passwordprotectedroom"})
        # §7.2.6: no password or a wrong one: not-authorized (auth).
        for attempt in (None, "open barley"):
            with pytest.raises(StanzaError) as e:
                await bob.join(room, "bob", password=attempt)
            assert err(e.value) == ("auth", "not-authorized"), attempt
        r = await bob.join(room, "bob", password="open sesame")
        assert 110 in r.codes


@async_test
async def test_a_members_only_room_refuses_strangers_and_admits_members(muc_service):
    room = muc_service.room("members")
    async with muc_service.clients("alice", "carol") as (alice, carol):
        await create_room(alice, room, "alice", {CONFIG + "membersonly": True})
        # §7.2.7: registration-required (auth).
        with pytest.raises(StanzaError) as e:
            await carol.join(room, "carol")
        assert err(e.value) == ("auth", "registration-required")
        # §9.3: the admin grants membership; the member list shows it.
        await alice.set_affiliation(room, "carol@localhost", "member")
        assert await alice.affiliation_list(room, "member") == ["carol@localhost"]
        assert "alice@localhost" in await alice.affiliation_list(room, "owner")
        r = await carol.join(room, "carol")
        assert r.item["affiliation"] == "member" and r.item["role"] == "participant"


@async_test
async def test_occupants_are_announced_before_the_joiner_own_presence(muc_service):
    room = muc_service.room("roster")
    async with muc_service.clients("alice", "bob", "carol") as (alice, bob, carol):
        await create_room(alice, room, "alice")
        await bob.join(room, "bob")
        r = await carol.join(room, "carol")
        # §7.2.3: every other occupant first, then our own presence (110), then the
        # history (none here), then the subject.
        assert [kind for kind, _ in r.order] == ["occupant", "occupant", "self", "subject"]
        assert sorted(p["from"].resource for p in r.occupants) == ["alice", "bob"]
        assert all(110 not in status_codes(p) for p in r.occupants)
        roles = {p["from"].resource: muc_item(p)["role"] for p in r.occupants}
        assert roles == {"alice": "moderator", "bob": "participant"}
        # The others see carol arrive, without 110.
        for c in (alice, bob):
            p = await c.wait_presence(f"{room}/carol")
            assert 110 not in status_codes(p)


@async_test
async def test_a_taken_nickname_is_a_conflict(muc_service):
    room = muc_service.room("conflict")
    async with muc_service.clients("alice", "bob") as (alice, bob):
        await create_room(alice, room, "alice")
        with pytest.raises(StanzaError) as e:
            await bob.join(room, "alice")
        assert err(e.value) == ("cancel", "conflict")


@async_test
async def test_changing_nickname_is_unavailable_303_then_the_new_nick(muc_service):
    room = muc_service.room("nick")
    async with muc_service.clients("alice", "bob") as (alice, bob):
        await create_room(alice, room, "alice")
        await bob.join(room, "bob")
        await alice.wait_presence(f"{room}/bob")
        await bob.change_nick(room, "robert")
        # §7.6: unavailable from the old nick with 303 and the new nick, then available
        # from the new one; 110 on bob's own copies.
        old = await bob.wait_presence(f"{room}/bob", type_="unavailable", codes={303, 110})
        assert muc_item(old)["nick"] == "robert"
        await bob.wait_presence(f"{room}/robert", codes={110})
        old = await alice.wait_presence(f"{room}/bob", type_="unavailable", codes={303})
        assert muc_item(old)["nick"] == "robert" and 110 not in status_codes(old)
        await alice.wait_presence(f"{room}/robert")
        # The new nick speaks as robert.
        bob.send_groupchat(room, "now robert")
        await alice.wait_message(f"{room}/robert", type_="groupchat", body="now robert")


# ------------------------------------------------------------------ messages

@async_test
async def test_history_comes_with_delay_stamps_then_the_subject(muc_service):
    room = muc_service.room("history")
    async with muc_service.clients("alice", "bob", "carol") as (alice, bob, carol):
        await create_room(alice, room, "alice")
        before = datetime.now(timezone.utc).replace(microsecond=0)
        for i in range(3):
            alice.send_groupchat(room, f"earlier {i}")
        alice.set_subject(room, "Agenda")
        await alice.wait_message(f"{room}/alice", pred=lambda m: m["subject"] == "Agenda")
        # §7.2.15: the history, oldest first, each with a delay stamp (XEP-0203),
        # from the nick that sent it; then the current subject.
        r = await bob.join(room, "bob")
        assert [m["body"] for m in r.history] == ["earlier 0", "earlier 1", "earlier 2"]
        for m in r.history:
            assert m["from"].resource == "alice"
            stamp = delay_stamp(m)
            assert stamp, m
            assert before <= parse_stamp(stamp) <= datetime.now(timezone.utc)
        assert r.subject["subject"] == "Agenda"
        assert r.subject["from"].resource == "alice"
        assert r.order[-1][0] == "subject"
        # §7.2.14: history limited by the joiner (maxstanzas).
        r = await carol.join(room, "carol", maxstanzas=1)
        assert [m["body"] for m in r.history] == ["earlier 2"]


@async_test
async def test_groupchat_is_reflected_to_the_sender_with_its_id(muc_service):
    room = muc_service.room("reflect")
    async with muc_service.clients("alice", "bob") as (alice, bob):
        await create_room(alice, room, "alice")
        await bob.join(room, "bob")
        mid = f"m-{secrets.token_hex(6)}"
        alice.send_groupchat(room, "hello room", id_=mid)
        # §7.4: to every occupant, the sender included, from room/nick, same id.
        for c in (alice, bob):
            m = await c.wait_message(f"{room}/alice", type_="groupchat", body="hello room")
            assert m["id"] == mid


@async_test
async def test_a_moderator_changes_the_subject_a_participant_may_not(muc_service):
    room = muc_service.room("subject")
    async with muc_service.clients("alice", "bob") as (alice, bob):
        await create_room(alice, room, "alice", {CONFIG + "changesubject": False})
        await bob.join(room, "bob")
        alice.set_subject(room, "Quarterly numbers")
        for c in (alice, bob):
            m = await c.wait_message(f"{room}/alice", type_="groupchat",
                                     pred=lambda m: m["subject"] == "Quarterly numbers")
            assert not m["body"]
        # §8.1: a participant is refused when occupants may not change the subject.
        bob.set_subject(room, "Bob's topic")
        e = await bob.wait_error(room)
        assert err(e) == ("auth", "forbidden")
        await barrier(bob, room, alice)
        assert not alice.seen(lambda m: m.name == "message" and m["subject"] == "Bob's topic")


@async_test
async def test_a_private_message_reaches_only_its_target(muc_service):
    room = muc_service.room("private")
    async with muc_service.clients("alice", "bob", "carol") as (alice, bob, carol):
        await create_room(alice, room, "alice")
        await bob.join(room, "bob")
        await carol.join(room, "carol")
        alice.send_private(room, "bob", "just for bob")
        # §7.5: from the sender's room JID, type chat, to the target only.
        m = await bob.wait_message(f"{room}/alice", body="just for bob")
        assert m["type"] == "chat"
        await barrier(alice, room, carol)
        assert not carol.seen(lambda m: m.name == "message" and m["body"] == "just for bob")
        # To a nick that is not there: item-not-found.
        alice.send_private(room, "nobody", "hello?")
        e = await alice.wait_error(f"{room}/nobody")
        assert e.condition == "item-not-found"


# ------------------------------------------------------------------ moderation

@async_test
async def test_kick_is_307_and_role_none(muc_service):
    room = muc_service.room("kick")
    async with muc_service.clients("alice", "bob", "carol") as (alice, bob, carol):
        await create_room(alice, room, "alice")
        await bob.join(room, "bob")
        await carol.join(room, "carol")
        await alice.set_role(room, "bob", "none", reason="too loud")
        # §8.2: the kicked occupant gets unavailable with 307 (and 110), role none.
        p = await bob.wait_presence(f"{room}/bob", type_="unavailable", codes={307, 110})
        assert muc_item(p)["role"] == "none"
        assert muc_item(p).get("reason") == "too loud"
        for c in (alice, carol):
            p = await c.wait_presence(f"{room}/bob", type_="unavailable", codes={307})
            assert muc_item(p)["role"] == "none"
        # A kick is not a ban: bob may come back.
        r = await bob.join(room, "bob")
        assert 110 in r.codes


@async_test
async def test_ban_is_301_outcast_and_refuses_the_return(muc_service):
    room = muc_service.room("ban")
    async with muc_service.clients("alice", "bob") as (alice, bob):
        await create_room(alice, room, "alice")
        await bob.join(room, "bob")
        await alice.set_affiliation(room, "bob@localhost", "outcast", reason="spam")
        # §9.1: unavailable with 301, affiliation outcast, role none.
        p = await bob.wait_presence(f"{room}/bob", type_="unavailable", codes={301, 110})
        assert muc_item(p)["affiliation"] == "outcast" and muc_item(p)["role"] == "none"
        assert muc_item(p).get("reason") == "spam"
        p = await alice.wait_presence(f"{room}/bob", type_="unavailable", codes={301})
        assert muc_item(p)["affiliation"] == "outcast"
        assert await alice.affiliation_list(room, "outcast") == ["bob@localhost"]
        # §7.2.8: a banned user is refused with forbidden (auth).
        with pytest.raises(StanzaError) as e:
            await bob.join(room, "bob")
        assert err(e.value) == ("auth", "forbidden")


@async_test
async def test_a_visitor_in_a_moderated_room_speaks_only_after_voice(muc_service):
    room = muc_service.room("voice")
    async with muc_service.clients("alice", "bob") as (alice, bob):
        await create_room(alice, room, "alice", {CONFIG + "moderatedroom": True})
        r = await bob.join(room, "bob")
        assert r.item["role"] == "visitor"
        assert await alice.role_list(room, "visitor") == ["bob"]
        # §7.4: a visitor's groupchat is refused with forbidden and reaches nobody.
        bob.send_groupchat(room, "may I?")
        e = await bob.wait_error(room)
        assert e.condition == "forbidden"
        await barrier(alice, room, alice)
        assert not alice.seen(lambda m: m.name == "message" and m["body"] == "may I?")
        # §8.3: the moderator grants voice: role participant, announced to everyone.
        await alice.set_role(room, "bob", "participant")
        for c in (alice, bob):
            await c.wait_presence(f"{room}/bob", pred=lambda p: muc_item(p).get("role") == "participant")
        bob.send_groupchat(room, "thank you")
        await alice.wait_message(f"{room}/bob", type_="groupchat", body="thank you")


@async_test
async def test_a_mediated_invitation_reaches_the_invitee_and_the_decline_the_inviter(muc_service):
    room = muc_service.room("invite")
    async with muc_service.clients("alice", "dave") as (alice, dave):
        await create_room(alice, room, "alice")
        alice.invite(room, "dave@localhost", reason="come and see")
        # §7.8.2: the room sends the invitee a message from the room's bare JID.
        m = await dave.wait_message(room, pred=lambda m: muc_user_x(m) is not None
                                    and muc_user_x(m).find(f"{{{NS_MUC_USER}}}invite") is not None)
        inv = muc_user_x(m).find(f"{{{NS_MUC_USER}}}invite")
        inviter = inv.get("from")
        # The inviter's real JID; in a semi-anonymous room (the default, whois
        # moderators) a room may give her occupant JID instead, as prosody does.
        assert inviter.split("/")[0] == "alice@localhost" or inviter == f"{room}/alice", inviter
        assert inv.findtext(f"{{{NS_MUC_USER}}}reason") == "come and see"
        # §7.8.2 (decline): through the room, back to the inviter.
        dave.decline(room, inviter, reason="busy")
        m = await alice.wait_message(room, pred=lambda m: muc_user_x(m) is not None
                                     and muc_user_x(m).find(f"{{{NS_MUC_USER}}}decline") is not None)
        dec = muc_user_x(m).find(f"{{{NS_MUC_USER}}}decline")
        assert dec.get("from").split("/")[0] == "dave@localhost"
        assert dec.findtext(f"{{{NS_MUC_USER}}}reason") == "busy"


@async_test
async def test_the_room_archive_answers_a_mam_query(muc_service):
    if muc_service.is_prosody and not HAS_MUC_MAM:
        pytest.skip("this prosody has no mod_muc_mam")
    room = muc_service.room("archive")
    async with muc_service.clients("alice", "bob") as (alice, bob):
        await create_room(alice, room, "alice")
        await bob.join(room, "bob")
        assert NS_MAM in (await alice.disco_info(room))["features"]
        for i in range(3):
            alice.send_groupchat(room, f"archived {i}")
        await bob.wait_message(f"{room}/alice", body="archived 2")
        bob.send_groupchat(room, "archived by bob")
        await alice.wait_message(f"{room}/bob", body="archived by bob")
        # XEP-0313 §4: results oldest first, each forwarded with its delay stamp.
        results = await bob.mam_query(room)
        bodies = [(r["stanza"]["from"].resource, r["stanza"]["body"]) for r in results
                  if r["stanza"]["body"]]
        assert bodies == [("alice", "archived 0"), ("alice", "archived 1"),
                          ("alice", "archived 2"), ("bob", "archived by bob")]
        assert all(r["stamp"] and r["id"] for r in results)


@async_test
async def test_destroying_a_room_tells_occupants_the_reason_and_the_new_venue(muc_service):
    room = muc_service.room("doomed")
    venue = muc_service.room("venue")
    async with muc_service.clients("alice", "bob") as (alice, bob):
        await create_room(alice, room, "alice")
        await bob.join(room, "bob")
        # Only the owner may destroy.
        with pytest.raises(StanzaError) as e:
            await bob.destroy(room, "mine now")
        assert err(e.value) == ("auth", "forbidden")
        await alice.destroy(room, reason="moving on", altroom=venue)
        # §10.9: every occupant gets unavailable with <destroy jid=…><reason/>.
        for c, nick in ((bob, "bob"), (alice, "alice")):
            p = await c.wait_presence(f"{room}/{nick}", type_="unavailable")
            d = muc_user_x(p).find(f"{{{NS_MUC_USER}}}destroy")
            assert d is not None, p
            assert d.get("jid") == venue
            assert d.findtext(f"{{{NS_MUC_USER}}}reason") == "moving on"
            assert muc_item(p)["role"] == "none"
            # The example (§10.9, 206) says affiliation none; prosody keeps the owner's
            # "owner" on her own copy. Both pass for the owner; bob's must be none.
            assert muc_item(p)["affiliation"] in (("none",) if nick == "bob" else ("none", "owner"))
