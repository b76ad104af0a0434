//! The XMPP occupants the gateway holds: who is in which room under which nickname,
//! by full JID. The engine's projection says who is present and with what rights; this
//! registry adds what only XMPP has (the nickname, the client's full JID and its last
//! presence), for the sessions this gateway opened.

use std::collections::{BTreeMap, HashMap};

use conclave_engine::ids::{Address, RoomName, SessionId};
use sha1::{Digest, Sha1};

use crate::xml::Element;

/// One XMPP client in one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupant {
    /// The nickname (the room JID's resource).
    pub nick: String,
    /// The client's full JID.
    pub jid: String,
    /// The user's identity (`xmpp:` + bare JID).
    pub address: Address,
    /// The engine session ([`session_for`] of the full JID).
    pub session: SessionId,
    /// The `<show>` and `<status>` the client last sent, repeated to others.
    pub show: Vec<Element>,
}

/// The occupants of one room, by nickname and by full JID.
#[derive(Debug, Clone, Default)]
pub struct RoomOccupants {
    by_nick: BTreeMap<String, Occupant>,
    by_jid: HashMap<String, String>,
}

impl RoomOccupants {
    /// The occupant using `nick`.
    pub fn by_nick(&self, nick: &str) -> Option<&Occupant> {
        self.by_nick.get(nick)
    }

    /// The occupant that is the client `jid`.
    pub fn by_jid(&self, jid: &str) -> Option<&Occupant> {
        self.by_jid.get(jid).and_then(|n| self.by_nick.get(n))
    }

    /// The occupant with engine session `session`.
    pub fn by_session(&self, session: &SessionId) -> Option<&Occupant> {
        self.by_nick.values().find(|o| &o.session == session)
    }

    /// Every occupant, by nickname.
    pub fn iter(&self) -> impl Iterator<Item = &Occupant> {
        self.by_nick.values()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.by_nick.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_nick.is_empty()
    }

    /// Adds or replaces an occupant.
    pub fn insert(&mut self, o: Occupant) {
        if let Some(old) = self.by_jid.get(&o.jid).cloned() {
            self.by_nick.remove(&old);
        }
        self.by_jid.insert(o.jid.clone(), o.nick.clone());
        self.by_nick.insert(o.nick.clone(), o);
    }

    /// Removes the client `jid`.
    pub fn remove_jid(&mut self, jid: &str) -> Option<Occupant> {
        let nick = self.by_jid.remove(jid)?;
        self.by_nick.remove(&nick)
    }

    /// Sets the show/status of the client `jid`.
    pub fn set_show(&mut self, jid: &str, show: Vec<Element>) {
        if let Some(n) = self.by_jid.get(jid) {
            if let Some(o) = self.by_nick.get_mut(n) {
                o.show = show;
            }
        }
    }
}

/// Every room's XMPP occupants.
#[derive(Debug, Clone, Default)]
pub struct Occupants {
    rooms: BTreeMap<RoomName, RoomOccupants>,
}

impl Occupants {
    /// The occupants of a room (none if no XMPP client is in it).
    pub fn room(&self, room: &RoomName) -> Option<&RoomOccupants> {
        self.rooms.get(room)
    }

    /// The same, to change.
    pub fn room_mut(&mut self, room: &RoomName) -> &mut RoomOccupants {
        self.rooms.entry(room.clone()).or_default()
    }

    /// Removes an occupant; drops the room's entry when it empties.
    pub fn remove(&mut self, room: &RoomName, jid: &str) -> Option<Occupant> {
        let r = self.rooms.get_mut(room)?;
        let o = r.remove_jid(jid);
        if r.is_empty() {
            self.rooms.remove(room);
        }
        o
    }

    /// Drops a room's occupants (the room is gone), returning them.
    pub fn take_room(&mut self, room: &RoomName) -> Vec<Occupant> {
        self.rooms
            .remove(room)
            .map(|r| r.by_nick.into_values().collect())
            .unwrap_or_default()
    }

    /// Every (room, occupant).
    pub fn iter(&self) -> impl Iterator<Item = (&RoomName, &Occupant)> {
        self.rooms
            .iter()
            .flat_map(|(n, r)| r.iter().map(move |o| (n, o)))
    }

    /// Every room with XMPP occupants.
    pub fn rooms(&self) -> impl Iterator<Item = (&RoomName, &RoomOccupants)> {
        self.rooms.iter()
    }

    /// How many occupants in all.
    pub fn count(&self) -> usize {
        self.rooms.values().map(RoomOccupants::len).sum()
    }
}

/// The engine session of an XMPP client: derived from its full JID, so that the same
/// client is the same session in every room and after the component reconnects, and
/// opaque (a JID is personal data; the journal keeps it in the actor's address only).
pub fn session_for(full_jid: &str) -> SessionId {
    let digest = Sha1::digest(full_jid.as_bytes());
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    SessionId::from_stored(format!("xmpp-{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occ(nick: &str, jid: &str) -> Occupant {
        Occupant {
            nick: nick.into(),
            jid: jid.into(),
            address: Address::parse("xmpp:a@localhost").unwrap_or_else(|e| panic!("{e}")),
            session: session_for(jid),
            show: Vec::new(),
        }
    }

    #[test]
    fn a_client_that_changes_nickname_keeps_one_entry() {
        let mut r = RoomOccupants::default();
        r.insert(occ("old", "a@localhost/x"));
        r.insert(occ("new", "a@localhost/x"));
        assert_eq!(r.len(), 1);
        assert!(r.by_nick("old").is_none());
        assert_eq!(
            r.by_jid("a@localhost/x").map(|o| o.nick.as_str()),
            Some("new")
        );
    }

    #[test]
    fn sessions_are_stable_opaque_ids() {
        let s = session_for("a@localhost/x");
        assert_eq!(s, session_for("a@localhost/x"));
        assert_ne!(s, session_for("a@localhost/y"));
        assert!(SessionId::parse(s.as_str()).is_ok());
        assert!(!s.as_str().contains("localhost"));
    }

    #[test]
    fn a_room_entry_goes_when_its_last_occupant_does() {
        let mut all = Occupants::default();
        let room = RoomName::from_stored("r".into());
        all.room_mut(&room).insert(occ("n", "a@localhost/x"));
        assert!(all.remove(&room, "a@localhost/x").is_some());
        assert!(all.room(&room).is_none());
    }
}
