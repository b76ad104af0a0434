//! `tick`: the passage of time as events. The service calls it periodically with the
//! current time and appends what it returns, so expiry is journaled like everything
//! else and replay never needs a clock.

use chrono::{DateTime, Utc};

use crate::context::Actor;
use crate::event::{Event, EventKind, InvalidationReason};
use crate::model::BanScope;
use crate::state::State;

/// The actor named on time-driven events.
pub const CLOCK: &str = "clock";

/// Everything that has expired at `now`: invitations, bans (room, account, server),
/// autobans, and rooms idle past their inactivity timeout (VROOM: reserved rooms use
/// their own timeout, 0 = never). A room expires only when empty, without sub-rooms and
/// not serving as an account's rendezvous room.
pub fn tick(state: &State, now: DateTime<Utc>) -> Vec<Event> {
    let actor = Actor::Service(CLOCK.to_owned());
    let ev = |kind| Event {
        at: now,
        actor: actor.clone(),
        kind,
    };
    let mut out = Vec::new();
    for (name, room) in &state.rooms {
        for (id, inv) in &room.invitations {
            if inv.is_open() && inv.expires_at.is_some_and(|e| e <= now) {
                out.push(ev(EventKind::InvitationInvalidated {
                    room: name.clone(),
                    invitation: id.clone(),
                    reason: InvalidationReason::Expired,
                }));
            }
        }
        for (p, ban) in &room.bans {
            if !ban.active_at(now) {
                out.push(ev(EventKind::Unbanned {
                    scope: BanScope::Room(name.clone()),
                    subject: p.clone(),
                    expired: true,
                }));
            }
        }
    }
    for (id, acc) in &state.accounts {
        for (p, ban) in &acc.bans {
            if !ban.active_at(now) {
                out.push(ev(EventKind::Unbanned {
                    scope: BanScope::Account(id.clone()),
                    subject: p.clone(),
                    expired: true,
                }));
            }
        }
    }
    for (p, ban) in &state.server_bans {
        if !ban.active_at(now) {
            out.push(ev(EventKind::Unbanned {
                scope: BanScope::Server,
                subject: p.clone(),
                expired: true,
            }));
        }
    }
    for (key, until) in &state.autobans {
        if *until <= now {
            out.push(ev(EventKind::AutobanLifted { key: key.clone() }));
        }
    }
    let policy = &state.policy;
    for (name, room) in &state.rooms {
        let timeout_mins = if room.is_reserved() {
            policy.reserved_inactivity_timeout_mins
        } else {
            policy.inactivity_timeout_mins
        };
        if timeout_mins == 0
            || !room.members.is_empty()
            || !room.children.is_empty()
            || room.account.is_some()
        {
            continue;
        }
        let idle = now.signed_duration_since(room.last_activity).num_seconds();
        if idle >= i64::from(timeout_mins) * 60 {
            out.push(ev(EventKind::RoomExpired {
                room: name.clone(),
                idle_secs: u64::try_from(idle).unwrap_or(0),
                reserved: room.is_reserved(),
            }));
        }
    }
    out
}
