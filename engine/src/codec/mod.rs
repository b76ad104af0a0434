//! Events as journal records: `(event_type, schema_version, payload, personal_content)`.
//!
//! Domain events are converted to frozen storage types ([`stored`]) and written with
//! bincode 2 (serde, standard config). Personal content (chat bodies, display names)
//! is kept out of the payload and returned separately so the journal can put it in its
//! content side store and purge it under retention or erasure while the hash chain
//! (which covers a digest of it) still verifies. `decode` copes with purged content:
//! the field becomes `None`.
//!
//! Old records are read through upcasters: a chain of byte-to-byte transforms from
//! version *n* to *n+1* of one type (see [`UPCASTERS`]), so only the current version of
//! each type needs a decoder. `peer_kick` is the worked example: v1 had no reason, v2
//! added one.

pub mod stored;

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use crate::context::Actor;
use crate::event::{
    AutobanKey, DeleteReason, DenyReason, Event, EventKind, InvalidationReason, LeaveReason,
    RoleVia,
};
use crate::ids::{AccountId, Address, InvitationId, MessageId, Principal, RoomName, SessionId};
use crate::model::{BanScope, PolicyChange, Role, RoomChange, RoomConfig};
use stored::{v1, v2};

/// Why a record could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The event type is not known to this build.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// The type is known but not in this version (too new, or no upcaster).
    #[error("unknown schema version {version} of event type {event_type:?}")]
    UnknownVersion {
        /// The type.
        event_type: String,
        /// The version.
        version: u16,
    },
    /// The bytes do not decode as the type's storage struct.
    #[error("cannot decode {event_type} v{version}: {reason}")]
    Payload {
        /// The type.
        event_type: String,
        /// The version.
        version: u16,
        /// The decoder's message.
        reason: String,
    },
    /// A decoded field is not valid in the domain.
    #[error("invalid {field} in stored event: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Encoding failed (should not happen for well-formed events).
    #[error("cannot encode {event_type}: {reason}")]
    Encode {
        /// The type.
        event_type: &'static str,
        /// The encoder's message.
        reason: String,
    },
}

/// An encoded event, ready for the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Stable snake_case type name.
    pub event_type: &'static str,
    /// Schema version of `payload`.
    pub schema_version: u16,
    /// bincode of `(Envelope, payload struct)`.
    pub payload: Vec<u8>,
    /// bincode of the personal text, if the event carries any.
    pub personal_content: Option<Vec<u8>>,
}

/// Every event type this build knows, with its current schema version.
pub const EVENT_TYPES: &[(&str, u16)] = &[
    ("account_create", 1),
    ("identity_link", 1),
    ("identity_unlink", 1),
    ("display_name_change", 1),
    ("account_enable", 1),
    ("account_disable", 1),
    ("contact_allow", 1),
    ("contact_disallow", 1),
    ("contacts_open", 1),
    ("moderator_add", 1),
    ("moderator_remove", 1),
    ("rendezvous_change", 1),
    ("room_create", 1),
    ("room_modify", 1),
    ("room_reserve", 1),
    ("room_unreserve", 1),
    ("room_delete", 1),
    ("room_expire", 1),
    ("room_join", 1),
    ("room_leave", 1),
    ("session_renew", 1),
    ("join_denied", 1),
    ("member_off_limit", 1),
    ("no_role", 1),
    ("peer_role", 1),
    ("send_invitation", 1),
    ("invitation_response", 1),
    ("invalidate_invitation", 1),
    ("audio_mute", 1),
    ("audio_unmute", 1),
    ("video_pause", 1),
    ("video_resume", 1),
    ("peer_kick", 2),
    ("ban", 1),
    ("unban", 1),
    ("lobby_knock", 1),
    ("lobby_admit", 1),
    ("lobby_reject", 1),
    ("hand_raise", 1),
    ("hand_lower", 1),
    ("api_action_denied", 1),
    ("autoban", 1),
    ("autoban_lift", 1),
    ("chat_message", 1),
    ("server_modify", 1),
    ("content_purge", 1),
];

/// The current schema version of a type, if known.
pub fn current_version(event_type: &str) -> Option<u16> {
    EVENT_TYPES
        .iter()
        .find(|(t, _)| *t == event_type)
        .map(|(_, v)| *v)
}

/// Transforms a payload of `(type, version)` into the next version's bytes.
pub type Upcaster = fn(&[u8]) -> Result<Vec<u8>, CodecError>;

/// The upcaster chain: `(event_type, from_version, upcaster to from_version + 1)`.
pub const UPCASTERS: &[(&str, u16, Upcaster)] = &[("peer_kick", 1, kicked_v1_to_v2)];

/// `peer_kick` v1 → v2: the reason did not exist, so it is `None`.
fn kicked_v1_to_v2(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
    let (env, old): (v1::Envelope, v1::Kicked) = de("peer_kick", 1, bytes)?;
    let new = v2::Kicked {
        room: old.room,
        subject: old.subject,
        reason: None,
    };
    ser("peer_kick", &(env, new))
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn ser<T: Serialize>(event_type: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode {
        event_type,
        reason: e.to_string(),
    })
}

