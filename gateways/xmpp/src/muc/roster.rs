//! What XMPP occupants see of a room: every present person as an occupant with a role
//! and an affiliation from the engine's rules, XMPP clients under their nicknames and
//! people on other protocols under a name derived from their identity.

use conclave_engine::access::Rank;
use conclave_engine::ids::{Address, Principal, RoomName, Scheme};
use conclave_engine::state::Room;
use conclave_engine::{Role, State};

use super::occupants::Occupant;
use super::stanzas::{self, status, ItemView};
use super::{Ctx, Muc};
use crate::core::{NS_COMPONENT, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC};
use crate::xml::Element;

/// XEP-0045 role of a rank.
pub fn role_name(rank: Rank) -> &'static str {
    match rank {
        Rank::Operator | Rank::Owner | Rank::Moderator => "moderator",
        Rank::Member => "participant",
        Rank::Visitor => "visitor",
        Rank::Nobody => "none",
    }
}

/// XEP-0045 affiliation of a stored role.
pub fn affiliation_name(role: Option<Role>) -> &'static str {
    match role {
        Some(Role::Owner) => "owner",
        Some(Role::Moderator) => "admin",
        Some(Role::Member) => "member",
        Some(Role::Visitor) | None => "none",
    }
}

/// Rank and affiliation of a principal in a room now.
pub fn standing(cx: &Ctx<'_>, name: &RoomName, room: &Room, p: &Principal) -> (Rank, Option<Role>) {
    let rank = cx.state.rank_in(name, room, p, cx.now);
    let mut aff = room.affiliations.get(p).copied();
    if let (Some(acc), Principal::Account(pa)) = (&room.account, p) {
        if acc == pa {
            aff = Some(Role::Owner);
        }
    }
    (rank, aff)
}

/// Whether real JIDs are shown to everyone (XEP-0045 non-anonymous).
pub fn non_anonymous(room: &Room) -> bool {
    room.config.public_addresses
}

/// Whether `viewer` (an XMPP occupant's identity) may see real JIDs in the room.
pub fn sees_jids(cx: &Ctx<'_>, name: &RoomName, room: &Room, viewer: &Address) -> bool {
    non_anonymous(room)
        || cx
            .state
            .rank_in(name, room, &cx.state.principal_of(viewer), cx.now)
            >= Rank::Moderator
}

