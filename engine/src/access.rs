//! Who may do and see what in a room: the rank rules and the visibility rules, answered
//! here once so that no gateway keeps its own copy.

use chrono::{DateTime, Utc};

use crate::ids::{Address, Principal, RoomName, SessionId};
use crate::model::Role;
use crate::state::{Room, State};

/// How much an actor may do in a room. Operators outrank everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    Nobody,
    Visitor,
    Member,
    Moderator,
    Owner,
    Operator,
}

impl From<Role> for Rank {
    fn from(r: Role) -> Self {
        match r {
            Role::Visitor => Rank::Visitor,
            Role::Member => Rank::Member,
            Role::Moderator => Rank::Moderator,
            Role::Owner => Rank::Owner,
        }
    }
}

/// Who is looking at a room.
#[derive(Debug, Clone, Copy)]
pub enum Viewer<'a> {
    /// The admin or a service acting for the server.
    Operator,
    /// The holder of a right granted in the room (a gateway's token, dialog or
    /// occupancy): `session` is `None` for a room creator's right.
    Holder {
        room: &'a RoomName,
        identity: &'a Address,
        session: Option<&'a SessionId>,
    },
    /// Anyone else.
    Stranger,
}

/// How much of a room a viewer may see, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sight {
    /// Name, subject, counts: what a room list shows.
    Public,
    /// Someone waiting in the lobby: no roster, no chat, only what concerns them.
    Waiting,
    /// A participant: roster, roles, chat, the room's events.
    Participant,
    /// A moderator (or the admin): lobby, invitations, bans too.
    Moderator,
}

impl State {
    /// The rank of a principal in a room (not of an operator). Banned people and
    /// disabled accounts have none: a ban strips moderation rights (Jami).
    pub fn rank_in(&self, name: &RoomName, room: &Room, p: &Principal, now: DateTime<Utc>) -> Rank {
        if self.is_banned_in(name, p, now) || self.account_of(p).is_some_and(|a| !a.enabled) {
            return Rank::Nobody;
        }
        let present = room.members.contains_key(p);
        let mut rank = match room.affiliations.get(p) {
            Some(r) => Rank::from(*r),
            None if present => room.config.default_role.map_or(Rank::Visitor, Rank::from),
            None => Rank::Nobody,
        };
        if self.is_account_moderator(room, p) {
            rank = rank.max(Rank::Moderator);
        }
        if let (Some(acc), Principal::Account(pa)) = (&room.account, p) {
            if acc == pa {
                rank = rank.max(Rank::Owner);
            }
        }
        rank
    }

    /// Whether `viewer` may see the real addresses of the people in room `name`
    /// (XEP-0045: a moderator always, in a semi-anonymous room only a moderator, in a
    /// non-anonymous one, `public_addresses`, every participant). Those waiting in the
    /// lobby and strangers never do.
    pub fn sees_addresses(&self, name: &RoomName, viewer: Viewer<'_>, now: DateTime<Utc>) -> bool {
        match self.sight(name, viewer, now) {
            Some(Sight::Moderator) => true,
            Some(Sight::Participant) => self
                .rooms
                .get(name)
                .is_some_and(|r| r.config.public_addresses),
            Some(Sight::Waiting | Sight::Public) | None => false,
        }
    }

    /// What `viewer` may see of room `name`, or `None` when, for this viewer, the room
    /// does not exist: missing, or private and the viewer a stranger to it (a private
    /// room gives a stranger the same answer as a missing one).
    pub fn sight(&self, name: &RoomName, viewer: Viewer<'_>, now: DateTime<Utc>) -> Option<Sight> {
        let room = self.rooms.get(name)?;
        let stranger = if room.config.private {
            None
        } else {
            Some(Sight::Public)
        };
        match viewer {
            Viewer::Operator => Some(Sight::Moderator),
            Viewer::Stranger => stranger,
            Viewer::Holder {
                room: granted_in,
                identity,
                session,
            } => {
                if granted_in != name || !self.grant_holds(name, identity, session, now) {
                    return stranger;
                }
                let p = self.principal_of(identity);
                let present = session.is_none_or(|s| {
                    room.members
                        .get(&p)
                        .is_some_and(|m| m.sessions.contains_key(s))
                });
                if !present {
                    return Some(Sight::Waiting);
                }
                if self.rank_in(name, room, &p, now) >= Rank::Moderator {
                    Some(Sight::Moderator)
                } else {
                    Some(Sight::Participant)
                }
            }
        }
    }
}