fn de<T: DeserializeOwned>(event_type: &str, version: u16, bytes: &[u8]) -> Result<T, CodecError> {
    let err = |reason: String| CodecError::Payload {
        event_type: event_type.to_owned(),
        version,
        reason,
    };
    let (value, read) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| err(e.to_string()))?;
    if read != bytes.len() {
        return Err(err(format!("{} trailing bytes", bytes.len() - read)));
    }
    Ok(value)
}

// ---- domain → storage ----

fn time_out(t: DateTime<Utc>) -> v1::Time {
    v1::Time {
        secs: t.timestamp(),
        nanos: t.timestamp_subsec_nanos(),
    }
}

fn actor_out(a: &Actor) -> v1::Actor {
    match a {
        Actor::Identity(a) => v1::Actor::Identity(a.to_string()),
        Actor::Admin => v1::Actor::Admin,
        Actor::Service(s) => v1::Actor::Service(s.clone()),
    }
}

fn principal_out(p: &Principal) -> v1::Principal {
    match p {
        Principal::Account(a) => v1::Principal::Account(a.as_str().to_owned()),
        Principal::Address(a) => v1::Principal::Address(a.to_string()),
    }
}

fn role_out(r: Role) -> v1::Role {
    match r {
        Role::Visitor => v1::Role::Visitor,
        Role::Member => v1::Role::Member,
        Role::Moderator => v1::Role::Moderator,
        Role::Owner => v1::Role::Owner,
    }
}

fn scope_out(s: &BanScope) -> v1::BanScope {
    match s {
        BanScope::Room(r) => v1::BanScope::Room(r.as_str().to_owned()),
        BanScope::Account(a) => v1::BanScope::Account(a.as_str().to_owned()),
        BanScope::Server => v1::BanScope::Server,
    }
}

fn config_out(c: &RoomConfig) -> v1::RoomConfig {
    v1::RoomConfig {
        private: c.private,
        locked: c.locked,
        max_members: c.max_members,
        welcome_text: c.welcome_text.clone(),
        moderated_chat: c.moderated_chat,
        lobby: c.lobby,
        default_role: c.default_role.map(role_out),
        owner_exit_destroys: c.owner_exit_destroys,
        access_password_hash: c.access_password_hash.clone(),
    }
}

fn change_out(c: &RoomChange) -> v1::RoomChange {
    match c {
        RoomChange::Private(v) => v1::RoomChange::Private(*v),
        RoomChange::Locked(v) => v1::RoomChange::Locked(*v),
        RoomChange::MaxMembers(v) => v1::RoomChange::MaxMembers(*v),
        RoomChange::WelcomeText(v) => v1::RoomChange::WelcomeText(v.clone()),
        RoomChange::ModeratedChat(v) => v1::RoomChange::ModeratedChat(*v),
        RoomChange::Lobby(v) => v1::RoomChange::Lobby(*v),
        RoomChange::DefaultRole(v) => v1::RoomChange::DefaultRole(v.map(role_out)),
        RoomChange::OwnerExitDestroys(v) => v1::RoomChange::OwnerExitDestroys(*v),
        RoomChange::AccessPassword(v) => v1::RoomChange::AccessPassword(v.clone()),
    }
}

fn policy_out(c: &PolicyChange) -> v1::PolicyChange {
    match c {
        PolicyChange::ServerPassword(v) => v1::PolicyChange::ServerPassword(v.clone()),
        PolicyChange::LogDays(v) => v1::PolicyChange::LogDays(*v),
        PolicyChange::ObfuscateIps(v) => v1::PolicyChange::ObfuscateIps(*v),
        PolicyChange::WelcomeText(v) => v1::PolicyChange::WelcomeText(v.clone()),
    }
}

fn deny_out(r: DenyReason) -> v1::DenyReason {
    match r {
        DenyReason::Banned => v1::DenyReason::Banned,
        DenyReason::RoomFull => v1::DenyReason::RoomFull,
        DenyReason::ServerFull => v1::DenyReason::ServerFull,
        DenyReason::WrongPassword => v1::DenyReason::WrongPassword,
        DenyReason::NotInvited => v1::DenyReason::NotInvited,
        DenyReason::Locked => v1::DenyReason::Locked,
        DenyReason::NoRole => v1::DenyReason::NoRole,
        DenyReason::AccountDisabled => v1::DenyReason::AccountDisabled,
        DenyReason::NotAllowed => v1::DenyReason::NotAllowed,
        DenyReason::Lobby => v1::DenyReason::Lobby,
    }
}

fn key_out(k: &AutobanKey) -> v1::AutobanKey {
    match k {
        AutobanKey::Identity(a) => v1::AutobanKey::Identity(a.to_string()),
        AutobanKey::Remote(r) => v1::AutobanKey::Remote(r.clone()),
    }
}

fn s<T: ToString>(v: &T) -> String {
    v.to_string()
}

