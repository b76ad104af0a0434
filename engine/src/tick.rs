//! `tick`: the passage of time as events. The service calls it with the current time
//! when a deadline comes and appends what it returns, so expiry is journaled like
//! everything else and replay never needs a clock.
//!
//! Every time-driven change is a [`Timer`]: the instant something falls due ([`Due`]).
//! [`tick`] turns the timers due at `now` into events; [`next_deadline`] is the earliest
//! timer, so the service can sleep until then instead of polling. Both walk the one list
//! [`for_each_timer`] makes, so they cannot disagree about what is due.
//!
//! To add a kind of deadline (leases, say): add a [`Due`] variant, list its timers in
//! [`for_each_timer`] and say in [`Due::event`] which event it becomes. Its event must
//! remove the timer when evolved (or move it later), or the clock would tick again at
//! once; the property tests in `engine/tests/deadlines.rs` check both rules for every
//! kind.

use chrono::{DateTime, TimeDelta, Utc};

use crate::context::Actor;
use crate::event::{AutobanKey, Event, EventKind, InvalidationReason, LeaveReason};
use crate::ids::{AccountId, InvitationId, Principal, RoomName, SessionId};
use crate::model::BanScope;
use crate::state::State;

/// The actor named on time-driven events.
pub const CLOCK: &str = "clock";

/// Something in the state that falls due at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer<'a> {
    /// From this instant on (inclusive), [`tick`] turns it into an event.
    pub at: DateTime<Utc>,
    pub due: Due<'a>,
}

/// What falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due<'a> {
    /// An open (pending or accepted) invitation reaches its expiry.
    Invitation {
        room: &'a RoomName,
        invitation: &'a InvitationId,
    },
    /// A room ban with an end.
    RoomBan {
        room: &'a RoomName,
        subject: &'a Principal,
    },
    /// An account ban (rendezvous conferences) with an end.
    AccountBan {
        account: &'a AccountId,
        subject: &'a Principal,
    },
    /// A server ban with an end.
    ServerBan { subject: &'a Principal },
    /// A room address ban with an end.
    RoomAddressBan {
        room: &'a RoomName,
        remote: &'a String,
        id: &'a String,
    },
    /// An account address ban with an end.
    AccountAddressBan {
        account: &'a AccountId,
        remote: &'a String,
        id: &'a String,
    },
    /// A server address ban with an end.
    ServerAddressBan { remote: &'a String, id: &'a String },
    /// An autoban ends.
    Autoban { key: &'a AutobanKey },
    /// A session's lease runs out: its gateway stopped renewing it.
    Lease {
        room: &'a RoomName,
        principal: &'a Principal,
        session: &'a SessionId,
    },
    /// A room that may expire (empty, without sub-rooms, not an account's rendezvous
    /// room, not persistent) reaches its inactivity timeout.
    RoomIdle {
        room: &'a RoomName,
        last_activity: DateTime<Utc>,
        reserved: bool,
    },
}

impl Due<'_> {
    /// The event it becomes when a tick at `now` finds it due.
    pub fn event(&self, now: DateTime<Utc>) -> EventKind {
        match *self {
            Due::Invitation { room, invitation } => EventKind::InvitationInvalidated {
                room: room.clone(),
                invitation: invitation.clone(),
                reason: InvalidationReason::Expired,
            },
            Due::RoomBan { room, subject } => EventKind::Unbanned {
                scope: BanScope::Room(room.clone()),
                subject: subject.clone(),
                expired: true,
            },
            Due::AccountBan { account, subject } => EventKind::Unbanned {
                scope: BanScope::Account(account.clone()),
                subject: subject.clone(),
                expired: true,
            },
            Due::ServerBan { subject } => EventKind::Unbanned {
                scope: BanScope::Server,
                subject: subject.clone(),
                expired: true,
            },
            Due::RoomAddressBan { room, remote, id } => EventKind::AddressUnbanned {
                scope: BanScope::Room(room.clone()),
                id: id.clone(),
                remote: remote.clone(),
                expired: true,
            },
            Due::AccountAddressBan {
                account,
                remote,
                id,
            } => EventKind::AddressUnbanned {
                scope: BanScope::Account(account.clone()),
                id: id.clone(),
                remote: remote.clone(),
                expired: true,
            },
            Due::ServerAddressBan { remote, id } => EventKind::AddressUnbanned {
                scope: BanScope::Server,
                id: id.clone(),
                remote: remote.clone(),
                expired: true,
            },
            Due::Autoban { key } => EventKind::AutobanLifted { key: key.clone() },
            Due::Lease {
                room,
                principal,
                session,
            } => EventKind::Left {
                room: room.clone(),
                principal: principal.clone(),
                session: session.clone(),
                reason: LeaveReason::LeaseExpired,
            },
            Due::RoomIdle {
                room,
                last_activity,
                reserved,
            } => {
                let idle = now.signed_duration_since(last_activity).num_seconds();
                EventKind::RoomExpired {
                    room: room.clone(),
                    idle_secs: u64::try_from(idle).unwrap_or(0),
                    reserved,
                }
            }
        }
    }
}

