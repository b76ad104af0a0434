//! Messages: groupchat (journaled, then reflected to everyone by the feed), subject
//! changes, private messages between occupants, mediated invitations and declines
//! (XEP-0045 §7.4, §7.5, §7.8.2, §8.1), and the discussion history sent on join.

use conclave_engine::ids::{Address, RoomName};
use conclave_engine::Command;

use super::jid::Jid;
use super::stanzas::{self, NS_MUC_USER};
use super::{roster, Ctx, Muc, Pending};
use crate::core::NS_COMPONENT;
use crate::history::HistoryRequest;
use crate::xml::Element;

/// Longest invitation reason relayed.
const MAX_REASON_CHARS: usize = 500;

/// A message to a room or an occupant.
pub fn message(muc: &mut Muc, el: &Element, to: &Jid<'_>, address: Address, cx: &Ctx<'_>) {
    let kind = el.get_attr("type").unwrap_or("normal");
    if kind == "error" {
        // A bounce of what the room sent: a client that is gone leaves (§7.2's ghosts).
        if stanzas::says_gone(el) {
            if let (Ok(room), Some(from)) = (muc.room_of(to, cx), el.get_attr("from")) {
                muc.disconnect(&room, from);
            }
        }
        return;
    }
    let room = match muc.room_of(to, cx) {
        Ok(r) => r,
        Err(text) => {
            muc.send(stanzas::error_reply(
                el,
                "modify",
                "jid-malformed",
                Some(&text),
            ));
            return;
        }
    };
    if !cx.state.rooms.contains_key(&room) {
        muc.send(stanzas::error_reply(el, "cancel", "item-not-found", None));
        return;
    }
    let full = el.get_attr("from").unwrap_or_default();
    let sender = muc
        .occupants
        .room(&room)
        .and_then(|r| r.by_jid(full))
        .cloned();
    if to.resource.is_none() {
        if let Some(x) = el.get_child("x", NS_MUC_USER) {
            invitation(muc, el, x, &room, address, cx);
            return;
        }
    }
    let Some(sender) = sender else {
        // XEP-0045 §7.4: only occupants send to the room.
        muc.send(stanzas::error_reply(
            el,
            "modify",
            "not-acceptable",
            Some("only occupants may send messages to the room"),
        ));
        return;
    };
    if to.resource.is_none()
        && kind != "groupchat"
        && super::voice::message(muc, el, &room, &sender.address, cx)
    {
        return;
    }
    match (to.resource, kind) {
        (None, "groupchat") => groupchat(muc, el, &room, sender.address, cx),
        (None, _) => muc.send(stanzas::error_reply(el, "modify", "bad-request", None)),
        (Some(nick), "groupchat") => {
            let _ = nick;
            muc.send(stanzas::error_reply(el, "modify", "bad-request", None));
        }
        (Some(nick), _) => private(muc, el, &room, &sender.nick, nick),
    }
}

fn groupchat(muc: &mut Muc, el: &Element, room: &RoomName, actor: Address, cx: &Ctx<'_>) {
    let body = el
        .get_child("body", NS_COMPONENT)
        .map(Element::text_content);
    let subject = el
        .get_child("subject", NS_COMPONENT)
        .map(Element::text_content);
    match (body, subject) {
        (Some(body), _) => {
            let corr = muc.correlate(el.get_attr("id"));
            muc.exec_with(
                actor,
                Command::PostMessage {
                    room: room.clone(),
                    body,
                },
                None,
                Some(corr),
                Pending::Message { stanza: el.clone() },
            );
        }
        (None, Some(subject)) => {
            muc.exec(
                actor,
                Command::SetSubject {
                    room: room.clone(),
                    subject: (!subject.is_empty()).then_some(subject),
                },
                Pending::Message { stanza: el.clone() },
            );
        }
        // Chat states and receipts without a body: nothing to journal or relay.
        (None, None) => {
            let _ = cx;
        }
    }
}