/// Encode an event as a journal record.
pub fn encode(event: &Event) -> Result<Encoded, CodecError> {
    let t = event.type_name();
    let env = v1::Envelope {
        at_secs: event.at.timestamp(),
        at_nanos: event.at.timestamp_subsec_nanos(),
        actor: actor_out(&event.actor),
    };
    let mut content: Option<Vec<u8>> = None;
    use EventKind as E;
    let payload = match &event.kind {
        E::AccountCreated {
            account,
            display_name,
        }
        | E::DisplayNameChanged {
            account,
            display_name,
        } => {
            content = display_name.as_ref().map(|n| ser(t, n)).transpose()?;
            ser(
                t,
                &(
                    env,
                    v1::AccountRef {
                        account: s(account),
                    },
                ),
            )?
        }
        E::AccountEnabled { account }
        | E::AccountDisabled { account }
        | E::ContactsOpened { account } => ser(
            t,
            &(
                env,
                v1::AccountRef {
                    account: s(account),
                },
            ),
        )?,
        E::IdentityLinked { account, address } | E::IdentityUnlinked { account, address } => ser(
            t,
            &(
                env,
                v1::AccountIdentity {
                    account: s(account),
                    address: s(address),
                },
            ),
        )?,
        E::ContactAllowed {
            account,
            contact: p,
        }
        | E::ContactDisallowed {
            account,
            contact: p,
        }
        | E::ModeratorAdded {
            account,
            moderator: p,
        }
        | E::ModeratorRemoved {
            account,
            moderator: p,
        } => ser(
            t,
            &(
                env,
                v1::AccountPrincipal {
                    account: s(account),
                    principal: principal_out(p),
                },
            ),
        )?,
        E::RendezvousChanged { account, room } => ser(
            t,
            &(
                env,
                v1::Rendezvous {
                    account: s(account),
                    room: room.as_ref().map(s),
                },
            ),
        )?,
        E::RoomCreated {
            room,
            parent,
            owner,
            config,
        } => ser(
            t,
            &(
                env,
                v1::RoomCreated {
                    room: s(room),
                    parent: parent.as_ref().map(s),
                    owner: principal_out(owner),
                    config: config_out(config),
                },
            ),
        )?,
        E::RoomModified { room, change } => ser(
            t,
            &(
                env,
                v1::RoomModified {
                    room: s(room),
                    change: change_out(change),
                },
            ),
        )?,
        E::RoomReserved {
            room,
            owner_password_hash,
        } => ser(
            t,
            &(
                env,
                v1::RoomReserved {
                    room: s(room),
                    owner_password_hash: owner_password_hash.clone(),
                },
            ),
        )?,
        E::RoomUnreserved { room } => ser(t, &(env, v1::RoomRef { room: s(room) }))?,
        E::RoomDeleted { room, reason } => ser(
            t,
            &(
                env,
                v1::RoomDeleted {
                    room: s(room),
                    reason: match reason {
                        DeleteReason::Destroyed => v1::DeleteReason::Destroyed,
                        DeleteReason::OwnerLeft => v1::DeleteReason::OwnerLeft,
                        DeleteReason::ParentDeleted => v1::DeleteReason::ParentDeleted,
                    },
                },
            ),
        )?,
        E::RoomExpired {
            room,
            idle_secs,
            reserved,
        } => ser(
            t,
            &(
                env,
                v1::RoomExpired {
                    room: s(room),
                    idle_secs: *idle_secs,
                    reserved: *reserved,
                },
            ),
        )?,
        E::Joined {
            room,
            principal,
            address,
            session,
            gateway,
            role,
            remote,
        } => ser(
            t,
            &(
                env,
                v1::Joined {
                    room: s(room),
                    principal: principal_out(principal),
                    address: s(address),
                    session: s(session),
                    gateway: gateway.clone(),
                    role: role_out(*role),
                    remote: remote.clone(),
                },
            ),
        )?,
        E::Left {
            room,
            principal,
            session,
            reason,
        } => ser(
            t,
            &(
                env,
                v1::Left {
                    room: s(room),
                    principal: principal_out(principal),
                    session: s(session),
                    reason: match reason {
                        LeaveReason::Left => v1::LeaveReason::Left,
                        LeaveReason::Disconnected => v1::LeaveReason::Disconnected,
                        LeaveReason::LeaseExpired => v1::LeaveReason::LeaseExpired,
                        LeaveReason::GatewayRestarted => v1::LeaveReason::GatewayRestarted,
                    },
                },
            ),
        )?,
        E::SessionRenewed {
            room,
            principal,
            session,
            until,
        } => ser(
            t,
            &(
                env,
                v1::SessionRenewed {
                    room: s(room),
                    principal: principal_out(principal),
                    session: s(session),
                    until: time_out(*until),
                },
            ),
        )?,
        E::JoinDenied {
            room,
            principal,
            address,
            reason,
            remote,
        } => ser(
            t,
            &(
                env,
                v1::JoinDenied {
                    room: s(room),
                    principal: principal_out(principal),
                    address: s(address),
                    reason: deny_out(*reason),
                    remote: remote.clone(),
                },
            ),
        )?,
        E::RoleChanged {
            room,
            subject,
            from,
            to,
            via,
        } => ser(
            t,
            &(
                env,
                v1::RoleChanged {
                    room: s(room),
                    subject: principal_out(subject),
                    from: from.map(role_out),
                    to: to.map(role_out),
                    via: match via {
                        RoleVia::Grant => v1::RoleVia::Grant,
                        RoleVia::Revoke => v1::RoleVia::Revoke,
                        RoleVia::OwnerPassword => v1::RoleVia::OwnerPassword,
                        RoleVia::Invitation => v1::RoleVia::Invitation,
                    },
                },
            ),
        )?,
        E::InvitationIssued {
            room,
            invitation,
            invitee,
            expires_at,
            single_use,
        } => ser(
            t,
            &(
                env,
                v1::InvitationIssued {
                    room: s(room),
                    invitation: s(invitation),
                    invitee: s(invitee),
                    expires_at: expires_at.map(time_out),
                    single_use: *single_use,
                },
            ),
        )?,
        E::InvitationAnswered {
            room,
            invitation,
            accepted,
            by,
        } => ser(
            t,
            &(
                env,
                v1::InvitationAnswered {
                    room: s(room),
                    invitation: s(invitation),
                    accepted: *accepted,
                    by: principal_out(by),
                },
            ),
        )?,
        E::InvitationInvalidated {
            room,
            invitation,
            reason,
        } => ser(
            t,
            &(
                env,
                v1::InvitationInvalidated {
                    room: s(room),
                    invitation: s(invitation),
                    reason: match reason {
                        InvalidationReason::Used => v1::InvalidationReason::Used,
                        InvalidationReason::Revoked => v1::InvalidationReason::Revoked,
                        InvalidationReason::Expired => v1::InvalidationReason::Expired,
                    },
                },
            ),
        )?,
        E::AudioMuted {
            room,
            subject,
            by_moderator,
        }
        | E::VideoPaused {
            room,
            subject,
            by_moderator,
        } => ser(
            t,
            &(
                env,
                v1::MediaClosed {
                    room: s(room),
                    subject: principal_out(subject),
                    by_moderator: *by_moderator,
                },
            ),
        )?,
        E::AudioUnmuted { room, subject }
        | E::VideoResumed { room, subject }
        | E::HandRaised { room, subject }
        | E::HandLowered { room, subject }
        | E::KnockAdmitted {
            room,
            principal: subject,
        }
        | E::KnockRejected {
            room,
            principal: subject,
        } => ser(
            t,
            &(
                env,
                v1::RoomSubject {
                    room: s(room),
                    subject: principal_out(subject),
                },
            ),
        )?,
        E::Kicked {
            room,
            subject,
            reason,
        } => ser(
            t,
            &(
                env,
                v2::Kicked {
                    room: s(room),
                    subject: principal_out(subject),
                    reason: reason.clone(),
                },
            ),
        )?,
        E::Banned {
            scope,
            subject,
            reason,
            until,
        } => ser(
            t,
            &(
                env,
                v1::Banned {
                    scope: scope_out(scope),
                    subject: principal_out(subject),
                    reason: reason.clone(),
                    until: until.map(time_out),
                },
            ),
        )?,
        E::Unbanned {
            scope,
            subject,
            expired,
        } => ser(
            t,
            &(
                env,
                v1::Unbanned {
                    scope: scope_out(scope),
                    subject: principal_out(subject),
                    expired: *expired,
                },
            ),
        )?,
        E::Knocked {
            room,
            principal,
            address,
            session,
            gateway,
        } => ser(
            t,
            &(
                env,
                v1::Knocked {
                    room: s(room),
                    principal: principal_out(principal),
                    address: s(address),
                    session: s(session),
                    gateway: gateway.clone(),
                },
            ),
        )?,
        E::ActionDenied {
            room,
            action,
            subject,
            code,
        } => ser(
            t,
            &(
                env,
                v1::ActionDenied {
                    room: room.as_ref().map(s),
                    action: action.clone(),
                    subject: subject.as_ref().map(principal_out),
                    code: code.clone(),
                },
            ),
        )?,
        E::AutobanApplied {
            key,
            attempts,
            until,
        } => ser(
            t,
            &(
                env,
                v1::AutobanApplied {
                    key: key_out(key),
                    attempts: *attempts,
                    until: time_out(*until),
                },
            ),
        )?,
        E::AutobanLifted { key } => ser(t, &(env, v1::AutobanLifted { key: key_out(key) }))?,
        E::MessagePosted {
            room,
            message,
            from,
            address,
            body,
            html_stripped,
        } => {
            content = body.as_ref().map(|b| ser(t, b)).transpose()?;
            ser(
                t,
                &(
                    env,
                    v1::MessagePosted {
                        room: s(room),
                        message: s(message),
                        from: principal_out(from),
                        address: s(address),
                        html_stripped: *html_stripped,
                    },
                ),
            )?
        }
        E::PolicyChanged { change } => ser(
            t,
            &(
                env,
                v1::PolicyChanged {
                    change: policy_out(change),
                },
            ),
        )?,
        E::ContentPurged {
            subject,
            before,
            records,
            up_to_seq,
        } => ser(
            t,
            &(
                env,
                v1::ContentPurged {
                    subject: subject.as_ref().map(principal_out),
                    before: before.map(time_out),
                    records: *records,
                    up_to_seq: *up_to_seq,
                },
            ),
        )?,
    };
    let schema_version = current_version(t).ok_or_else(|| CodecError::UnknownType(t.to_owned()))?;
    Ok(Encoded {
        event_type: t,
        schema_version,
        payload,
        personal_content: content,
    })
}