/// Calls `f` with every timer in the state, in the order [`tick`] emits their events:
/// per room (by name) its invitations, its bans, its address bans, then its sessions'
/// leases; account bans and address bans; server bans and address bans; autobans; then
/// idle rooms.
///
/// Invitations expire at `expires_at`, bans, address bans and autobans end at `until`
/// (a ban without one never ends), and a room expires once it has been idle for its inactivity timeout
/// (VROOM: reserved rooms use their own timeout, 0 = never; a persistent room never
/// does), counted in whole seconds from its last activity.
pub fn for_each_timer<'a>(state: &'a State, mut f: impl FnMut(Timer<'a>)) {
    for (room, r) in &state.rooms {
        for (invitation, inv) in &r.invitations {
            if let (true, Some(at)) = (inv.is_open(), inv.expires_at) {
                f(Timer {
                    at,
                    due: Due::Invitation { room, invitation },
                });
            }
        }
        for (subject, ban) in &r.bans {
            if let Some(at) = ban.until {
                f(Timer {
                    at,
                    due: Due::RoomBan { room, subject },
                });
            }
        }
        for (remote, ban) in &r.address_bans {
            if let Some(at) = ban.until {
                f(Timer {
                    at,
                    due: Due::RoomAddressBan {
                        room,
                        remote,
                        id: &ban.id,
                    },
                });
            }
        }
        for (principal, member) in &r.members {
            for (session, presence) in &member.sessions {
                if let Some(at) = presence.lease_until {
                    f(Timer {
                        at,
                        due: Due::Lease {
                            room,
                            principal,
                            session,
                        },
                    });
                }
            }
        }
    }
    for (account, acc) in &state.accounts {
        for (subject, ban) in &acc.bans {
            if let Some(at) = ban.until {
                f(Timer {
                    at,
                    due: Due::AccountBan { account, subject },
                });
            }
        }
        for (remote, ban) in &acc.address_bans {
            if let Some(at) = ban.until {
                f(Timer {
                    at,
                    due: Due::AccountAddressBan {
                        account,
                        remote,
                        id: &ban.id,
                    },
                });
            }
        }
    }
    for (subject, ban) in &state.server_bans {
        if let Some(at) = ban.until {
            f(Timer {
                at,
                due: Due::ServerBan { subject },
            });
        }
    }
    for (remote, ban) in &state.server_address_bans {
        if let Some(at) = ban.until {
            f(Timer {
                at,
                due: Due::ServerAddressBan {
                    remote,
                    id: &ban.id,
                },
            });
        }
    }
    for (key, until) in &state.autobans {
        f(Timer {
            at: *until,
            due: Due::Autoban { key },
        });
    }
    let policy = &state.policy;
    for (room, r) in &state.rooms {
        let reserved = r.is_reserved();
        let timeout_mins = if reserved {
            policy.reserved_inactivity_timeout_mins
        } else {
            policy.inactivity_timeout_mins
        };
        // A persistent room never expires for being idle (XEP-0045 persistent rooms),
        // as a reserved room with a timeout of 0.
        if timeout_mins == 0
            || r.config.persistent
            || !r.members.is_empty()
            || !r.children.is_empty()
            || r.account.is_some()
        {
            continue;
        }
        // Past the end of time (a far-future last activity) it never expires.
        let timeout = TimeDelta::seconds(i64::from(timeout_mins) * 60);
        if let Some(at) = r.last_activity.checked_add_signed(timeout) {
            f(Timer {
                at,
                due: Due::RoomIdle {
                    room,
                    last_activity: r.last_activity,
                    reserved,
                },
            });
        }
    }
}

/// Everything that has expired at `now`: invitations, bans and address bans (room,
/// account, server), autobans, and rooms idle past their inactivity timeout (see [`for_each_timer`]).
pub fn tick(state: &State, now: DateTime<Utc>) -> Vec<Event> {
    let actor = Actor::Service(CLOCK.to_owned());
    let mut out = Vec::new();
    for_each_timer(state, |t| {
        if t.at <= now {
            out.push(Event {
                at: now,
                actor: actor.clone(),
                kind: t.due.event(now),
            });
        }
    });
    out
}

