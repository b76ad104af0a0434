//! given(events) / when(command) / then(events | rejection) harness.
//!
//! ```text
//! let mut w = given(vec![...events...]);          // or World::new() + w.run(...)
//! w.when(&alice(), create_room("r")).ok(&["room_create"]);
//! w.when(&bob(), kick("r", "alice")).err("perm.not_moderator", &["api_action_denied"]);
//! ```
//! `when` decides *and* applies what would be journaled (events on success, the
//! rejection's record on refusal), so scenarios read as a story.

#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use conclave_engine::testing::FakeVerifier;
use conclave_engine::*;

pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000, 0).unwrap()
}

pub fn sip(name: &str) -> Address {
    Address::parse(&format!("sip:{name}@example.org")).unwrap()
}

pub fn xmpp(name: &str) -> Address {
    Address::parse(&format!("xmpp:{name}@example.org")).unwrap()
}

pub fn user(name: &str) -> Actor {
    Actor::Identity(sip(name))
}

pub fn who(name: &str) -> Principal {
    Principal::Address(sip(name))
}

pub fn acct(id: &str) -> Principal {
    Principal::Account(AccountId::parse(id).unwrap())
}

pub fn aid(id: &str) -> AccountId {
    AccountId::parse(id).unwrap()
}

pub fn room(name: &str) -> RoomName {
    RoomName::lookup(name).unwrap()
}

pub fn sid(s: &str) -> SessionId {
    SessionId::parse(s).unwrap()
}

pub fn admin() -> Actor {
    Actor::Admin
}

pub fn hash(pw: &str) -> String {
    FakeVerifier::hash(pw)
}

// ---- command builders ----

pub fn create_room(name: &str) -> Command {
    Command::create_room(room(name), None)
}

pub fn create_private(name: &str) -> Command {
    match create_room(name) {
        Command::CreateRoom {
            room,
            parent,
            owner,
            max_members,
            welcome_text,
            access_password_hash,
            ..
        } => Command::CreateRoom {
            room,
            parent,
            private: true,
            owner,
            max_members,
            welcome_text,
            access_password_hash,
            server_password: None,
        },
        other => other,
    }
}

pub fn create_child(name: &str, parent: &str) -> Command {
    Command::CreateRoom {
        room: room(name),
        parent: Some(room(parent)),
        private: false,
        owner: None,
        max_members: None,
        welcome_text: None,
        access_password_hash: None,
        server_password: None,
    }
}

pub fn join(r: &str, s: &str) -> Command {
    join_with(r, s, Credentials::default())
}

pub fn join_with(r: &str, s: &str, credentials: Credentials) -> Command {
    Command::Join {
        room: room(r),
        session: sid(s),
        credentials,
    }
}

pub fn with_password(pw: &str) -> Credentials {
    Credentials {
        password: Some(Secret::new(pw)),
        ..Credentials::default()
    }
}

pub fn leave(r: &str, s: &str) -> Command {
    Command::Leave {
        room: room(r),
        session: sid(s),
    }
}

pub fn grant(r: &str, subject: Principal, role: Role) -> Command {
    Command::GrantRole {
        room: room(r),
        subject,
        role,
    }
}

pub fn kick(r: &str, subject: Principal) -> Command {
    Command::Kick {
        room: room(r),
        subject,
        reason: None,
    }
}

pub fn ban_room(r: &str, subject: Principal) -> Command {
    Command::Ban {
        scope: BanScope::Room(room(r)),
        subject,
        reason: Some("spam".into()),
        until: None,
    }
}

pub fn post(r: &str, body: &str) -> Command {
    Command::PostMessage {
        room: room(r),
        body: body.into(),
    }
}

// ---- the world ----

pub struct World {
    pub state: State,
    pub journal: Vec<Event>,
    pub now: DateTime<Utc>,
    pub remote: Option<String>,
    seq: u64,
}

/// Start from a policy and a list of past events.
pub fn given_with(policy: Policy, events: Vec<Event>) -> World {
    let mut w = World {
        state: State::new(policy),
        journal: Vec::new(),
        now: t0(),
        remote: None,
        seq: 0,
    };
    for e in events {
        evolve(&mut w.state, &e);
        w.journal.push(e);
    }
    w
}

