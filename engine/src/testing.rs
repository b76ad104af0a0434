//! Test support shared by this crate's tests and by other crates' (gateways, replay):
//! a fake password verifier, one sample of every event kind, and a test clock with a
//! way to move it and know the engine has caught up ([`advance`]).
//!
//! Not for production: [`FakeVerifier`] compares plaintext.
//!
//! An engine on a test clock, given / when / then:
//! ```no_run
//! # async fn example() -> Result<(), conclave_engine::service::EngineError> {
//! use chrono::TimeDelta;
//! use conclave_engine::service::{Engine, EngineConfig};
//! use conclave_engine::testing::{advance, test_clock};
//!
//! let clock = test_clock();
//! let engine = Engine::open(EngineConfig::new("/tmp/data").with_clock(clock.clone()))?;
//! // ... commands that start timers (a room left empty, an invitation, a timed ban) ...
//! let expired = advance(&engine, &clock, TimeDelta::minutes(60)).await?;
//! # Ok(()) }
//! ```

use chrono::{DateTime, TimeDelta, Utc};

use crate::context::{Actor, PasswordVerifier};
use crate::event::{
    AutobanKey, DeleteReason, DenyReason, Event, EventKind, InvalidationReason, LeaveReason,
    RoleVia,
};
use crate::ids::{AccountId, Address, InvitationId, MessageId, Principal, RoomName, SessionId};
use crate::model::{BanScope, InviteRight, PolicyChange, Role, RoomChange, RoomConfig};
use crate::service::{from_record, Applied, Engine, EngineError, TestClock};
use crate::tick::CLOCK;

/// The instant [`test_clock`] starts at: 2025-06-15T15:06:40Z (the domain tests' `t0`).
// A literal in range: no input reaches this expect.
#[allow(clippy::expect_used)]
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000, 0).expect("valid time")
}

/// A [`TestClock`] reading [`t0`]. Give a clone to the engine
/// ([`EngineConfig::with_clock`](crate::service::EngineConfig::with_clock)) and move the
/// other with [`advance`].
pub fn test_clock() -> TestClock {
    TestClock::new(t0())
}

/// Moves `clock` by `by` and returns once `engine` has ticked at the new time and
/// committed whatever fell due, with the time-driven events (actor `clock`) committed
/// since the call, in journal order: empty when nothing was due. Nothing waits in real
/// time, and whether the engine's clock thread or this call ran the tick, the result is
/// the same.
pub async fn advance(
    engine: &Engine,
    clock: &TestClock,
    by: TimeDelta,
) -> Result<Vec<Applied>, EngineError> {
    let from = engine.head() + 1;
    clock.advance(by);
    let head = engine.tick_now().await?.head;
    clock_events(engine, from, head)
}

/// [`advance`] for threads outside an async runtime.
pub fn advance_blocking(
    engine: &Engine,
    clock: &TestClock,
    by: TimeDelta,
) -> Result<Vec<Applied>, EngineError> {
    let from = engine.head() + 1;
    clock.advance(by);
    let head = engine.tick_now_blocking()?.head;
    clock_events(engine, from, head)
}

/// The committed events from `from` to `to` whose actor is the clock.
fn clock_events(engine: &Engine, from: u64, to: u64) -> Result<Vec<Applied>, EngineError> {
    if from > to {
        return Ok(Vec::new());
    }
    let journal = engine.journal();
    let clock = Actor::Service(CLOCK.to_owned());
    let mut out = Vec::new();
    for record in journal.read_range(from, to)? {
        let event = from_record(journal, &record)?;
        if event.actor == clock {
            out.push(Applied {
                seq: record.seq,
                stream: record.stream,
                event,
            });
        }
    }
    Ok(out)
}

/// Accepts `attempt` when the stored "hash" is `fake$<attempt>`. Deterministic and
/// instant; never use outside tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct FakeVerifier;