/// The earliest instant, from `now` on, at which [`tick`] returns events: `Some(now)` when
/// something is due already, `None` when nothing ever falls due without a command.
/// Once reached, a deadline stays due until the tick's events are applied.
pub fn next_deadline(state: &State, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut earliest: Option<DateTime<Utc>> = None;
    for_each_timer(state, |t| {
        earliest = Some(earliest.map_or(t.at, |e| e.min(t.at)));
    });
    earliest.map(|e| e.max(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Actor;
    use crate::ids::Address;
    use crate::model::RoomConfig;
    use crate::policy::Policy;
    use crate::state::{Ban, Invitation, InvitationState, Room};

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 250_000_000).unwrap()
    }

    fn secs(n: i64) -> TimeDelta {
        TimeDelta::seconds(n)
    }

    fn name(n: &str) -> RoomName {
        RoomName::from_stored(n.into())
    }

    fn bob() -> Principal {
        Principal::Address(Address::parse("sip:bob@example.org").unwrap())
    }

    fn ban(until: Option<DateTime<Utc>>) -> Ban {
        Ban {
            reason: None,
            by: Actor::Admin,
            at: t0(),
            until,
        }
    }

    /// A server with one empty room, idle since `t0`, that would expire after an hour.
    fn server() -> State {
        let mut s = State::new(Policy::default());
        s.rooms.insert(
            name("standup"),
            Room::new(None, 0, t0(), RoomConfig::default()),
        );
        s
    }

    #[test]
    fn nothing_timed_means_no_deadline() {
        let mut s = server();
        s.policy.inactivity_timeout_mins = 0;
        s.server_bans.insert(bob(), ban(None));
        assert_eq!(next_deadline(&s, t0()), None);
        assert!(tick(&s, DateTime::<Utc>::MAX_UTC).is_empty());
    }

    #[test]
    fn an_idle_room_is_due_after_its_timeout_to_the_nanosecond() {
        let s = server();
        let deadline = t0() + secs(3600);
        assert_eq!(next_deadline(&s, t0()), Some(deadline));
        assert!(tick(&s, deadline - TimeDelta::nanoseconds(1)).is_empty());
        let events = tick(&s, deadline);
        assert!(matches!(
            &events[..],
            [Event {
                kind: EventKind::RoomExpired {
                    idle_secs: 3600,
                    reserved: false,
                    ..
                },
                ..
            }]
        ));
    }

    #[test]
    fn a_room_in_use_has_no_idle_deadline() {
        let mut s = server();
        let room = s.rooms.get_mut(&name("standup")).unwrap();
        room.children.insert(name("breakout"));
        assert_eq!(next_deadline(&s, t0()), None);
    }

    #[test]
    fn reserved_rooms_use_their_own_timeout() {
        let mut s = server();
        s.rooms.get_mut(&name("standup")).unwrap().reserved = Some("fake$pw".into());
        assert_eq!(next_deadline(&s, t0()), Some(t0() + secs(86_400 * 60)));
        s.policy.reserved_inactivity_timeout_mins = 0;
        assert_eq!(next_deadline(&s, t0()), None);
    }

    #[test]
    fn the_earliest_timer_wins() {
        let mut s = server();
        s.server_bans.insert(bob(), ban(Some(t0() + secs(600))));
        s.autobans
            .insert(AutobanKey::Remote("h:1".into()), t0() + secs(300));
        let room = s.rooms.get_mut(&name("standup")).unwrap();
        room.bans.insert(bob(), ban(Some(t0() + secs(900))));
        room.invitations.insert(
            InvitationId::from_stored("i1".into()),
            Invitation {
                invitee: Address::parse("sip:carol@example.org").unwrap(),
                by: Actor::Admin,
                issued_at: t0(),
                expires_at: Some(t0() + secs(120)),
                single_use: true,
                state: InvitationState::Pending,
                secret_digest: None,
            },
        );
        assert_eq!(next_deadline(&s, t0()), Some(t0() + secs(120)));
        // An invitation no longer open does not expire.
        let room = s.rooms.get_mut(&name("standup")).unwrap();
        crate::state::update_where(
            &mut room.invitations,
            |_, _| true,
            |inv| inv.state = InvitationState::Used,
        );
        assert_eq!(next_deadline(&s, t0()), Some(t0() + secs(300)));
    }

    #[test]
    fn a_timed_address_ban_is_a_deadline_and_ends_at_it() {
        let mut s = server();
        s.policy.inactivity_timeout_mins = 0;
        let ends = t0() + secs(60);
        s.server_address_bans.insert(
            "h:1".into(),
            crate::state::AddressBan {
                id: "b1".into(),
                subject: None,
                reason: None,
                by: Actor::Admin,
                at: t0(),
                until: Some(ends),
            },
        );
        assert_eq!(next_deadline(&s, t0()), Some(ends));
        assert!(tick(&s, ends - TimeDelta::nanoseconds(1)).is_empty());
        assert!(matches!(
            &tick(&s, ends)[..],
            [Event {
                kind: EventKind::AddressUnbanned {
                    scope: BanScope::Server,
                    expired: true,
                    ..
                },
                ..
            }]
        ));
    }

    #[test]
    fn something_already_due_is_due_now() {
        let mut s = server();
        s.server_bans.insert(bob(), ban(Some(t0())));
        let later = t0() + secs(5);
        assert_eq!(next_deadline(&s, later), Some(later));
        assert_eq!(tick(&s, later).len(), 1);
    }
}
