//! Entering and leaving rooms, nickname changes and presence updates (XEP-0045 §7.2,
//! §7.6, §7.7, §7.14). A join is the engine's `Join` (after `CreateRoom` and `LockRoom`
//! when the room does not exist: XEP-0045's reserved-until-configured room); the
//! occupant is shown to the room when the `Joined` event is committed.

use conclave_engine::event::EventKind;
use conclave_engine::ids::{Address, RoomName, SessionId};
use conclave_engine::service::{EngineError, Outcome};
use conclave_engine::{Command, Credentials, Rejection, Secret};

use super::jid::{check_nick, Jid};
use super::occupants::{session_for, Occupant};
use super::stanzas::{self, status, ItemView};
use super::{chat, roster, Ctx, Muc, Pending};
use crate::core::{NS_COMPONENT, NS_MUC};
use crate::history::HistoryRequest;
use crate::xml::Element;

/// Where a join is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Creating the room.
    Create,
    /// Locking the new room until its owner configures it.
    Lock,
    /// Joining.
    Join,
}

/// A join in flight.
#[derive(Debug, Clone)]
pub struct JoinPending {
    /// The join presence, for errors.
    pub stanza: Element,
    /// The room.
    pub room: RoomName,
    /// The occupant to be.
    pub occupant: Occupant,
    /// The password presented.
    pub password: Option<String>,
    /// History asked for (`None`: the default).
    pub history: HistoryRequest,
    /// Whether this join created the room.
    pub created: bool,
    /// The step in flight.
    pub step: Step,
}

/// A presence to a room JID.
pub fn presence(
    muc: &mut Muc,
    el: &Element,
    from: &Jid<'_>,
    to: &Jid<'_>,
    address: Address,
    cx: &Ctx<'_>,
) {
    let kind = el.get_attr("type").unwrap_or("");
    let full = el.get_attr("from").unwrap_or_default().to_owned();
    if from.resource.is_none() {
        // Only clients join (a bare JID has no session to deliver to).
        if kind.is_empty() {
            muc.send(stanzas::error_reply(el, "modify", "jid-malformed", None));
        }
        return;
    }
    let room = match muc.room_of(to, cx) {
        Ok(r) => r,
        Err(text) => {
            if kind != "error" {
                muc.send(stanzas::error_reply(
                    el,
                    "modify",
                    "jid-malformed",
                    Some(&text),
                ));
            }
            return;
        }
    };
    let current = muc
        .occupants
        .room(&room)
        .and_then(|r| r.by_jid(&full))
        .cloned();
    match (kind, current) {
        ("error", Some(_)) => muc.disconnect(&room, &full),
        ("unavailable", Some(o)) => {
            let pending = Pending::Leave {
                room: room.clone(),
                jid: full,
            };
            muc.exec(
                o.address.clone(),
                Command::Leave {
                    room,
                    session: o.session,
                },
                pending,
            );
        }
        // Gone before its join was answered: it leaves once it is in.
        ("unavailable", None) if join_in_flight(muc, &room, &full) => {
            muc.leave_after_join.insert((room, full));
        }
        ("", Some(o)) => {
            let Some(nick) = to.resource else {
                muc.send(stanzas::error_reply(el, "modify", "jid-malformed", None));
                return;
            };
            if nick == o.nick && el.get_child("x", NS_MUC).is_some() {
                rejoin(muc, &room, &o, el, cx);
            } else if nick == o.nick {
                update(muc, &room, &o, el, cx);
            } else {
                change_nick(muc, el, &room, &o, nick, cx);
            }
        }
        ("", None) => {
            let Some(nick) = to.resource else {
                // XEP-0045 §7.2.1: a join needs a nickname.
                muc.send(stanzas::error_reply(el, "modify", "jid-malformed", None));
                return;
            };
            start(muc, el, room, full, nick, address, cx);
        }
        _ => {}
    }
}