// ---- storage → domain ----

fn time_in(field: &'static str, secs: i64, nanos: u32) -> Result<DateTime<Utc>, CodecError> {
    DateTime::from_timestamp(secs, nanos).ok_or(CodecError::Invalid {
        field,
        reason: format!("timestamp {secs}.{nanos} out of range"),
    })
}

fn t_in(t: v1::Time) -> Result<DateTime<Utc>, CodecError> {
    time_in("time", t.secs, t.nanos)
}

fn addr_in(s: &str) -> Result<Address, CodecError> {
    Address::parse(s).map_err(|e| CodecError::Invalid {
        field: "address",
        reason: e.to_string(),
    })
}

fn actor_in(a: v1::Actor) -> Result<Actor, CodecError> {
    Ok(match a {
        v1::Actor::Identity(a) => Actor::Identity(addr_in(&a)?),
        v1::Actor::Admin => Actor::Admin,
        v1::Actor::Service(s) => Actor::Service(s),
    })
}

fn principal_in(p: v1::Principal) -> Result<Principal, CodecError> {
    Ok(match p {
        v1::Principal::Account(a) => Principal::Account(AccountId::from_stored(a)),
        v1::Principal::Address(a) => Principal::Address(addr_in(&a)?),
    })
}

fn role_in(r: v1::Role) -> Role {
    match r {
        v1::Role::Visitor => Role::Visitor,
        v1::Role::Member => Role::Member,
        v1::Role::Moderator => Role::Moderator,
        v1::Role::Owner => Role::Owner,
    }
}