impl FakeVerifier {
    /// The fake hash of a password.
    pub fn hash(password: &str) -> String {
        format!("fake${password}")
    }
}

impl PasswordVerifier for FakeVerifier {
    fn verify(&self, stored_hash: &str, attempt: &str) -> bool {
        stored_hash.strip_prefix("fake$") == Some(attempt)
    }
}

/// Number of [`EventKind`] variants; [`variant_index`] is exhaustive over them.
pub const EVENT_KIND_COUNT: usize = 53;

/// A dense index per variant, so tests can check that samples cover every kind (adding
/// a variant breaks the exhaustive match here, which is the point).
pub fn variant_index(kind: &EventKind) -> usize {
    use EventKind as E;
    match kind {
        E::AccountCreated { .. } => 0,
        E::IdentityLinked { .. } => 1,
        E::IdentityUnlinked { .. } => 2,
        E::DisplayNameChanged { .. } => 3,
        E::AccountEnabled { .. } => 4,
        E::AccountDisabled { .. } => 5,
        E::ContactAllowed { .. } => 6,
        E::ContactDisallowed { .. } => 7,
        E::ContactsOpened { .. } => 8,
        E::ModeratorAdded { .. } => 9,
        E::ModeratorRemoved { .. } => 10,
        E::RendezvousChanged { .. } => 11,
        E::RoomCreated { .. } => 12,
        E::RoomModified { .. } => 13,
        E::RoomReserved { .. } => 14,
        E::RoomUnreserved { .. } => 15,
        E::RoomDeleted { .. } => 16,
        E::RoomExpired { .. } => 17,
        E::Joined { .. } => 18,
        E::Left { .. } => 19,
        E::JoinDenied { .. } => 20,
        E::RoleChanged { .. } => 21,
        E::InvitationIssued { .. } => 22,
        E::InvitationAnswered { .. } => 23,
        E::InvitationInvalidated { .. } => 24,
        E::AudioMuted { .. } => 25,
        E::AudioUnmuted { .. } => 26,
        E::VideoPaused { .. } => 27,
        E::VideoResumed { .. } => 28,
        E::Kicked { .. } => 29,
        E::Banned { .. } => 30,
        E::Unbanned { .. } => 31,
        E::Knocked { .. } => 32,
        E::KnockAdmitted { .. } => 33,
        E::KnockRejected { .. } => 34,
        E::HandRaised { .. } => 35,
        E::HandLowered { .. } => 36,
        E::ActionDenied { .. } => 37,
        E::AutobanApplied { .. } => 38,
        E::AutobanLifted { .. } => 39,
        E::MessagePosted { .. } => 40,
        E::PolicyChanged { .. } => 41,
        E::ContentPurged { .. } => 42,
        E::SessionRenewed { .. } => 43,
        E::AddressBanned { .. } => 44,
        E::AddressUnbanned { .. } => 45,
        E::SipCredentialSet { .. } => 46,
        E::SipCredentialCleared { .. } => 47,
        E::SubjectChanged { .. } => 48,
        E::RecordingStarted { .. } => 49,
        E::RecordingStopped { .. } => 50,
        E::RecordingFileClosed { .. } => 51,
        E::RecordingErased { .. } => 52,
    }
}

/// The MD5 HA1 of the sample `sip_credential_set` (any lowercase hex of the right
/// length): tests look for it in views that must not show it.
pub const SAMPLE_HA1_MD5: &str = "1f0f4bc0e5d1c5d2a8f0b5bd2e3c5f5e";
/// The SHA-256 HA1 of the sample `sip_credential_set`.
pub const SAMPLE_HA1_SHA256: &str =
    "6b0c9c7c5bd3b9a1e0b7e3d8a9f3c1d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9";