/// Start from past events with the default policy.
pub fn given(events: Vec<Event>) -> World {
    given_with(Policy::default(), events)
}

impl World {
    pub fn new() -> Self {
        given(vec![])
    }

    pub fn with_policy(policy: Policy) -> Self {
        given_with(policy, vec![])
    }

    /// Move the clock.
    pub fn advance(&mut self, secs: i64) {
        self.now += Duration::seconds(secs);
    }

    pub fn ctx(&mut self, actor: &Actor) -> Context {
        self.seq += 1;
        let mut ctx = Context::new(actor.clone(), self.now, format!("corr-{}", self.seq));
        ctx.origin = Origin {
            gateway: "test".into(),
            protocol: "test".into(),
            remote_addr: self.remote.clone(),
        };
        ctx
    }

    /// Decide only (nothing applied).
    pub fn decide(&mut self, actor: &Actor, cmd: &Command) -> Decision {
        let ctx = self.ctx(actor);
        decide(&self.state, cmd, &ctx, &FakeVerifier)
    }

    fn apply(&mut self, events: &[Event]) {
        for e in events {
            evolve(&mut self.state, e);
            self.journal.push(e.clone());
        }
    }

    /// when(command): decide and apply what would be journaled.
    pub fn when(&mut self, actor: &Actor, cmd: Command) -> Then {
        let result = self.decide(actor, &cmd);
        match &result {
            Ok(events) => self.apply(events),
            Err(r) => self.apply(&r.record),
        }
        Then { result, cmd }
    }

    /// A setup step that must succeed.
    pub fn run(&mut self, actor: &Actor, cmd: Command) -> Vec<Event> {
        self.when(actor, cmd).events()
    }

    /// Apply the time-driven events at the current time.
    pub fn tick(&mut self) -> Vec<Event> {
        let events = tick(&self.state, self.now);
        self.apply(&events);
        events
    }

    pub fn members(&self, r: &str) -> Vec<Principal> {
        self.state
            .rooms
            .get(&room(r))
            .map(|r| r.members.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn role(&self, r: &str, p: &Principal) -> Option<Role> {
        self.state.affiliation(&room(r), p)
    }

    /// Replaying the journal from scratch gives the same state.
    pub fn assert_replays(&self, policy: Policy) {
        let replayed = replay(State::new(policy), &self.journal);
        assert_eq!(replayed, self.state, "replay diverged");
    }
}

pub struct Then {
    pub result: Decision,
    pub cmd: Command,
}

pub fn types(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.type_name()).collect()
}

impl Then {
    /// then(events): success with exactly these event types, in order.
    #[track_caller]
    pub fn ok(self, expected: &[&str]) -> Vec<Event> {
        match self.result {
            Ok(events) => {
                assert_eq!(types(&events), expected, "for {:?}", self.cmd);
                events
            }
            Err(r) => panic!(
                "expected success {expected:?} for {:?}, got {} ({:?})",
                self.cmd,
                r.rejection.code(),
                r.rejection
            ),
        }
    }

    /// then(events): success, whatever the events.
    #[track_caller]
    pub fn events(self) -> Vec<Event> {
        match self.result {
            Ok(events) => events,
            Err(r) => panic!(
                "expected success for {:?}, got {} ({:?})",
                self.cmd,
                r.rejection.code(),
                r.rejection
            ),
        }
    }

    /// then(rejection): refused with `code`, journaling exactly these event types.
    #[track_caller]
    pub fn err(self, code: &str, recorded: &[&str]) -> Rejected {
        match self.result {
            Ok(events) => panic!(
                "expected rejection {code} for {:?}, got events {:?}",
                self.cmd,
                types(&events)
            ),
            Err(r) => {
                assert_eq!(
                    r.rejection.code(),
                    code,
                    "for {:?}: {:?}",
                    self.cmd,
                    r.rejection
                );
                assert_eq!(types(&r.record), recorded, "recorded for {:?}", self.cmd);
                r
            }
        }
    }
}
