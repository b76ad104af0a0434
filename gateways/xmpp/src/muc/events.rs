//! The engine's committed events as XEP-0045 stanzas to the room's XMPP occupants:
//! whatever protocol a change came through, XMPP clients see it the same way.

use conclave_engine::event::{EventKind, LeaveReason};
use conclave_engine::ids::{Principal, RoomName, Scheme};
use conclave_engine::{Actor, BanScope, Event, RoomChange};

use super::stanzas::{self, status, ItemView, NS_MUC_USER};
use super::{join, roster, Ctx, Muc};
use crate::core::NS_COMPONENT;
use crate::xml::Element;

/// One committed event.
pub fn event(muc: &mut Muc, e: &Event, corr: Option<&str>, cx: &Ctx<'_>) {
    match &e.kind {
        EventKind::Joined {
            room,
            principal,
            session,
            gateway,
            ..
        } => {
            if join::joined(muc, room, session, cx) {
                return;
            }
            if gateway != "xmpp" && muc.occupants.room(room).is_some() {
                announce_other(muc, room, principal, cx);
            }
        }
        EventKind::Left {
            room,
            principal,
            session,
            reason,
        } => {
            let jid = muc
                .occupants
                .room(room)
                .and_then(|r| r.by_session(session))
                .map(|o| o.jid.clone());
            match jid {
                Some(jid) => {
                    let codes: &[u16] = match reason {
                        LeaveReason::Left => &[],
                        LeaveReason::GatewayRestarted => &[status::SHUTDOWN],
                        LeaveReason::Disconnected | LeaveReason::LeaseExpired => {
                            &[status::TECHNICAL]
                        }
                    };
                    join::gone(muc, room, &jid, codes, None, cx);
                }
                None => other_left(muc, room, principal, &[], None, cx),
            }
        }
        EventKind::Kicked {
            room,
            subject,
            reason,
        } => {
            let actor = actor_nick(muc, room, &e.actor, cx);
            remove_person(
                muc,
                room,
                subject,
                status::KICKED,
                "none",
                reason.as_deref(),
                actor.as_deref(),
                cx,
            );
        }
        EventKind::Banned {
            scope,
            subject,
            reason,
            ..
        } => {
            for room in rooms_in(muc, scope, cx) {
                let actor = actor_nick(muc, &room, &e.actor, cx);
                remove_person(
                    muc,
                    &room,
                    subject,
                    status::BANNED,
                    "outcast",
                    reason.as_deref(),
                    actor.as_deref(),
                    cx,
                );
            }
        }
        EventKind::RoleChanged { room, subject, .. } => {
            let theirs: Vec<super::occupants::Occupant> = muc
                .occupants
                .room(room)
                .map(|r| {
                    r.iter()
                        .filter(|o| &cx.state.principal_of(&o.address) == subject)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            for o in theirs {
                roster::broadcast_presence(muc, room, &o, cx);
            }
            let other = muc.others.get(room).and_then(|o| o.get(subject)).cloned();
            if let Some(nick) = other {
                send_other_presence(muc, room, subject, &nick, cx);
            }
        }
        EventKind::MessagePosted {
            room,
            message,
            address,
            body: Some(body),
            ..
        } => {
            if muc.occupants.room(room).is_none() {
                return;
            }
            let id = muc
                .take_note(corr)
                .unwrap_or_else(|| message.as_str().to_owned());
            let nick = roster::nick_of(muc, room, address, cx);
            let from = muc.occupant_jid(room, &nick);
            let room_jid = muc.room_jid(room);
            let to: Vec<String> = occupant_jids(muc, room);
            for t in to {
                muc.send(
                    stanzas::groupchat(&from, &t, Some(&id))
                        .child(stanzas::body(body))
                        .child(
                            Element::new("stanza-id", stanzas::NS_SID)
                                .attr("id", message.as_str())
                                .attr("by", &room_jid),
                        ),
                );
            }
        }
        EventKind::HandRaised { room, subject } => {
            super::voice::hand_raised(muc, room, subject, cx);
        }
        EventKind::SubjectChanged { room, .. } => {
            for t in occupant_jids(muc, room) {
                let m = roster::subject_message(muc, room, &t, cx);
                muc.send(m);
            }
        }
        EventKind::RoomModified { room, change } => {
            config_notice(muc, room, change, corr);
        }
        EventKind::RecordingStarted { room, .. } => {
            room_notice(muc, room, "This room is being recorded.");
        }
        EventKind::RecordingStopped { room, .. } => {
            room_notice(muc, room, "The recording has stopped.");
        }
        EventKind::RoomDeleted { room, .. } | EventKind::RoomExpired { room, .. } => {
            destroyed(muc, room);
        }
        EventKind::InvitationIssued {
            room,
            invitee,
            invitation,
            ..
        } => {
            let Some(to) = super::jid::address_jid(invitee) else {
                return;
            };
            if invitee.scheme() != Scheme::Xmpp {
                return;
            }
            let inviter = match &e.actor {
                Actor::Identity(a) => super::jid::address_jid(a),
                _ => None,
            };
            let mut inv = Element::new("invite", NS_MUC_USER);
            if let Some(f) = inviter {
                inv.set_attr("from", &f);
            }
            if let Some(reason) = muc.take_note(corr) {
                inv = inv.child(Element::new("reason", NS_MUC_USER).text(&reason));
            }
            let room_jid = muc.room_jid(room);
            muc.send(
                Element::new("message", NS_COMPONENT)
                    .attr("from", &room_jid)
                    .attr("to", &to)
                    .attr("id", invitation.as_str())
                    .child(Element::new("x", NS_MUC_USER).child(inv))
                    .child(Element::new("x", "jabber:x:conference").attr("jid", &room_jid)),
            );
        }
        EventKind::InvitationAnswered {
            room,
            invitation,
            accepted: false,
            by,
        } => {
            let inviter = cx
                .state
                .rooms
                .get(room)
                .and_then(|r| r.invitations.get(invitation))
                .and_then(|inv| match &inv.by {
                    Actor::Identity(a) => super::jid::address_jid(a),
                    _ => None,
                });
            let Some(to) = inviter else {
                return;
            };
            let mut decline = Element::new("decline", NS_MUC_USER);
            if let Principal::Address(a) = by {
                if let Some(j) = super::jid::address_jid(a) {
                    decline.set_attr("from", &j);
                }
            }
            if let Some(reason) = muc.take_note(corr) {
                decline = decline.child(Element::new("reason", NS_MUC_USER).text(&reason));
            }
            let room_jid = muc.room_jid(room);
            muc.send(
                Element::new("message", NS_COMPONENT)
                    .attr("from", &room_jid)
                    .attr("to", &to)
                    .child(Element::new("x", NS_MUC_USER).child(decline)),
            );
        }
        _ => {}
    }
}

/// XEP-0045 §10.2.1: occupants are told the configuration changed (104), and that
/// the room became non-anonymous (172) or semi-anonymous (173). One configuration is
/// several events (one per change) with one correlation id: each code is sent once for
/// it. Locking and unlocking are not configuration changes to XMPP clients.
fn config_notice(muc: &mut Muc, room: &RoomName, change: &RoomChange, corr: Option<&str>) {
    let code = match change {
        RoomChange::Locked(_) => return,
        RoomChange::PublicAddresses(true) => 172,
        RoomChange::PublicAddresses(false) => 173,
        _ => 104,
    };
    let key = (room.clone(), corr.unwrap_or_default().to_owned());
    match &mut muc.notices {
        Some((k, sent)) if *k == key => {
            if !sent.insert(code) {
                return;
            }
        }
        slot => *slot = Some((key, std::iter::once(code).collect())),
    }
    let status = Element::new("x", NS_MUC_USER)
        .child(Element::new("status", NS_MUC_USER).attr("code", &code.to_string()));
    from_the_room(muc, room, &status);
}

/// A message from the room itself (its bare JID, no nickname), as XEP-0045 rooms send
/// what concerns everyone: XEP-0045 has no status code for a recording (170 is about
/// the room's logs), so Jibri's "this meeting is being recorded" becomes a line of text.
fn room_notice(muc: &mut Muc, room: &RoomName, text: &str) {
    from_the_room(muc, room, &Element::new("body", NS_COMPONENT).text(text));
}

/// A groupchat message from the room's bare JID to each of its occupants.
fn from_the_room(muc: &mut Muc, room: &RoomName, payload: &Element) {
    let room_jid = muc.room_jid(room);
    for t in occupant_jids(muc, room) {
        muc.send(
            Element::new("message", NS_COMPONENT)
                .attr("type", "groupchat")
                .attr("from", &room_jid)
                .attr("to", &t)
                .child(payload.clone()),
        );
    }
}

fn occupant_jids(muc: &Muc, room: &RoomName) -> Vec<String> {
    muc.occupants
        .room(room)
        .map(|r| r.iter().map(|o| o.jid.clone()).collect())
        .unwrap_or_default()
}

/// The rooms with XMPP occupants a ban's scope covers.
fn rooms_in(muc: &Muc, scope: &BanScope, cx: &Ctx<'_>) -> Vec<RoomName> {
    muc.occupants
        .rooms()
        .map(|(n, _)| n.clone())
        .filter(|n| match scope {
            BanScope::Room(r) => r == n,
            BanScope::Server => true,
            BanScope::Account(a) => cx
                .state
                .rooms
                .get(n)
                .is_some_and(|r| r.account.as_ref() == Some(a)),
        })
        .collect()
}

/// The nickname of who acted, when they are in the room.
fn actor_nick(muc: &Muc, room: &RoomName, actor: &Actor, cx: &Ctx<'_>) -> Option<String> {
    match actor {
        Actor::Identity(a) => Some(roster::nick_of(muc, room, a, cx)),
        _ => None,
    }
}

/// A person removed from a room (kick, ban): every one of their XMPP occupants and
/// their occupant on other protocols leave with `code`.
#[allow(clippy::too_many_arguments)]
fn remove_person(
    muc: &mut Muc,
    room: &RoomName,
    subject: &Principal,
    code: u16,
    affiliation: &str,
    reason: Option<&str>,
    actor: Option<&str>,
    cx: &Ctx<'_>,
) {
    let jids: Vec<String> = muc
        .occupants
        .room(room)
        .map(|r| {
            r.iter()
                .filter(|o| &cx.state.principal_of(&o.address) == subject)
                .map(|o| o.jid.clone())
                .collect()
        })
        .unwrap_or_default();
    for jid in jids {
        let _ = actor;
        join::gone(
            muc,
            room,
            &jid,
            &[code],
            Some((affiliation, "none", reason)),
            cx,
        );
    }
    other_left(muc, room, subject, &[code], Some((affiliation, reason)), cx);
}

/// A person on another protocol entered: shown once, whatever their session count.
fn announce_other(muc: &mut Muc, room: &RoomName, p: &Principal, cx: &Ctx<'_>) {
    if muc.others.get(room).is_some_and(|o| o.contains_key(p)) {
        return;
    }
    roster::refresh_others(muc, room, cx);
    let Some(nick) = muc.others.get(room).and_then(|o| o.get(p)).cloned() else {
        return;
    };
    send_other_presence(muc, room, p, &nick, cx);
}

fn send_other_presence(muc: &mut Muc, room: &RoomName, p: &Principal, nick: &str, cx: &Ctx<'_>) {
    for t in occupant_jids(muc, room) {
        if let Some(el) = roster::other_presence(muc, cx, room, p, nick, &t) {
            muc.send(el);
        }
    }
}

/// A person on another protocol is no longer present (or was removed): unavailable.
fn other_left(
    muc: &mut Muc,
    room: &RoomName,
    p: &Principal,
    codes: &[u16],
    item: Option<(&str, Option<&str>)>,
    cx: &Ctx<'_>,
) {
    let still = cx
        .state
        .rooms
        .get(room)
        .and_then(|r| r.members.get(p))
        .is_some_and(|m| {
            m.sessions
                .values()
                .any(|s| s.gateway != "xmpp" || s.address.scheme() != Scheme::Xmpp)
        });
    if still && item.is_none() {
        return;
    }
    let Some(nick) = muc.others.get_mut(room).and_then(|o| o.remove(p)) else {
        return;
    };
    let (aff, reason) = item.unwrap_or(("none", None));
    for t in occupant_jids(muc, room) {
        muc.send(stanzas::occupant_presence(
            &muc.occupant_jid(room, &nick),
            &t,
            true,
            &ItemView {
                affiliation: aff,
                role: "none",
                reason,
                ..ItemView::default()
            },
            codes,
            &[],
        ));
    }
}

/// The room is gone: every XMPP occupant gets its unavailable presence with
/// `<destroy>` (and the reason and alternate venue when the destroy was asked here).
fn destroyed(muc: &mut Muc, room: &RoomName) {
    let (reason, alt) = muc.destroying.remove(room).unwrap_or((None, None));
    muc.awaiting_config.remove(room);
    muc.others.remove(room);
    let gone = muc.occupants.take_room(room);
    for o in gone {
        let mut destroy = Element::new("destroy", NS_MUC_USER);
        if let Some(a) = &alt {
            destroy.set_attr("jid", a);
        }
        if let Some(r) = &reason {
            destroy = destroy.child(Element::new("reason", NS_MUC_USER).text(r));
        }
        let mut p = stanzas::occupant_presence(
            &muc.occupant_jid(room, &o.nick),
            &o.jid,
            true,
            &ItemView {
                affiliation: "none",
                role: "none",
                ..ItemView::default()
            },
            &[status::SELF],
            &[],
        );
        if let Some(crate::xml::Node::Element(x)) = p.children.last_mut() {
            x.children.push(crate::xml::Node::Element(destroy));
        }
        muc.send(p);
    }
}
