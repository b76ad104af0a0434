//! IM membership: the session an IM member holds in a room, and the [`Roster`] of who
//! holds one, kept from the committed feed so that a notice goes to the members as they
//! were *before* its event (a destroyed room has no members afterwards, a kicked person
//! is no longer in it).

use std::collections::{BTreeMap, BTreeSet};

use conclave_engine::model::BanScope;
use conclave_engine::state::State;
use conclave_engine::{
    AccountId, Actor, Address, Event, EventKind, Principal, RoomName, Scheme, SessionId,
};

use super::fanout::{notices_for, EventNotice, Recipients};
use super::{Addressing, Notice};

/// The session an IM member holds in a room: `sip-im-` and 16 hex digits of a hash of
/// the address. Deterministic, so a `#join` repeated is the same session (the engine
/// answers "already in the room") and `#exit` finds it without any gateway memory.
pub fn im_session(address: &Address) -> SessionId {
    let hash = blake3::hash(address.to_string().as_bytes());
    let hex = hash.to_hex();
    let short: String = hex.as_str().chars().take(16).collect();
    // 23 characters of [a-z0-9-]: a valid session id by construction.
    SessionId::from_stored(format!("sip-im-{short}"))
}

/// Whether a session is the IM session of a SIP identity.
fn is_im(session: &SessionId, address: &Address) -> bool {
    address.scheme() == Scheme::Sip && *session == im_session(address)
}

/// Who holds an IM session in which room, and which SIP identities are linked to which
/// account (events name people by account once linked). Its size follows the engine's
/// state (bounded by the server's user limit), never what a stranger sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    rooms: BTreeMap<RoomName, BTreeMap<SessionId, Address>>,
    links: BTreeMap<Address, AccountId>,
}

impl Roster {
    /// The roster of a state (at start, and to reconcile when [`Roster::apply`] says so).
    pub fn from_state(state: &State) -> Self {
        let mut rooms: BTreeMap<RoomName, BTreeMap<SessionId, Address>> = BTreeMap::new();
        for (name, room) in &state.rooms {
            for member in room.members.values() {
                for (session, presence) in &member.sessions {
                    if is_im(session, &presence.address) {
                        rooms
                            .entry(name.clone())
                            .or_default()
                            .insert(session.clone(), presence.address.clone());
                    }
                }
            }
        }
        let links = state
            .identities
            .iter()
            .filter(|(a, _)| a.scheme() == Scheme::Sip)
            .map(|(a, acc)| (a.clone(), acc.clone()))
            .collect();
        Roster { rooms, links }
    }

    /// The IM members of a room (each identity once).
    pub fn members(&self, room: &RoomName) -> BTreeSet<&Address> {
        self.rooms
            .get(room)
            .map(|s| s.values().collect())
            .unwrap_or_default()
    }

    /// The identities a notice goes to, as the roster stands (call before applying the
    /// event the notice is about).
    pub fn resolve(&self, n: &EventNotice, actor: &Actor) -> Vec<Address> {
        match &n.recipients {
            Recipients::One(a) => vec![a.clone()],
            Recipients::Members => self
                .members(&n.room)
                .into_iter()
                .filter(|a| actor.identity() != Some(*a))
                .cloned()
                .collect(),
            Recipients::Person(p) => self
                .members(&n.room)
                .into_iter()
                .filter(|a| principal(&self.links, a) == *p)
                .cloned()
                .collect(),
        }
    }

    /// The `MESSAGE`s to send for a committed event, then the event applied: what the
    /// gateway's feed loop calls for every event. Returns the notices and whether the
    /// roster should be rebuilt with [`Roster::from_state`] (see [`Roster::apply`]).
    pub fn deliveries(&mut self, event: &Event, addressing: &Addressing) -> (Vec<Notice>, bool) {
        let mut out = Vec::new();
        for n in notices_for(event, addressing) {
            let from_uri = addressing.room_uri(&n.room);
            for to in self.resolve(&n, &event.actor) {
                out.push(Notice {
                    to,
                    from_uri: from_uri.clone(),
                    body: n.body.clone(),
                });
            }
        }
        let stale = self.apply(event);
        (out, stale)
    }

    /// Applies an event. Returns `true` when the event may have ended IM sessions in a
    /// way the roster does not follow by itself (server or account bans, address bans
    /// and autobans, a disabled account, an expired room tree): rebuild it from the
    /// state then. A stale roster only sends a notice too many, never loses a member.
    pub fn apply(&mut self, event: &Event) -> bool {
        use EventKind as E;
        match &event.kind {
            E::Joined {
                room,
                address,
                session,
                ..
            } => {
                if is_im(session, address) {
                    self.rooms
                        .entry(room.clone())
                        .or_default()
                        .insert(session.clone(), address.clone());
                }
                false
            }
            E::Left { room, session, .. } => {
                remove(&mut self.rooms, room, |s, _| s == session);
                false
            }
            E::Kicked { room, subject, .. }
            | E::Banned {
                scope: BanScope::Room(room),
                subject,
                ..
            } => {
                let Roster { rooms, links } = self;
                remove(rooms, room, |_, a| principal(links, a) == *subject);
                false
            }
            E::RoomDeleted { room, .. } => {
                self.rooms.remove(room);
                false
            }
            E::IdentityLinked { account, address } => {
                if address.scheme() == Scheme::Sip {
                    self.links.insert(address.clone(), account.clone());
                }
                false
            }
            E::IdentityUnlinked { address, .. } => {
                self.links.remove(address);
                false
            }
            E::RoomExpired { room, .. } => {
                self.rooms.remove(room);
                true
            }
            E::Banned { .. }
            | E::AddressBanned { .. }
            | E::AccountDisabled { .. }
            | E::AutobanApplied {
                ends_sessions: true,
                ..
            } => true,
            _ => false,
        }
    }
}

/// Drops the sessions of `room` that are `gone`, and the room once it has none.
fn remove(
    rooms: &mut BTreeMap<RoomName, BTreeMap<SessionId, Address>>,
    room: &RoomName,
    mut gone: impl FnMut(&SessionId, &Address) -> bool,
) {
    if let Some(sessions) = rooms.get_mut(room) {
        sessions.retain(|s, a| !gone(s, a));
        if sessions.is_empty() {
            rooms.remove(room);
        }
    }
}

/// The person behind an identity, as the engine keys it.
fn principal(links: &BTreeMap<Address, AccountId>, a: &Address) -> Principal {
    match links.get(a) {
        Some(acc) => Principal::Account(acc.clone()),
        None => Principal::Address(a.clone()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn im_sessions_are_deterministic_valid_ids() {
        let a = Address::parse("sip:alice@example.org").unwrap();
        let b = Address::parse("sip:bob@example.org").unwrap();
        assert_eq!(im_session(&a), im_session(&a));
        assert_ne!(im_session(&a), im_session(&b));
        assert!(SessionId::parse(im_session(&a).as_str()).is_ok());
        assert!(im_session(&a).as_str().starts_with("sip-im-"));
    }
}
