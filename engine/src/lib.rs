//! The conference domain of Conclave: identities, rooms, roles, invitations and
//! moderation as commands and events.
//!
//! The core is pure (no I/O, no clock, no randomness):
//! - [`decide()`]`(&State, &Command, &Context, &dyn PasswordVerifier) -> Result<Vec<Event>, Rejected>`
//! - [`evolve()`]`(&mut State, &Event)`, infallible; replay is evolve folded over the journal
//! - [`tick()`]`(&State, now) -> Vec<Event>` for expiry driven by the service's clock, and
//!   [`next_deadline()`]`(&State, now)`, the instant the next expiry falls due
//! - [`codec`]: versioned storage records with upcasters; domain types are not the
//!   storage format
//!
//! Time, ids ([`IdSeed`]) and the IP obfuscation key ([`IpKey`]) come in through the
//! [`Context`]; password checks go through an injected [`PasswordVerifier`].
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod access;
pub mod codec;
pub mod command;
pub mod context;
pub mod decide;
pub mod event;
pub mod evolve;
pub mod ids;
pub mod json;
pub mod model;
pub mod policy;
pub mod protocol;
pub mod recording;
pub mod rejection;
pub mod retention;
pub mod service;
pub mod sip_digest;
pub mod state;
pub mod testing;
pub mod text;
pub mod tick;

pub use command::{Command, Credentials, Secret, SecretDigest};
pub use context::{Actor, Context, Origin, PasswordVerifier, RecordMeta};
pub use decide::{decide, Decision};
pub use event::{
    AutobanKey, DeleteReason, DenyReason, Event, EventKind, InvalidationReason, LeaveReason,
    RoleVia, StreamId,
};
pub use evolve::{evolve, replay};
pub use ids::{
    AccountId, Address, AddressError, IdSeed, InvitationId, MessageId, NameError, NameRule,
    Principal, RecordingId, RoomName, Scheme, SessionId,
};
pub use model::{BanScope, InviteRight, PasswordKind, PolicyChange, Role, RoomChange, RoomConfig};
pub use policy::{AutobanPolicy, IpKey, Policy};
pub use protocol::{
    journal_mapping, ErrorClass, ErrorMapping, ImcOutcome, SipStatus, XmppCondition, XmppError,
    XmppErrorType,
};
pub use recording::{RecordingErasure, RecordingFile, RecordingKind};
pub use rejection::{Rejected, Rejection};
pub use retention::PurgeScope;
pub use state::{SipCredential, State};
pub use tick::{next_deadline, tick};
