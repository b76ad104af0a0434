//! `muc#admin` (XEP-0045 §8, §9): roles and affiliations as engine commands, and the
//! affiliation lists from the projection.
//!
//! | XEP-0045 item                     | engine command                          |
//! |-----------------------------------|-----------------------------------------|
//! | `nick`, role `none` (kick)        | `Kick`                                  |
//! | role `visitor` (revoke voice)     | `GrantRole Visitor`                     |
//! | role `participant` (grant voice)  | `GrantRole Member`                      |
//! | role `moderator`                  | `GrantRole Moderator`                   |
//! | affiliation `outcast` (ban)       | `Ban` in the room                       |
//! | affiliation `member/admin/owner`  | `GrantRole Member/Moderator/Owner`      |
//! | affiliation `none`                | `Unban` of an outcast, else `RevokeRole`|
//!
//! Roles are affiliations in Conclave (a right, not a state of one visit), so voice
//! and moderator rights granted here outlast the visit, as a member list entry does.

use std::collections::VecDeque;

use conclave_engine::ids::{Address, Principal, RoomName};
use conclave_engine::{BanScope, Command, Role, Secret};

use super::jid::Jid;
use super::stanzas::{self, NS_MUC_ADMIN};
use super::{roster, Ctx, Muc, Pending};
use crate::xml::Element;

/// Most items one `muc#admin` set may carry.
pub const MAX_ITEMS: usize = 50;

/// A `muc#admin` IQ.
pub fn iq(muc: &mut Muc, iq: &Element, q: &Element, room: &RoomName, actor: Address, cx: &Ctx<'_>) {
    let Some(room_state) = cx.state.rooms.get(room) else {
        muc.send(stanzas::error_reply(iq, "cancel", "item-not-found", None));
        return;
    };
    let items: Vec<&Element> = q
        .elements()
        .filter(|e| e.name == "item" && e.ns == NS_MUC_ADMIN)
        .collect();
    if items.is_empty() || items.len() > MAX_ITEMS {
        muc.send(stanzas::error_reply(iq, "modify", "bad-request", None));
        return;
    }
    if iq.get_attr("type") == Some("get") {
        list(muc, iq, items[0], room, &actor, cx);
        let _ = room_state;
        return;
    }
    let mut commands: VecDeque<(Command, Option<Secret>)> = VecDeque::new();
    for item in items {
        match item_command(muc, item, room, cx) {
            Ok(c) => commands.push_back((c, None)),
            Err((condition, text)) => {
                muc.send(stanzas::error_reply(iq, "modify", condition, Some(text)));
                return;
            }
        }
    }
    let Some((first, _)) = commands.pop_front() else {
        return;
    };
    muc.exec(
        actor.clone(),
        first,
        Pending::Chain {
            stanza: iq.clone(),
            actor,
            rest: commands,
        },
    );
}

/// The engine command of one item.
fn item_command(
    muc: &Muc,
    item: &Element,
    room: &RoomName,
    cx: &Ctx<'_>,
) -> Result<Command, (&'static str, &'static str)> {
    let reason = item
        .get_child("reason", NS_MUC_ADMIN)
        .map(Element::text_content)
        .filter(|r| !r.trim().is_empty());
    let subject = subject_of(muc, item, room, cx)?;
    if let Some(role) = item.get_attr("role") {
        let role = match role {
            "none" => {
                return Ok(Command::Kick {
                    room: room.clone(),
                    subject,
                    reason,
                })
            }
            "visitor" => Role::Visitor,
            "participant" => Role::Member,
            "moderator" => Role::Moderator,
            _ => return Err(("bad-request", "unknown role")),
        };
        return Ok(Command::GrantRole {
            room: room.clone(),
            subject,
            role,
        });
    }
    let Some(aff) = item.get_attr("affiliation") else {
        return Err(("bad-request", "an item needs a role or an affiliation"));
    };
    Ok(match aff {
        "outcast" => Command::Ban {
            scope: BanScope::Room(room.clone()),
            subject,
            reason,
            until: None,
        },
        "member" | "admin" | "owner" => Command::GrantRole {
            room: room.clone(),
            subject,
            role: match aff {
                "member" => Role::Member,
                "admin" => Role::Moderator,
                _ => Role::Owner,
            },
        },
        "none" => {
            let banned = cx
                .state
                .rooms
                .get(room)
                .is_some_and(|r| r.bans.contains_key(&subject));
            if banned {
                Command::Unban {
                    scope: BanScope::Room(room.clone()),
                    subject,
                }
            } else {
                Command::RevokeRole {
                    room: room.clone(),
                    subject,
                }
            }
        }
        _ => return Err(("bad-request", "unknown affiliation")),
    })
}