/// Whether `nick` is someone else's in the room (an XMPP occupant, a join in flight, or
/// a person on another protocol).
fn nick_taken(muc: &Muc, room: &RoomName, nick: &str, jid: &str) -> bool {
    let occupant = muc
        .occupants
        .room(room)
        .and_then(|r| r.by_nick(nick))
        .is_some_and(|o| o.jid != jid);
    let joining = muc
        .joining
        .iter()
        .any(|((r, _), jp)| r == room && jp.occupant.nick == nick && jp.occupant.jid != jid)
        || muc.pending.values().any(|p| {
            matches!(p, Pending::Join(jp) if &jp.room == room
                && jp.occupant.nick == nick && jp.occupant.jid != jid)
        });
    let other = muc
        .others
        .get(room)
        .is_some_and(|o| o.values().any(|n| n == nick));
    occupant || joining || other
}

/// Whether the client `jid` may take `nick` in the room; if not, it is told why
/// (`jid-malformed` for a nickname no one may have, `conflict` for one in use).
fn nick_free(
    muc: &mut Muc,
    el: &Element,
    room: &RoomName,
    nick: &str,
    jid: &str,
    cx: &Ctx<'_>,
) -> bool {
    if let Err(text) = check_nick(nick) {
        muc.send(stanzas::error_reply(
            el,
            "modify",
            "jid-malformed",
            Some(text),
        ));
        return false;
    }
    roster::refresh_others(muc, room, cx);
    if nick_taken(muc, room, nick, jid) {
        muc.send(stanzas::error_reply(
            el,
            "cancel",
            "conflict",
            Some("that nickname is in use in the room"),
        ));
        return false;
    }
    true
}

fn start(
    muc: &mut Muc,
    el: &Element,
    room: RoomName,
    full: String,
    nick: &str,
    address: Address,
    cx: &Ctx<'_>,
) {
    if !nick_free(muc, el, &room, nick, &full, cx) {
        return;
    }
    let session = session_for(&full);
    if join_in_flight(muc, &room, &full) {
        // A repeat while the first is in flight: the first one answers.
        return;
    }
    let x = el.get_child("x", NS_MUC);
    let password = x
        .and_then(|x| x.get_child("password", NS_MUC))
        .map(Element::text_content);
    let exists = cx.state.rooms.contains_key(&room);
    let jp = JoinPending {
        stanza: el.clone(),
        room: room.clone(),
        occupant: Occupant {
            nick: nick.to_owned(),
            jid: full,
            address: address.clone(),
            session,
            show: show_of(el),
        },
        password,
        history: HistoryRequest::parse(x),
        created: !exists,
        step: if exists { Step::Join } else { Step::Create },
    };
    issue(muc, jp);
}

/// Whether a join of the client `jid` into `room` is in flight.
fn join_in_flight(muc: &Muc, room: &RoomName, jid: &str) -> bool {
    muc.joining.contains_key(&(room.clone(), session_for(jid)))
        || muc
            .pending
            .values()
            .any(|p| matches!(p, Pending::Join(jp) if &jp.room == room && jp.occupant.jid == jid))
}

/// Sends the command of a join's step.
fn issue(muc: &mut Muc, jp: JoinPending) {
    let room = jp.room.clone();
    let command = match jp.step {
        Step::Create => Command::CreateRoom {
            room,
            parent: None,
            private: false,
            owner: None,
            max_members: None,
            welcome_text: None,
            access_password_hash: None,
            server_password: None,
        },
        Step::Lock => Command::LockRoom { room },
        Step::Join => Command::Join {
            room,
            session: jp.occupant.session.clone(),
            credentials: Credentials {
                password: jp.password.clone().map(Secret::new),
                ..Credentials::default()
            },
        },
    };
    let actor = jp.occupant.address.clone();
    muc.exec(actor, command, Pending::Join(jp));
}