/// Every XMPP occupant of a room as (full JID, identity): who a room's stanzas go to.
pub fn viewers(muc: &Muc, name: &RoomName) -> Vec<(String, Address)> {
    muc.occupants
        .room(name)
        .map(|r| {
            r.iter()
                .map(|v| (v.jid.clone(), v.address.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// A lookup of the nickname a sender shows under, from [`nick_table`]: the identity's
/// user part for someone no longer in the room.
pub fn nick_lookup(table: Vec<(Address, String)>) -> impl Fn(&Address) -> String {
    move |a: &Address| {
        table
            .iter()
            .find(|(x, _)| x == a)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| a.local().to_owned())
    }
}

/// Whether an XMPP occupant's session is still present in the projection.
pub fn session_present(state: &State, room: &RoomName, o: &Occupant) -> bool {
    let p = state.principal_of(&o.address);
    state
        .rooms
        .get(room)
        .and_then(|r| r.members.get(&p))
        .is_some_and(|m| m.sessions.contains_key(&o.session))
}

/// The name a person on another protocol shows under in XMPP: the account's display
/// name, else the identity's user part; `~scheme` appended on a clash with a taken
/// nickname.
pub fn derived_nick(
    state: &State,
    p: &Principal,
    address: &Address,
    taken: &dyn Fn(&str) -> bool,
) -> String {
    let base = state
        .account_of(p)
        .and_then(|a| a.display_name.clone())
        .unwrap_or_else(|| address.local().to_owned());
    if !taken(&base) {
        return base;
    }
    let scheme = address.scheme().as_str();
    let mut n = format!("{base}~{scheme}");
    let mut i = 2;
    while taken(&n) {
        n = format!("{base}~{scheme}{i}");
        i += 1;
    }
    n
}

/// People present through other gateways, with an identity to name them by.
pub fn non_xmpp_present(room: &Room) -> Vec<(Principal, Address)> {
    room.members
        .iter()
        .filter_map(|(p, m)| {
            m.sessions
                .values()
                .find(|s| s.address.scheme() != Scheme::Xmpp || s.gateway != "xmpp")
                .map(|s| (p.clone(), s.address.clone()))
        })
        .collect()
}

/// Brings the room's non-XMPP occupants as XMPP sees them in line with the projection,
/// without telling anyone (used before a roster is sent).
pub fn refresh_others(muc: &mut Muc, name: &RoomName, cx: &Ctx<'_>) {
    let Some(room) = cx.state.rooms.get(name) else {
        muc.others.remove(name);
        return;
    };
    let present = non_xmpp_present(room);
    let mut known = muc.others.remove(name).unwrap_or_default();
    known.retain(|p, _| present.iter().any(|(q, _)| q == p));
    for (p, a) in present {
        if known.contains_key(&p) {
            continue;
        }
        let nick = {
            let occ = muc.occupants.room(name);
            let known_ref = &known;
            derived_nick(cx.state, &p, &a, &|n| {
                occ.is_some_and(|r| r.by_nick(n).is_some()) || known_ref.values().any(|k| k == n)
            })
        };
        known.insert(p, nick);
    }
    muc.others.insert(name.clone(), known);
}

/// The presence of one XMPP occupant as `viewer` sees it.
pub fn xmpp_presence(
    muc: &Muc,
    cx: &Ctx<'_>,
    name: &RoomName,
    o: &Occupant,
    to: &str,
    viewer_sees_jids: bool,
    codes: &[u16],
) -> Option<Element> {
    let room = cx.state.rooms.get(name)?;
    let p = cx.state.principal_of(&o.address);
    let (rank, aff) = standing(cx, name, room, &p);
    Some(stanzas::occupant_presence(
        &muc.occupant_jid(name, &o.nick),
        to,
        false,
        &ItemView {
            affiliation: affiliation_name(aff),
            role: role_name(rank),
            jid: viewer_sees_jids.then_some(o.jid.as_str()),
            ..ItemView::default()
        },
        codes,
        &o.show,
    ))
}

/// The presence of a person on another protocol.
pub fn other_presence(
    muc: &Muc,
    cx: &Ctx<'_>,
    name: &RoomName,
    p: &Principal,
    nick: &str,
    to: &str,
) -> Option<Element> {
    let room = cx.state.rooms.get(name)?;
    let (rank, aff) = standing(cx, name, room, p);
    Some(stanzas::occupant_presence(
        &muc.occupant_jid(name, nick),
        to,
        false,
        &ItemView {
            affiliation: affiliation_name(aff),
            role: role_name(rank),
            ..ItemView::default()
        },
        &[],
        &[],
    ))
}

/// Sends `jid` every other occupant's presence, then its own with `codes` (110 and the
/// room's standing codes added): XEP-0045 §7.2.3's order.
pub fn send_roster(muc: &mut Muc, name: &RoomName, jid: &str, codes: &[u16], cx: &Ctx<'_>) {
    let Some(room) = cx.state.rooms.get(name) else {
        return;
    };
    let Some(me) = muc
        .occupants
        .room(name)
        .and_then(|r| r.by_jid(jid))
        .cloned()
    else {
        return;
    };
    let sees = sees_jids(cx, name, room, &me.address);
    let mut out = Vec::new();
    if let Some(r) = muc.occupants.room(name) {
        for o in r.iter().filter(|o| o.jid != jid) {
            out.extend(xmpp_presence(muc, cx, name, o, jid, sees, &[]));
        }
    }
    if let Some(others) = muc.others.get(name) {
        for (p, nick) in others {
            out.extend(other_presence(muc, cx, name, p, nick, jid));
        }
    }
    let mut own = vec![status::SELF, status::LOGGED];
    if non_anonymous(room) {
        own.push(status::NON_ANONYMOUS);
    }
    own.extend_from_slice(codes);
    out.extend(xmpp_presence(muc, cx, name, &me, jid, true, &own));
    for el in out {
        muc.send(el);
    }
}

/// Sends every XMPP occupant but `except` the presence of `o`.
pub fn broadcast_presence(muc: &mut Muc, name: &RoomName, o: &Occupant, cx: &Ctx<'_>) {
    let Some(room) = cx.state.rooms.get(name) else {
        return;
    };
    let viewers = viewers(muc, name);
    for (to, viewer) in viewers {
        let codes: &[u16] = if to == o.jid { &[status::SELF] } else { &[] };
        let sees = to == o.jid || sees_jids(cx, name, room, &viewer);
        if let Some(el) = xmpp_presence(muc, cx, name, o, &to, sees, codes) {
            muc.send(el);
        }
    }
}

/// disco#info on a room: identity and the features its configuration has.
pub fn disco_info(muc: &mut Muc, iq: &Element, name: &RoomName, cx: &Ctx<'_>) {
    let Some(room) = cx.state.rooms.get(name) else {
        muc.send(stanzas::error_reply(iq, "cancel", "item-not-found", None));
        return;
    };
    let c = &room.config;
    let title = c.name.clone().unwrap_or_else(|| name.as_str().to_owned());
    let mut q = Element::new("query", NS_DISCO_INFO).child(
        Element::new("identity", NS_DISCO_INFO)
            .attr("category", "conference")
            .attr("type", "text")
            .attr("name", &title),
    );
    let mut features = vec![
        NS_MUC,
        NS_DISCO_INFO,
        "urn:xmpp:mam:2",
        "urn:xmpp:sid:0",
        if c.access_password_hash.is_some() {
            "muc_passwordprotected"
        } else {
            "muc_unsecured"
        },
        if c.private {
            "muc_membersonly"
        } else {
            "muc_open"
        },
        if c.default_role == Some(Role::Visitor) || c.moderated_chat {
            "muc_moderated"
        } else {
            "muc_unmoderated"
        },
        if c.persistent || room.is_reserved() {
            "muc_persistent"
        } else {
            "muc_temporary"
        },
        if non_anonymous(room) {
            "muc_nonanonymous"
        } else {
            "muc_semianonymous"
        },
        if c.private {
            "muc_hidden"
        } else {
            "muc_public"
        },
    ];
    features.dedup();
    for f in features {
        q = q.child(Element::new("feature", NS_DISCO_INFO).attr("var", f));
    }
    let mut form = Element::new("x", NS_DATA)
        .attr("type", "result")
        .child(hidden_field(
            "FORM_TYPE",
            "http://jabber.org/protocol/muc#roominfo",
        ));
    for (var, value) in [
        (
            "muc#roominfo_description",
            c.description.clone().unwrap_or_default(),
        ),
        ("muc#roominfo_occupants", room.members.len().to_string()),
        (
            "muc#roominfo_subject",
            room.subject
                .as_ref()
                .map(|s| s.text.clone())
                .unwrap_or_default(),
        ),
    ] {
        form = form.child(
            Element::new("field", NS_DATA)
                .attr("var", var)
                .child(Element::new("value", NS_DATA).text(&value)),
        );
    }
    q = q.child(form);
    muc.send(stanzas::iq_result(iq).child(q));
}

/// XEP-0004 data forms.
pub const NS_DATA: &str = "jabber:x:data";

fn hidden_field(var: &str, value: &str) -> Element {
    Element::new("field", NS_DATA)
        .attr("var", var)
        .attr("type", "hidden")
        .child(Element::new("value", NS_DATA).text(value))
}

/// disco#items on a room: the occupants' room JIDs for those who may see the roster
/// (occupants), nothing for others (XEP-0045 §6.5 lets a service refuse).
pub fn disco_items(
    muc: &mut Muc,
    iq: &Element,
    name: &RoomName,
    from: &super::jid::Jid<'_>,
    cx: &Ctx<'_>,
) {
    if !cx.state.rooms.contains_key(name) {
        muc.send(stanzas::error_reply(iq, "cancel", "item-not-found", None));
        return;
    }
    let mut q = Element::new("query", NS_DISCO_ITEMS);
    let full = from.bare() + &from.resource.map(|r| format!("/{r}")).unwrap_or_default();
    let inside = muc
        .occupants
        .room(name)
        .is_some_and(|r| r.by_jid(&full).is_some());
    if inside {
        if let Some(r) = muc.occupants.room(name) {
            for o in r.iter() {
                q = q.child(
                    Element::new("item", NS_DISCO_ITEMS)
                        .attr("jid", &muc.occupant_jid(name, &o.nick)),
                );
            }
        }
    }
    muc.send(stanzas::iq_result(iq).child(q));
}

/// A XEP-0313 query on the room's archive: for occupants, and for members of a
/// members-only room; the answer comes from the journal.
pub fn mam(muc: &mut Muc, iq: &Element, name: &RoomName, from: &super::jid::Jid<'_>, cx: &Ctx<'_>) {
    let Some(room) = cx.state.rooms.get(name) else {
        muc.send(stanzas::error_reply(iq, "cancel", "item-not-found", None));
        return;
    };
    let full = from.bare() + &from.resource.map(|r| format!("/{r}")).unwrap_or_default();
    let inside = muc
        .occupants
        .room(name)
        .is_some_and(|r| r.by_jid(&full).is_some());
    let addr = super::jid::user_address(from);
    let affiliated = addr
        .as_ref()
        .map(|a| cx.state.principal_of(a))
        .is_some_and(|p| {
            room.affiliations
                .get(&p)
                .is_some_and(|r| *r >= Role::Member)
        });
    if !(inside || (!room.config.private && addr.is_some()) || affiliated) {
        muc.send(stanzas::error_reply(iq, "auth", "forbidden", None));
        return;
    }
    let q = match crate::mam::parse_query(iq) {
        Ok(q) => q,
        Err(e) => {
            let kind = if e.condition() == "bad-request" {
                "modify"
            } else {
                "cancel"
            };
            muc.send(stanzas::error_reply(
                iq,
                kind,
                e.condition(),
                Some(&e.to_string()),
            ));
            return;
        }
    };
    let page = match cx.archive.query(name, &q) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(code = e.code(), error = %e, "archive query failed");
            muc.send(stanzas::error_reply(iq, "cancel", e.condition(), None));
            return;
        }
    };
    let nick = nick_lookup(nick_table(muc, name, cx));
    let room_jid = muc.room_jid(name);
    for m in &page.messages {
        let r = crate::mam::result_message(&full, &room_jid, q.query_id.as_deref(), m, &nick);
        muc.send(r);
    }
    muc.send(crate::mam::fin(iq, &page));
}

/// Who is shown under which nickname in a room now (XMPP occupants, then others).
pub fn nick_table(muc: &Muc, name: &RoomName, cx: &Ctx<'_>) -> Vec<(Address, String)> {
    let mut out: Vec<(Address, String)> = muc
        .occupants
        .room(name)
        .map(|r| {
            r.iter()
                .map(|o| (o.address.clone(), o.nick.clone()))
                .collect()
        })
        .unwrap_or_default();
    if let (Some(others), Some(room)) = (muc.others.get(name), cx.state.rooms.get(name)) {
        for (p, nick) in others {
            if let Some(m) = room.members.get(p) {
                if let Some(s) = m.sessions.values().next() {
                    out.push((s.address.clone(), nick.clone()));
                }
            }
        }
    }
    out
}

/// The nickname a sender is shown under: their occupant's, else a derived one.
pub fn nick_of(muc: &Muc, name: &RoomName, address: &Address, cx: &Ctx<'_>) -> String {
    nick_lookup(nick_table(muc, name, cx))(address)
}

/// The subject message sent after a join (empty `<subject/>` when there is none).
pub fn subject_message(muc: &Muc, name: &RoomName, to: &str, cx: &Ctx<'_>) -> Element {
    let room = cx.state.rooms.get(name);
    let subject = room.and_then(|r| r.subject.as_ref());
    let from = match subject.and_then(|s| s.by.as_ref()) {
        Some(by) => muc.occupant_jid(name, &nick_of(muc, name, by, cx)),
        None => muc.room_jid(name),
    };
    let text = subject.map(|s| s.text.as_str()).unwrap_or_default();
    stanzas::groupchat(&from, to, None).child(Element::new("subject", NS_COMPONENT).text(text))
}