/// Inputs that vary the samples (property tests feed random ones).
#[derive(Debug, Clone)]
pub struct SampleParams {
    /// Event time.
    pub at: DateTime<Utc>,
    /// A room name.
    pub room: RoomName,
    /// An account id.
    pub account: AccountId,
    /// An identity.
    pub address: Address,
    /// Some free text (reasons, bodies, names).
    pub text: String,
    /// A number (limits, counts).
    pub n: u32,
    /// A flag.
    pub flag: bool,
}

impl Default for SampleParams {
    // The literals below are valid by construction; no input reaches these expects.
    #[allow(clippy::expect_used)]
    fn default() -> Self {
        SampleParams {
            at: DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("valid time"),
            room: RoomName::from_stored("standup".into()),
            account: AccountId::from_stored("alice".into()),
            address: Address::parse("sip:alice@example.org").expect("valid address"),
            text: "hello".into(),
            n: 7,
            flag: true,
        }
    }
}

/// One event of every kind (several for kinds whose type name depends on the payload),
/// built from `p`.
pub fn sample_events(p: &SampleParams) -> Vec<Event> {
    let room = p.room.clone();
    let account = p.account.clone();
    let address = p.address.clone();
    let person = Principal::Address(address.clone());
    let acct = Principal::Account(account.clone());
    let session = SessionId::from_stored(format!("s{}", p.n));
    let inv = InvitationId::from_stored(format!("inv{}", p.n));
    let text = Some(p.text.clone());
    let later = p.at + chrono::Duration::seconds(i64::from(p.n) + 1);
    use EventKind as E;
    let kinds = vec![
        E::AccountCreated {
            account: account.clone(),
            display_name: text.clone(),
        },
        E::IdentityLinked {
            account: account.clone(),
            address: address.clone(),
        },
        E::IdentityUnlinked {
            account: account.clone(),
            address: address.clone(),
        },
        E::DisplayNameChanged {
            account: account.clone(),
            display_name: None,
        },
        E::AccountEnabled {
            account: account.clone(),
        },
        E::AccountDisabled {
            account: account.clone(),
        },
        E::ContactAllowed {
            account: account.clone(),
            contact: person.clone(),
        },
        E::ContactDisallowed {
            account: account.clone(),
            contact: person.clone(),
        },
        E::ContactsOpened {
            account: account.clone(),
        },
        E::ModeratorAdded {
            account: account.clone(),
            moderator: person.clone(),
        },
        E::ModeratorRemoved {
            account: account.clone(),
            moderator: person.clone(),
        },
        E::RendezvousChanged {
            account: account.clone(),
            room: Some(room.clone()),
        },
        E::RoomCreated {
            room: room.clone(),
            parent: p.flag.then(|| RoomName::from_stored("parent".into())),
            owner: acct.clone(),
            config: RoomConfig {
                private: p.flag,
                max_members: Some(p.n),
                welcome_text: text.clone(),
                access_password_hash: Some("fake$pw".into()),
                ..RoomConfig::default()
            },
        },
        E::RoomModified {
            room: room.clone(),
            change: RoomChange::DefaultRole(Some(Role::Visitor)),
        },
        E::RoomModified {
            room: room.clone(),
            change: RoomChange::WelcomeText(text.clone()),
        },
        E::RoomReserved {
            room: room.clone(),
            owner_password_hash: "fake$owner".into(),
        },
        E::RoomUnreserved { room: room.clone() },
        E::RoomDeleted {
            room: room.clone(),
            reason: DeleteReason::OwnerLeft,
        },
        E::RoomExpired {
            room: room.clone(),
            idle_secs: u64::from(p.n) * 60,
            reserved: p.flag,
        },
        E::Joined {
            room: room.clone(),
            principal: acct.clone(),
            address: address.clone(),
            session: session.clone(),
            gateway: "sip".into(),
            role: Role::Moderator,
            remote: Some("h:0123".into()),
        },
        E::SessionRenewed {
            room: room.clone(),
            principal: acct.clone(),
            session: session.clone(),
            until: later,
        },
        E::Left {
            room: room.clone(),
            principal: acct.clone(),
            session: session.clone(),
            reason: LeaveReason::Disconnected,
        },
        E::JoinDenied {
            room: room.clone(),
            principal: person.clone(),
            address: address.clone(),
            reason: DenyReason::WrongPassword,
            remote: None,
        },
        E::JoinDenied {
            room: room.clone(),
            principal: person.clone(),
            address: address.clone(),
            reason: DenyReason::RoomFull,
            remote: Some("192.0.2.1".into()),
        },
        E::JoinDenied {
            room: room.clone(),
            principal: person.clone(),
            address: address.clone(),
            reason: DenyReason::NoRole,
            remote: None,
        },
        E::RoleChanged {
            room: room.clone(),
            subject: person.clone(),
            from: Some(Role::Member),
            to: Some(Role::Owner),
            via: RoleVia::OwnerPassword,
        },
        E::InvitationIssued {
            room: room.clone(),
            invitation: inv.clone(),
            invitee: address.clone(),
            expires_at: Some(later),
            single_use: p.flag,
            secret_digest: None,
        },
        E::InvitationAnswered {
            room: room.clone(),
            invitation: inv.clone(),
            accepted: p.flag,
            by: person.clone(),
        },
        E::InvitationInvalidated {
            room: room.clone(),
            invitation: inv,
            reason: InvalidationReason::Expired,
        },
        E::AudioMuted {
            room: room.clone(),
            subject: person.clone(),
            by_moderator: p.flag,
        },
        E::AudioUnmuted {
            room: room.clone(),
            subject: person.clone(),
        },
        E::VideoPaused {
            room: room.clone(),
            subject: person.clone(),
            by_moderator: !p.flag,
        },
        E::VideoResumed {
            room: room.clone(),
            subject: person.clone(),
        },
        E::Kicked {
            room: room.clone(),
            subject: person.clone(),
            reason: text.clone(),
        },
        E::Banned {
            scope: BanScope::Account(account.clone()),
            subject: person.clone(),
            reason: text.clone(),
            until: Some(later),
        },
        E::Banned {
            scope: BanScope::Server,
            subject: acct.clone(),
            reason: None,
            until: None,
        },
        E::Unbanned {
            scope: BanScope::Room(room.clone()),
            subject: person.clone(),
            expired: p.flag,
        },
        E::Knocked {
            room: room.clone(),
            principal: person.clone(),
            address: address.clone(),
            session,
            gateway: "web".into(),
        },
        E::KnockAdmitted {
            room: room.clone(),
            principal: person.clone(),
        },
        E::KnockRejected {
            room: room.clone(),
            principal: person.clone(),
        },
        E::HandRaised {
            room: room.clone(),
            subject: person.clone(),
        },
        E::HandLowered {
            room: room.clone(),
            subject: person.clone(),
        },
        E::ActionDenied {
            room: Some(room.clone()),
            action: "kick".into(),
            subject: Some(acct.clone()),
            code: "perm.not_moderator".into(),
        },
        E::AutobanApplied {
            key: AutobanKey::Remote("h:abcd".into()),
            attempts: p.n,
            until: later,
            ends_sessions: false,
        },
        E::AutobanLifted {
            key: AutobanKey::Identity(address.clone()),
        },
        E::MessagePosted {
            room,
            message: MessageId::from_stored("m1".into()),
            from: acct,
            address,
            body: text.clone(),
            html_stripped: p.flag,
        },
        E::PolicyChanged {
            change: PolicyChange::ServerPassword(Some("fake$srv".into())),
        },
        E::PolicyChanged {
            change: PolicyChange::LogDays(-1),
        },
        E::ContentPurged {
            subject: None,
            before: Some(p.at),
            records: u64::from(p.n),
            up_to_seq: 42,
        },
        E::ContentPurged {
            subject: Some(Principal::Address(p.address.clone())),
            before: None,
            records: 1,
            up_to_seq: u64::from(p.n),
        },
        // Appended after release 1 (the golden fixture's lines follow this order).
        E::RoomModified {
            room: p.room.clone(),
            change: RoomChange::Invite(if p.flag {
                InviteRight::Members
            } else {
                InviteRight::Owners
            }),
        },
        E::JoinDenied {
            room: p.room.clone(),
            principal: Principal::Address(p.address.clone()),
            address: p.address.clone(),
            reason: DenyReason::AccountRequired,
            remote: None,
        },
        E::AddressBanned {
            scope: BanScope::Room(p.room.clone()),
            id: "b1".into(),
            remote: "h:abcd".into(),
            subject: Some(Principal::Address(p.address.clone())),
            reason: text.clone(),
            until: Some(later),
        },
        E::AddressBanned {
            scope: BanScope::Server,
            id: "b2".into(),
            remote: "192.0.2.0/24".into(),
            subject: None,
            reason: None,
            until: None,
        },
        E::AddressUnbanned {
            scope: BanScope::Account(p.account.clone()),
            id: "b3".into(),
            remote: "h:abcd".into(),
            expired: p.flag,
        },
        E::SipCredentialSet {
            account: p.account.clone(),
            address: p.address.clone(),
            realm: "example.org".into(),
            ha1_md5: SAMPLE_HA1_MD5.into(),
            ha1_sha256: SAMPLE_HA1_SHA256.into(),
        },
        E::SipCredentialCleared {
            account: p.account.clone(),
            address: p.address.clone(),
        },
        E::SubjectChanged {
            room: p.room.clone(),
            subject: text.clone(),
            by: Some(Principal::Address(p.address.clone())),
            address: Some(p.address.clone()),
        },
        E::SubjectChanged {
            room: p.room.clone(),
            subject: None,
            by: None,
            address: None,
        },
        E::RoomModified {
            room: p.room.clone(),
            change: RoomChange::Name(text.clone()),
        },
        E::RoomModified {
            room: p.room.clone(),
            change: RoomChange::Description(None),
        },
        E::RoomModified {
            room: p.room.clone(),
            change: RoomChange::MembersChangeSubject(p.flag),
        },
        E::RoomModified {
            room: p.room.clone(),
            change: RoomChange::Persistent(p.flag),
        },
        E::RoomModified {
            room: p.room.clone(),
            change: RoomChange::PublicAddresses(!p.flag),
        },
        E::RecordingStarted {
            room: p.room.clone(),
            recording: crate::ids::RecordingId::from_stored(format!("rec{}", p.n)),
            video: p.flag,
            by: Some(Principal::Address(p.address.clone())),
        },
        E::RecordingFileClosed {
            room: p.room.clone(),
            recording: crate::ids::RecordingId::from_stored(format!("rec{}", p.n)),
            file: crate::recording::RecordingFile {
                name: format!("rec{}/video-t{}.webm", p.n, p.n),
                kind: crate::recording::RecordingKind::Video,
                track: Some(format!("t{}", p.n)),
                bytes: u64::from(p.n) * 1000,
                duration_ms: u64::from(p.n) * 20,
                blake3: "ab".repeat(32),
            },
        },
        E::RecordingStopped {
            room: p.room.clone(),
            recording: crate::ids::RecordingId::from_stored(format!("rec{}", p.n)),
        },
        E::RecordingErased {
            room: p.room.clone(),
            recording: crate::ids::RecordingId::from_stored(format!("rec{}", p.n)),
            names: vec![format!("rec{}/audio.ogg", p.n)],
            action: if p.flag {
                crate::recording::RecordingErasure::Retention
            } else {
                crate::recording::RecordingErasure::Erasure
            },
        },
    ];
    let actors = [
        Actor::Admin,
        Actor::Identity(p.address.clone()),
        Actor::Service("clock".into()),
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| Event {
            at: p.at,
            actor: actors[i % actors.len()].clone(),
            kind,
        })
        .collect()
}