/// A join step's result.
pub fn result(muc: &mut Muc, mut jp: JoinPending, r: &Result<Outcome, EngineError>, cx: &Ctx<'_>) {
    match (jp.step, r) {
        (Step::Create, Ok(_)) => {
            muc.awaiting_config.insert(jp.room.clone());
            jp.step = Step::Lock;
            issue(muc, jp);
        }
        (
            Step::Create,
            Err(EngineError::Rejected {
                rejection: Rejection::RoomExists(_),
                ..
            }),
        ) => {
            // Someone else created it first: join it as it is.
            jp.created = false;
            jp.step = Step::Join;
            issue(muc, jp);
        }
        (Step::Lock, Ok(_)) | (Step::Lock, Err(_)) => {
            // A lock that failed leaves an open room, which is what XEP-0045 calls an
            // instant room: still joinable.
            jp.step = Step::Join;
            issue(muc, jp);
        }
        (Step::Join, Ok(outcome)) => {
            let joined = outcome.events.iter().any(|a| {
                matches!(&a.event.kind, EventKind::Joined { session, .. } if *session == jp.occupant.session)
            });
            if joined
                && cx.state.rooms.get(&jp.room).is_none_or(|r| {
                    !r.members
                        .values()
                        .any(|m| m.sessions.contains_key(&jp.occupant.session))
                })
            {
                // The committed feed will show the join; the occupant enters then, in
                // journal order with everything else.
                muc.joining
                    .insert((jp.room.clone(), jp.occupant.session.clone()), jp);
            } else {
                complete(muc, jp, cx);
            }
        }
        (
            Step::Join,
            Err(EngineError::Rejected {
                rejection: Rejection::SessionExists,
                ..
            }),
        ) => {
            complete(muc, jp, cx);
        }
        (_, Err(e)) => {
            muc.leave_after_join
                .remove(&(jp.room.clone(), jp.occupant.jid.clone()));
            let text = super::error_text(e);
            muc.send(stanzas::mapped_error(
                &jp.stanza,
                e.mapping().xmpp,
                text.as_deref(),
            ));
        }
    }
}

/// The `Joined` event of a join made here: the occupant enters.
pub fn joined(muc: &mut Muc, room: &RoomName, session: &SessionId, cx: &Ctx<'_>) -> bool {
    match muc.joining.remove(&(room.clone(), session.clone())) {
        Some(jp) => {
            complete(muc, jp, cx);
            true
        }
        None => false,
    }
}