/// Whom an item is about: its `jid`, or the occupant its `nick` names.
fn subject_of(
    muc: &Muc,
    item: &Element,
    room: &RoomName,
    cx: &Ctx<'_>,
) -> Result<Principal, (&'static str, &'static str)> {
    if let Some(j) = item.get_attr("jid") {
        let address = Jid::parse(j)
            .and_then(|j| super::jid::user_address(&j))
            .ok_or(("jid-malformed", "not a user's JID"))?;
        return Ok(cx.state.principal_of(&address));
    }
    let Some(nick) = item.get_attr("nick") else {
        return Err(("bad-request", "an item needs a jid or a nick"));
    };
    if let Some(o) = muc.occupants.room(room).and_then(|r| r.by_nick(nick)) {
        return Ok(cx.state.principal_of(&o.address));
    }
    muc.others
        .get(room)
        .and_then(|o| o.iter().find(|(_, n)| n.as_str() == nick))
        .map(|(p, _)| p.clone())
        .ok_or(("item-not-found", "no occupant has that nickname"))
}

/// A list request (XEP-0045 §9.5, §8.5): affiliations for admins, roles for moderators.
fn list(
    muc: &mut Muc,
    iq: &Element,
    item: &Element,
    room: &RoomName,
    actor: &Address,
    cx: &Ctx<'_>,
) {
    let Some(r) = cx.state.rooms.get(room) else {
        return;
    };
    let me = cx.state.principal_of(actor);
    let rank = cx.state.rank_in(room, r, &me, cx.now);
    if rank < conclave_engine::access::Rank::Moderator {
        muc.send(stanzas::error_reply(iq, "auth", "forbidden", None));
        return;
    }
    let mut q = Element::new("query", NS_MUC_ADMIN);
    let mut push = |p: &Principal, aff: &str, role: Option<&str>, nick: Option<&str>| {
        let mut it = Element::new("item", NS_MUC_ADMIN).attr("affiliation", aff);
        if let Some(j) = principal_jid(cx, p) {
            it.set_attr("jid", &j);
        }
        if let Some(ro) = role {
            it.set_attr("role", ro);
        }
        if let Some(n) = nick {
            it.set_attr("nick", n);
        }
        q.children.push(crate::xml::Node::Element(it));
    };
    match (item.get_attr("affiliation"), item.get_attr("role")) {
        (Some("outcast"), _) => {
            for p in r.bans.keys() {
                push(p, "outcast", None, None);
            }
        }
        (Some(aff @ ("member" | "admin" | "owner")), _) => {
            let want = match aff {
                "member" => Role::Member,
                "admin" => Role::Moderator,
                _ => Role::Owner,
            };
            for (p, role) in &r.affiliations {
                if *role == want {
                    push(p, aff, None, None);
                }
            }
        }
        (None, Some(role @ ("moderator" | "participant" | "visitor"))) => {
            let occupants: Vec<(Address, String)> = roster::nick_table(muc, room, cx);
            for (a, nick) in occupants {
                let p = cx.state.principal_of(&a);
                let (rk, aff) = roster::standing(cx, room, r, &p);
                if roster::role_name(rk) == role {
                    push(&p, roster::affiliation_name(aff), Some(role), Some(&nick));
                }
            }
        }
        _ => {
            muc.send(stanzas::error_reply(iq, "modify", "bad-request", None));
            return;
        }
    }
    muc.send(stanzas::iq_result(iq).child(q));
}

/// The bare JID a principal shows as: its `xmpp:` identity (one linked to its account),
/// else none (people known only on other protocols have no JID).
fn principal_jid(cx: &Ctx<'_>, p: &Principal) -> Option<String> {
    match p {
        Principal::Address(a) => super::jid::address_jid(a),
        Principal::Account(_) => cx
            .state
            .account_of(p)
            .and_then(|acc| acc.identities.iter().find_map(super::jid::address_jid)),
    }
}