fn scope_in(s: v1::BanScope) -> BanScope {
    match s {
        v1::BanScope::Room(r) => BanScope::Room(RoomName::from_stored(r)),
        v1::BanScope::Account(a) => BanScope::Account(AccountId::from_stored(a)),
        v1::BanScope::Server => BanScope::Server,
    }
}

fn config_in(c: v1::RoomConfig) -> RoomConfig {
    RoomConfig {
        private: c.private,
        locked: c.locked,
        max_members: c.max_members,
        welcome_text: c.welcome_text,
        moderated_chat: c.moderated_chat,
        lobby: c.lobby,
        default_role: c.default_role.map(role_in),
        owner_exit_destroys: c.owner_exit_destroys,
        access_password_hash: c.access_password_hash,
    }
}

fn change_in(c: v1::RoomChange) -> RoomChange {
    match c {
        v1::RoomChange::Private(v) => RoomChange::Private(v),
        v1::RoomChange::Locked(v) => RoomChange::Locked(v),
        v1::RoomChange::MaxMembers(v) => RoomChange::MaxMembers(v),
        v1::RoomChange::WelcomeText(v) => RoomChange::WelcomeText(v),
        v1::RoomChange::ModeratedChat(v) => RoomChange::ModeratedChat(v),
        v1::RoomChange::Lobby(v) => RoomChange::Lobby(v),
        v1::RoomChange::DefaultRole(v) => RoomChange::DefaultRole(v.map(role_in)),
        v1::RoomChange::OwnerExitDestroys(v) => RoomChange::OwnerExitDestroys(v),
        v1::RoomChange::AccessPassword(v) => RoomChange::AccessPassword(v),
    }
}

fn policy_in(c: v1::PolicyChange) -> PolicyChange {
    match c {
        v1::PolicyChange::ServerPassword(v) => PolicyChange::ServerPassword(v),
        v1::PolicyChange::LogDays(v) => PolicyChange::LogDays(v),
        v1::PolicyChange::ObfuscateIps(v) => PolicyChange::ObfuscateIps(v),
        v1::PolicyChange::WelcomeText(v) => PolicyChange::WelcomeText(v),
    }
}

fn deny_in(r: v1::DenyReason) -> DenyReason {
    match r {
        v1::DenyReason::Banned => DenyReason::Banned,
        v1::DenyReason::RoomFull => DenyReason::RoomFull,
        v1::DenyReason::ServerFull => DenyReason::ServerFull,
        v1::DenyReason::WrongPassword => DenyReason::WrongPassword,
        v1::DenyReason::NotInvited => DenyReason::NotInvited,
        v1::DenyReason::Locked => DenyReason::Locked,
        v1::DenyReason::NoRole => DenyReason::NoRole,
        v1::DenyReason::AccountDisabled => DenyReason::AccountDisabled,
        v1::DenyReason::NotAllowed => DenyReason::NotAllowed,
        v1::DenyReason::Lobby => DenyReason::Lobby,
    }
}