/// A private message to one occupant (XEP-0045 §7.5): relayed to that occupant's
/// client alone, from the sender's room JID; not journaled (it is between two people,
/// and the room's archive is the room's).
fn private(muc: &mut Muc, el: &Element, room: &RoomName, sender_nick: &str, to_nick: &str) {
    let Some(target) = muc
        .occupants
        .room(room)
        .and_then(|r| r.by_nick(to_nick))
        .cloned()
    else {
        muc.send(stanzas::error_reply(
            el,
            "cancel",
            "item-not-found",
            Some("no XMPP occupant has that nickname"),
        ));
        return;
    };
    let mut out = Element::new("message", NS_COMPONENT)
        .attr("from", &muc.occupant_jid(room, sender_nick))
        .attr("to", &target.jid)
        .attr("type", el.get_attr("type").unwrap_or("chat"));
    if let Some(id) = el.get_attr("id") {
        out.set_attr("id", id);
    }
    for c in el.elements().filter(|c| {
        (c.ns == NS_COMPONENT && matches!(c.name.as_str(), "body" | "thread"))
            || c.ns == "http://jabber.org/protocol/chatstates"
    }) {
        out = out.child(c.clone());
    }
    out = out.child(Element::new("x", NS_MUC_USER));
    muc.send(out);
}

/// A mediated invitation or a decline (XEP-0045 §7.8.2, §7.8.2's decline): an engine
/// invitation of the invitee's `xmpp:` identity, or the answer to one.
fn invitation(
    muc: &mut Muc,
    el: &Element,
    x: &Element,
    room: &RoomName,
    actor: Address,
    cx: &Ctx<'_>,
) {
    if let Some(invite) = x.get_child("invite", NS_MUC_USER) {
        let Some(invitee) = invite
            .get_attr("to")
            .and_then(Jid::parse)
            .and_then(|j| super::jid::user_address(&j))
        else {
            muc.send(stanzas::error_reply(el, "modify", "jid-malformed", None));
            return;
        };
        // The engine keeps no reason; the invitation message shows it.
        let reason = reason_of(invite);
        let corr = muc.correlate(reason.as_deref());
        muc.exec_with(
            actor,
            Command::invite(room.clone(), invitee),
            None,
            Some(corr),
            Pending::Notify { stanza: el.clone() },
        );
        return;
    }
    if let Some(decline) = x.get_child("decline", NS_MUC_USER) {
        let p = cx.state.principal_of(&actor);
        let open = cx.state.rooms.get(room).and_then(|r| {
            r.invitations
                .iter()
                .find(|(_, inv)| inv.is_open() && cx.state.principal_of(&inv.invitee) == p)
                .map(|(id, _)| id.clone())
        });
        match open {
            Some(invitation) => {
                let reason = reason_of(decline);
                let corr = muc.correlate(reason.as_deref());
                muc.exec_with(
                    actor,
                    Command::DenyInvitation {
                        room: room.clone(),
                        invitation,
                    },
                    None,
                    Some(corr),
                    Pending::Notify { stanza: el.clone() },
                );
            }
            None => muc.send(stanzas::error_reply(
                el,
                "cancel",
                "item-not-found",
                Some("no open invitation to this room"),
            )),
        }
        return;
    }
    muc.send(stanzas::error_reply(el, "modify", "bad-request", None));
}

/// The `<reason>` of an invite or a decline, bounded.
fn reason_of(el: &Element) -> Option<String> {
    el.get_child("reason", NS_MUC_USER)
        .map(Element::text_content)
        .filter(|r| !r.trim().is_empty())
        .map(|r| r.chars().take(MAX_REASON_CHARS).collect())
}

/// Discussion history for a joiner (XEP-0045 §7.2.14), each message with its original
/// time as a `urn:xmpp:delay` stamp from the room.
pub fn send_history(muc: &mut Muc, room: &RoomName, to: &str, req: &HistoryRequest, cx: &Ctx<'_>) {
    let limit = req.stanza_limit();
    if limit == 0 {
        return;
    }
    let msgs = cx.archive.recent(room, limit);
    let nick = roster::nick_lookup(roster::nick_table(muc, room, cx));
    for el in req.render(&msgs, cx.now, &muc.room_jid(room), to, nick) {
        muc.send(el);
    }
}