/// The occupant enters: the roster and its own presence to it, its presence to the
/// others, then history and the subject.
fn complete(muc: &mut Muc, jp: JoinPending, cx: &Ctx<'_>) {
    let room = jp.room.clone();
    let jid = jp.occupant.jid.clone();
    roster::refresh_others(muc, &room, cx);
    muc.occupants.room_mut(&room).insert(jp.occupant.clone());
    let mut codes = Vec::new();
    if jp.created {
        codes.push(status::CREATED);
    }
    roster::send_roster(muc, &room, &jid, &codes, cx);
    // To the others.
    if let Some(room_state) = cx.state.rooms.get(&room) {
        let viewers: Vec<(String, Address)> = muc
            .occupants
            .room(&room)
            .map(|r| {
                r.iter()
                    .filter(|o| o.jid != jid)
                    .map(|o| (o.jid.clone(), o.address.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (to, viewer) in viewers {
            let sees = roster::sees_jids(cx, &room, room_state, &viewer);
            if let Some(p) = roster::xmpp_presence(muc, cx, &room, &jp.occupant, &to, sees, &[]) {
                muc.send(p);
            }
        }
    }
    chat::send_history(muc, &room, &jid, &jp.history, cx);
    let subject = roster::subject_message(muc, &room, &jid, cx);
    muc.send(subject);
    if muc.leave_after_join.remove(&(room.clone(), jid.clone())) {
        let pending = Pending::Leave {
            room: room.clone(),
            jid,
        };
        muc.exec(
            jp.occupant.address.clone(),
            Command::Leave {
                room,
                session: jp.occupant.session,
            },
            pending,
        );
    }
}

/// A sign of life from an occupant: keeps the `<show>`/`<status>` it sent and renews
/// its session.
fn touch(muc: &mut Muc, room: &RoomName, o: &Occupant, el: &Element) {
    muc.occupants.room_mut(room).set_show(&o.jid, show_of(el));
    muc.exec(
        o.address.clone(),
        Command::RenewSession {
            room: room.clone(),
            session: o.session.clone(),
        },
        Pending::Renew,
    );
}

/// A join from a client that is an occupant already (it lost track, e.g. after the
/// server or the component reconnected): it gets the whole room again, as on a first
/// join, without the others seeing it arrive twice.
fn rejoin(muc: &mut Muc, room: &RoomName, o: &Occupant, el: &Element, cx: &Ctx<'_>) {
    touch(muc, room, o, el);
    roster::refresh_others(muc, room, cx);
    roster::send_roster(muc, room, &o.jid, &[], cx);
    let history = HistoryRequest::parse(el.get_child("x", NS_MUC));
    chat::send_history(muc, room, &o.jid, &history, cx);
    let subject = roster::subject_message(muc, room, &o.jid, cx);
    muc.send(subject);
}

/// A presence update from an occupant: renew, and show it to everyone.
fn update(muc: &mut Muc, room: &RoomName, o: &Occupant, el: &Element, cx: &Ctx<'_>) {
    touch(muc, room, o, el);
    if let Some(now) = muc
        .occupants
        .room(room)
        .and_then(|r| r.by_jid(&o.jid))
        .cloned()
    {
        roster::broadcast_presence(muc, room, &now, cx);
    }
}

/// A nickname change (XEP-0045 §7.6): unavailable with 303 and the new nick from the
/// old one, then available from the new one, to everyone.
fn change_nick(
    muc: &mut Muc,
    el: &Element,
    room: &RoomName,
    o: &Occupant,
    nick: &str,
    cx: &Ctx<'_>,
) {
    if !nick_free(muc, el, room, nick, &o.jid, cx) {
        return;
    }
    let Some(room_state) = cx.state.rooms.get(room) else {
        return;
    };
    let p = cx.state.principal_of(&o.address);
    let (rank, aff) = roster::standing(cx, room, room_state, &p);
    let viewers = roster::viewers(muc, room);
    for (to, viewer) in &viewers {
        let me = *to == o.jid;
        let sees = me || roster::sees_jids(cx, room, room_state, viewer);
        let mut codes = vec![status::NICK_CHANGED];
        if me {
            codes.push(status::SELF);
        }
        muc.send(stanzas::occupant_presence(
            &muc.occupant_jid(room, &o.nick),
            to,
            true,
            &ItemView {
                affiliation: roster::affiliation_name(aff),
                role: roster::role_name(rank),
                jid: sees.then_some(o.jid.as_str()),
                nick: Some(nick),
                ..ItemView::default()
            },
            &codes,
            &[],
        ));
    }
    let mut renamed = o.clone();
    renamed.nick = nick.to_owned();
    renamed.show = show_of(el);
    muc.occupants.room_mut(room).insert(renamed.clone());
    roster::broadcast_presence(muc, room, &renamed, cx);
}

/// An occupant is out (left, kicked, banned, session ended): everyone, itself
/// included with 110, gets its unavailable presence; `item` overrides what it says.
pub fn gone(
    muc: &mut Muc,
    room: &RoomName,
    jid: &str,
    codes: &[u16],
    item: Option<(&str, &str, Option<&str>)>,
    cx: &Ctx<'_>,
) {
    let Some(o) = muc
        .occupants
        .room(room)
        .and_then(|r| r.by_jid(jid))
        .cloned()
    else {
        return;
    };
    let room_state = cx.state.rooms.get(room);
    let p = cx.state.principal_of(&o.address);
    let (aff, reason) = match item {
        Some((aff, _, reason)) => (aff, reason),
        None => (
            room_state
                .map(|r| roster::affiliation_name(roster::standing(cx, room, r, &p).1))
                .unwrap_or("none"),
            None,
        ),
    };
    let viewers = roster::viewers(muc, room);
    for (to, viewer) in &viewers {
        let me = *to == o.jid;
        let sees = me || room_state.is_some_and(|r| roster::sees_jids(cx, room, r, viewer));
        let mut all = codes.to_vec();
        if me {
            all.push(status::SELF);
        }
        muc.send(stanzas::occupant_presence(
            &muc.occupant_jid(room, &o.nick),
            to,
            true,
            &ItemView {
                affiliation: aff,
                role: "none",
                jid: sees.then_some(o.jid.as_str()),
                reason,
                ..ItemView::default()
            },
            &all,
            &[],
        ));
    }
    muc.occupants.remove(room, jid);
    if muc.occupants.room(room).is_none() {
        muc.others.remove(room);
    }
}

/// The `<show>`, `<status>` and `<priority>` of a presence, kept to repeat to others.
fn show_of(el: &Element) -> Vec<Element> {
    el.elements()
        .filter(|c| c.ns == NS_COMPONENT && matches!(c.name.as_str(), "show" | "status"))
        .take(4)
        .cloned()
        .collect()
}