fn key_in(k: v1::AutobanKey) -> Result<AutobanKey, CodecError> {
    Ok(match k {
        v1::AutobanKey::Identity(a) => AutobanKey::Identity(addr_in(&a)?),
        v1::AutobanKey::Remote(r) => AutobanKey::Remote(r),
    })
}

fn room_in(s: String) -> RoomName {
    RoomName::from_stored(s)
}

fn acc_in(s: String) -> AccountId {
    AccountId::from_stored(s)
}

/// Decode a journal record into a domain event, upcasting old versions first.
/// `content` is the personal content as stored, or `None` if there was none or it was
/// purged: personal fields then decode as `None`.
pub fn decode(
    event_type: &str,
    schema_version: u16,
    payload: &[u8],
    content: Option<&[u8]>,
) -> Result<Event, CodecError> {
    let current = current_version(event_type)
        .ok_or_else(|| CodecError::UnknownType(event_type.to_owned()))?;
    let unknown = |version| CodecError::UnknownVersion {
        event_type: event_type.to_owned(),
        version,
    };
    if schema_version == 0 || schema_version > current {
        return Err(unknown(schema_version));
    }
    let mut bytes = Cow::Borrowed(payload);
    let mut version = schema_version;
    while version < current {
        let (_, _, up) = UPCASTERS
            .iter()
            .find(|(t, v, _)| *t == event_type && *v == version)
            .ok_or_else(|| unknown(version))?;
        bytes = Cow::Owned(up(&bytes)?);
        version += 1;
    }
    decode_current(event_type, current, &bytes, content)
}

fn personal(t: &str, v: u16, content: Option<&[u8]>) -> Result<Option<String>, CodecError> {
    content.map(|c| de::<String>(t, v, c)).transpose()
}

fn decode_current(
    t: &str,
    v: u16,
    bytes: &[u8],
    content: Option<&[u8]>,
) -> Result<Event, CodecError> {
    fn body<T: DeserializeOwned>(
        t: &str,
        v: u16,
        bytes: &[u8],
    ) -> Result<(v1::Envelope, T), CodecError> {
        de(t, v, bytes)
    }
    let (env, kind) = match t {
        "account_create" | "display_name_change" => {
            let (env, p): (_, v1::AccountRef) = body(t, v, bytes)?;
            let account = acc_in(p.account);
            let display_name = personal(t, v, content)?;
            (
                env,
                if t == "account_create" {
                    EventKind::AccountCreated {
                        account,
                        display_name,
                    }
                } else {
                    EventKind::DisplayNameChanged {
                        account,
                        display_name,
                    }
                },
            )
        }
        "account_enable" | "account_disable" | "contacts_open" => {
            let (env, p): (_, v1::AccountRef) = body(t, v, bytes)?;
            let account = acc_in(p.account);
            (
                env,
                match t {
                    "account_enable" => EventKind::AccountEnabled { account },
                    "account_disable" => EventKind::AccountDisabled { account },
                    _ => EventKind::ContactsOpened { account },
                },
            )
        }
        "identity_link" | "identity_unlink" => {
            let (env, p): (_, v1::AccountIdentity) = body(t, v, bytes)?;
            let account = acc_in(p.account);
            let address = addr_in(&p.address)?;
            (
                env,
                if t == "identity_link" {
                    EventKind::IdentityLinked { account, address }
                } else {
                    EventKind::IdentityUnlinked { account, address }
                },
            )
        }
        "contact_allow" | "contact_disallow" | "moderator_add" | "moderator_remove" => {
            let (env, p): (_, v1::AccountPrincipal) = body(t, v, bytes)?;
            let account = acc_in(p.account);
            let who = principal_in(p.principal)?;
            (
                env,
                match t {
                    "contact_allow" => EventKind::ContactAllowed {
                        account,
                        contact: who,
                    },
                    "contact_disallow" => EventKind::ContactDisallowed {
                        account,
                        contact: who,
                    },
                    "moderator_add" => EventKind::ModeratorAdded {
                        account,
                        moderator: who,
                    },
                    _ => EventKind::ModeratorRemoved {
                        account,
                        moderator: who,
                    },
                },
            )
        }
        "rendezvous_change" => {
            let (env, p): (_, v1::Rendezvous) = body(t, v, bytes)?;
            (
                env,
                EventKind::RendezvousChanged {
                    account: acc_in(p.account),
                    room: p.room.map(room_in),
                },
            )
        }
        "room_create" => {
            let (env, p): (_, v1::RoomCreated) = body(t, v, bytes)?;
            (
                env,
                EventKind::RoomCreated {
                    room: room_in(p.room),
                    parent: p.parent.map(room_in),
                    owner: principal_in(p.owner)?,
                    config: config_in(p.config),
                },
            )
        }
        "room_modify" => {
            let (env, p): (_, v1::RoomModified) = body(t, v, bytes)?;
            (
                env,
                EventKind::RoomModified {
                    room: room_in(p.room),
                    change: change_in(p.change),
                },
            )
        }
        "room_reserve" => {
            let (env, p): (_, v1::RoomReserved) = body(t, v, bytes)?;
            (
                env,
                EventKind::RoomReserved {
                    room: room_in(p.room),
                    owner_password_hash: p.owner_password_hash,
                },
            )
        }
        "room_unreserve" => {
            let (env, p): (_, v1::RoomRef) = body(t, v, bytes)?;
            (
                env,
                EventKind::RoomUnreserved {
                    room: room_in(p.room),
                },
            )
        }
        "room_delete" => {
            let (env, p): (_, v1::RoomDeleted) = body(t, v, bytes)?;
            (
                env,
                EventKind::RoomDeleted {
                    room: room_in(p.room),
                    reason: match p.reason {
                        v1::DeleteReason::Destroyed => DeleteReason::Destroyed,
                        v1::DeleteReason::OwnerLeft => DeleteReason::OwnerLeft,
                        v1::DeleteReason::ParentDeleted => DeleteReason::ParentDeleted,
                    },
                },
            )
        }
        "room_expire" => {
            let (env, p): (_, v1::RoomExpired) = body(t, v, bytes)?;
            (
                env,
                EventKind::RoomExpired {
                    room: room_in(p.room),
                    idle_secs: p.idle_secs,
                    reserved: p.reserved,
                },
            )
        }
        "room_join" => {
            let (env, p): (_, v1::Joined) = body(t, v, bytes)?;
            (
                env,
                EventKind::Joined {
                    room: room_in(p.room),
                    principal: principal_in(p.principal)?,
                    address: addr_in(&p.address)?,
                    session: SessionId::from_stored(p.session),
                    gateway: p.gateway,
                    role: role_in(p.role),
                    remote: p.remote,
                },
            )
        }
        "room_leave" => {
            let (env, p): (_, v1::Left) = body(t, v, bytes)?;
            (
                env,
                EventKind::Left {
                    room: room_in(p.room),
                    principal: principal_in(p.principal)?,
                    session: SessionId::from_stored(p.session),
                    reason: match p.reason {
                        v1::LeaveReason::Left => LeaveReason::Left,
                        v1::LeaveReason::Disconnected => LeaveReason::Disconnected,
                        v1::LeaveReason::LeaseExpired => LeaveReason::LeaseExpired,
                        v1::LeaveReason::GatewayRestarted => LeaveReason::GatewayRestarted,
                    },
                },
            )
        }
        "session_renew" => {
            let (env, p): (_, v1::SessionRenewed) = body(t, v, bytes)?;
            (
                env,
                EventKind::SessionRenewed {
                    room: room_in(p.room),
                    principal: principal_in(p.principal)?,
                    session: SessionId::from_stored(p.session),
                    until: t_in(p.until)?,
                },
            )
        }
        "join_denied" | "member_off_limit" | "no_role" => {
            let (env, p): (_, v1::JoinDenied) = body(t, v, bytes)?;
            (
                env,
                EventKind::JoinDenied {
                    room: room_in(p.room),
                    principal: principal_in(p.principal)?,
                    address: addr_in(&p.address)?,
                    reason: deny_in(p.reason),
                    remote: p.remote,
                },
            )
        }
        "peer_role" => {
            let (env, p): (_, v1::RoleChanged) = body(t, v, bytes)?;
            (
                env,
                EventKind::RoleChanged {
                    room: room_in(p.room),
                    subject: principal_in(p.subject)?,
                    from: p.from.map(role_in),
                    to: p.to.map(role_in),
                    via: match p.via {
                        v1::RoleVia::Grant => RoleVia::Grant,
                        v1::RoleVia::Revoke => RoleVia::Revoke,
                        v1::RoleVia::OwnerPassword => RoleVia::OwnerPassword,
                        v1::RoleVia::Invitation => RoleVia::Invitation,
                    },
                },
            )
        }
        "send_invitation" => {
            let (env, p): (_, v1::InvitationIssued) = body(t, v, bytes)?;
            (
                env,
                EventKind::InvitationIssued {
                    room: room_in(p.room),
                    invitation: InvitationId::from_stored(p.invitation),
                    invitee: addr_in(&p.invitee)?,
                    expires_at: p.expires_at.map(t_in).transpose()?,
                    single_use: p.single_use,
                },
            )
        }
        "invitation_response" => {
            let (env, p): (_, v1::InvitationAnswered) = body(t, v, bytes)?;
            (
                env,
                EventKind::InvitationAnswered {
                    room: room_in(p.room),
                    invitation: InvitationId::from_stored(p.invitation),
                    accepted: p.accepted,
                    by: principal_in(p.by)?,
                },
            )
        }
        "invalidate_invitation" => {
            let (env, p): (_, v1::InvitationInvalidated) = body(t, v, bytes)?;
            (
                env,
                EventKind::InvitationInvalidated {
                    room: room_in(p.room),
                    invitation: InvitationId::from_stored(p.invitation),
                    reason: match p.reason {
                        v1::InvalidationReason::Used => InvalidationReason::Used,
                        v1::InvalidationReason::Revoked => InvalidationReason::Revoked,
                        v1::InvalidationReason::Expired => InvalidationReason::Expired,
                    },
                },
            )
        }
        "audio_mute" | "video_pause" => {
            let (env, p): (_, v1::MediaClosed) = body(t, v, bytes)?;
            let room = room_in(p.room);
            let subject = principal_in(p.subject)?;
            let by_moderator = p.by_moderator;
            (
                env,
                if t == "audio_mute" {
                    EventKind::AudioMuted {
                        room,
                        subject,
                        by_moderator,
                    }
                } else {
                    EventKind::VideoPaused {
                        room,
                        subject,
                        by_moderator,
                    }
                },
            )
        }
        "audio_unmute" | "video_resume" | "hand_raise" | "hand_lower" | "lobby_admit"
        | "lobby_reject" => {
            let (env, p): (_, v1::RoomSubject) = body(t, v, bytes)?;
            let room = room_in(p.room);
            let subject = principal_in(p.subject)?;
            (
                env,
                match t {
                    "audio_unmute" => EventKind::AudioUnmuted { room, subject },
                    "video_resume" => EventKind::VideoResumed { room, subject },
                    "hand_raise" => EventKind::HandRaised { room, subject },
                    "hand_lower" => EventKind::HandLowered { room, subject },
                    "lobby_admit" => EventKind::KnockAdmitted {
                        room,
                        principal: subject,
                    },
                    _ => EventKind::KnockRejected {
                        room,
                        principal: subject,
                    },
                },
            )
        }
        "peer_kick" => {
            let (env, p): (_, v2::Kicked) = body(t, v, bytes)?;
            (
                env,
                EventKind::Kicked {
                    room: room_in(p.room),
                    subject: principal_in(p.subject)?,
                    reason: p.reason,
                },
            )
        }
        "ban" => {
            let (env, p): (_, v1::Banned) = body(t, v, bytes)?;
            (
                env,
                EventKind::Banned {
                    scope: scope_in(p.scope),
                    subject: principal_in(p.subject)?,
                    reason: p.reason,
                    until: p.until.map(t_in).transpose()?,
                },
            )
        }
        "unban" => {
            let (env, p): (_, v1::Unbanned) = body(t, v, bytes)?;
            (
                env,
                EventKind::Unbanned {
                    scope: scope_in(p.scope),
                    subject: principal_in(p.subject)?,
                    expired: p.expired,
                },
            )
        }
        "lobby_knock" => {
            let (env, p): (_, v1::Knocked) = body(t, v, bytes)?;
            (
                env,
                EventKind::Knocked {
                    room: room_in(p.room),
                    principal: principal_in(p.principal)?,
                    address: addr_in(&p.address)?,
                    session: SessionId::from_stored(p.session),
                    gateway: p.gateway,
                },
            )
        }
        "api_action_denied" => {
            let (env, p): (_, v1::ActionDenied) = body(t, v, bytes)?;
            (
                env,
                EventKind::ActionDenied {
                    room: p.room.map(room_in),
                    action: p.action,
                    subject: p.subject.map(principal_in).transpose()?,
                    code: p.code,
                },
            )
        }
        "autoban" => {
            let (env, p): (_, v1::AutobanApplied) = body(t, v, bytes)?;
            (
                env,
                EventKind::AutobanApplied {
                    key: key_in(p.key)?,
                    attempts: p.attempts,
                    until: t_in(p.until)?,
                },
            )
        }
        "autoban_lift" => {
            let (env, p): (_, v1::AutobanLifted) = body(t, v, bytes)?;
            (
                env,
                EventKind::AutobanLifted {
                    key: key_in(p.key)?,
                },
            )
        }
        "chat_message" => {
            let (env, p): (_, v1::MessagePosted) = body(t, v, bytes)?;
            (
                env,
                EventKind::MessagePosted {
                    room: room_in(p.room),
                    message: MessageId::from_stored(p.message),
                    from: principal_in(p.from)?,
                    address: addr_in(&p.address)?,
                    body: personal(t, v, content)?,
                    html_stripped: p.html_stripped,
                },
            )
        }
        "server_modify" => {
            let (env, p): (_, v1::PolicyChanged) = body(t, v, bytes)?;
            (
                env,
                EventKind::PolicyChanged {
                    change: policy_in(p.change),
                },
            )
        }
        "content_purge" => {
            let (env, p): (_, v1::ContentPurged) = body(t, v, bytes)?;
            (
                env,
                EventKind::ContentPurged {
                    subject: p.subject.map(principal_in).transpose()?,
                    before: p.before.map(t_in).transpose()?,
                    records: p.records,
                    up_to_seq: p.up_to_seq,
                },
            )
        }
        other => return Err(CodecError::UnknownType(other.to_owned())),
    };
    Ok(Event {
        at: time_in("at", env.at_secs, env.at_nanos)?,
        actor: actor_in(env.actor)?,
        kind,
    })
}
