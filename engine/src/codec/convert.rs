//! Conversions of the value types shared by many events between the domain and their
//! frozen storage form (`*_out` to storage, `*_in` back, validating what can be invalid).

use chrono::{DateTime, Utc};

use super::stored::{v1, v2};
use super::CodecError;
use crate::context::Actor;
use crate::event::{AutobanKey, DenyReason};
use crate::ids::{AccountId, Address, Principal, RoomName};
use crate::model::{BanScope, InviteRight, PolicyChange, Role, RoomChange, RoomConfig};

pub(super) fn time_out(t: DateTime<Utc>) -> v1::Time {
    v1::Time {
        secs: t.timestamp(),
        nanos: t.timestamp_subsec_nanos(),
    }
}

pub(super) fn actor_out(a: &Actor) -> v1::Actor {
    match a {
        Actor::Identity(a) => v1::Actor::Identity(a.to_string()),
        Actor::Admin => v1::Actor::Admin,
        Actor::Service(s) => v1::Actor::Service(s.clone()),
    }
}

pub(super) fn principal_out(p: &Principal) -> v1::Principal {
    match p {
        Principal::Account(a) => v1::Principal::Account(a.as_str().to_owned()),
        Principal::Address(a) => v1::Principal::Address(a.to_string()),
    }
}

pub(super) fn role_out(r: Role) -> v1::Role {
    match r {
        Role::Visitor => v1::Role::Visitor,
        Role::Member => v1::Role::Member,
        Role::Moderator => v1::Role::Moderator,
        Role::Owner => v1::Role::Owner,
    }
}

pub(super) fn scope_out(s: &BanScope) -> v1::BanScope {
    match s {
        BanScope::Room(r) => v1::BanScope::Room(r.as_str().to_owned()),
        BanScope::Account(a) => v1::BanScope::Account(a.as_str().to_owned()),
        BanScope::Server => v1::BanScope::Server,
    }
}

pub(super) fn invite_out(i: InviteRight) -> v2::InviteRight {
    match i {
        InviteRight::Members => v2::InviteRight::Members,
        InviteRight::Moderators => v2::InviteRight::Moderators,
        InviteRight::Owners => v2::InviteRight::Owners,
        InviteRight::MembersUnlessPrivate => v2::InviteRight::MembersUnlessPrivate,
    }
}

/// The stored form of a new room's configuration. `room_create` v2 has no place for the
/// settings added after it (title, description, members changing the subject,
/// persistence, public addresses): rooms are created with their defaults and they
/// change through `room_modify`. A configuration the stored form would not read back
/// as it is is refused rather than stored without them, so the journal never says less
/// than the state that was decided.
pub(super) fn config_out(c: &RoomConfig) -> Result<v2::RoomConfig, CodecError> {
    let stored = v2::RoomConfig {
        private: c.private,
        locked: c.locked,
        max_members: c.max_members,
        welcome_text: c.welcome_text.clone(),
        moderated_chat: c.moderated_chat,
        lobby: c.lobby,
        default_role: c.default_role.map(role_out),
        owner_exit_destroys: c.owner_exit_destroys,
        access_password_hash: c.access_password_hash.clone(),
        invite: invite_out(c.invite),
    };
    if config_in(stored.clone()) != *c {
        return Err(CodecError::Encode {
            event_type: "room_create",
            reason: "room_create v2 cannot hold the name, description, members_change_subject, persistent or public_addresses settings: create the room with their defaults and change them with room_modify".into(),
        });
    }
    Ok(stored)
}

pub(super) fn change_out(c: &RoomChange) -> v2::RoomChange {
    match c {
        RoomChange::Private(v) => v2::RoomChange::Private(*v),
        RoomChange::Locked(v) => v2::RoomChange::Locked(*v),
        RoomChange::MaxMembers(v) => v2::RoomChange::MaxMembers(*v),
        RoomChange::WelcomeText(v) => v2::RoomChange::WelcomeText(v.clone()),
        RoomChange::ModeratedChat(v) => v2::RoomChange::ModeratedChat(*v),
        RoomChange::Lobby(v) => v2::RoomChange::Lobby(*v),
        RoomChange::DefaultRole(v) => v2::RoomChange::DefaultRole(v.map(role_out)),
        RoomChange::OwnerExitDestroys(v) => v2::RoomChange::OwnerExitDestroys(*v),
        RoomChange::AccessPassword(v) => v2::RoomChange::AccessPassword(v.clone()),
        RoomChange::Invite(v) => v2::RoomChange::Invite(invite_out(*v)),
        RoomChange::Name(v) => v2::RoomChange::Name(v.clone()),
        RoomChange::Description(v) => v2::RoomChange::Description(v.clone()),
        RoomChange::MembersChangeSubject(v) => v2::RoomChange::MembersChangeSubject(*v),
        RoomChange::Persistent(v) => v2::RoomChange::Persistent(*v),
        RoomChange::PublicAddresses(v) => v2::RoomChange::PublicAddresses(*v),
    }
}

pub(super) fn policy_out(c: &PolicyChange) -> v1::PolicyChange {
    match c {
        PolicyChange::ServerPassword(v) => v1::PolicyChange::ServerPassword(v.clone()),
        PolicyChange::LogDays(v) => v1::PolicyChange::LogDays(*v),
        PolicyChange::ObfuscateIps(v) => v1::PolicyChange::ObfuscateIps(*v),
        PolicyChange::WelcomeText(v) => v1::PolicyChange::WelcomeText(v.clone()),
    }
}

pub(super) fn deny_out(r: DenyReason) -> v1::DenyReason {
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
        DenyReason::PasswordRequired => v1::DenyReason::PasswordRequired,
        DenyReason::InvitationExpired => v1::DenyReason::InvitationExpired,
        DenyReason::InvitationClosed => v1::DenyReason::InvitationClosed,
        DenyReason::AccountRequired => v1::DenyReason::AccountRequired,
    }
}

pub(super) fn key_out(k: &AutobanKey) -> v1::AutobanKey {
    match k {
        AutobanKey::Identity(a) => v1::AutobanKey::Identity(a.to_string()),
        AutobanKey::Remote(r) => v1::AutobanKey::Remote(r.clone()),
    }
}

pub(super) fn s<T: ToString>(v: &T) -> String {
    v.to_string()
}

pub(super) fn time_in(
    field: &'static str,
    secs: i64,
    nanos: u32,
) -> Result<DateTime<Utc>, CodecError> {
    DateTime::from_timestamp(secs, nanos).ok_or(CodecError::Invalid {
        field,
        reason: format!("timestamp {secs}.{nanos} out of range"),
    })
}

pub(super) fn t_in(t: v1::Time) -> Result<DateTime<Utc>, CodecError> {
    time_in("time", t.secs, t.nanos)
}

pub(super) fn addr_in(s: &str) -> Result<Address, CodecError> {
    Address::parse(s).map_err(|e| CodecError::Invalid {
        field: "address",
        reason: e.to_string(),
    })
}

pub(super) fn actor_in(a: v1::Actor) -> Result<Actor, CodecError> {
    Ok(match a {
        v1::Actor::Identity(a) => Actor::Identity(addr_in(&a)?),
        v1::Actor::Admin => Actor::Admin,
        v1::Actor::Service(s) => Actor::Service(s),
    })
}

pub(super) fn principal_in(p: v1::Principal) -> Result<Principal, CodecError> {
    Ok(match p {
        v1::Principal::Account(a) => Principal::Account(AccountId::from_stored(a)),
        v1::Principal::Address(a) => Principal::Address(addr_in(&a)?),
    })
}

pub(super) fn role_in(r: v1::Role) -> Role {
    match r {
        v1::Role::Visitor => Role::Visitor,
        v1::Role::Member => Role::Member,
        v1::Role::Moderator => Role::Moderator,
        v1::Role::Owner => Role::Owner,
    }
}

pub(super) fn scope_in(s: v1::BanScope) -> BanScope {
    match s {
        v1::BanScope::Room(r) => BanScope::Room(RoomName::from_stored(r)),
        v1::BanScope::Account(a) => BanScope::Account(AccountId::from_stored(a)),
        v1::BanScope::Server => BanScope::Server,
    }
}

pub(super) fn invite_in(i: v2::InviteRight) -> InviteRight {
    match i {
        v2::InviteRight::Members => InviteRight::Members,
        v2::InviteRight::Moderators => InviteRight::Moderators,
        v2::InviteRight::Owners => InviteRight::Owners,
        v2::InviteRight::MembersUnlessPrivate => InviteRight::MembersUnlessPrivate,
    }
}

pub(super) fn config_in(c: v2::RoomConfig) -> RoomConfig {
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
        invite: invite_in(c.invite),
        ..RoomConfig::default()
    }
}

pub(super) fn change_in(c: v2::RoomChange) -> RoomChange {
    match c {
        v2::RoomChange::Private(v) => RoomChange::Private(v),
        v2::RoomChange::Locked(v) => RoomChange::Locked(v),
        v2::RoomChange::MaxMembers(v) => RoomChange::MaxMembers(v),
        v2::RoomChange::WelcomeText(v) => RoomChange::WelcomeText(v),
        v2::RoomChange::ModeratedChat(v) => RoomChange::ModeratedChat(v),
        v2::RoomChange::Lobby(v) => RoomChange::Lobby(v),
        v2::RoomChange::DefaultRole(v) => RoomChange::DefaultRole(v.map(role_in)),
        v2::RoomChange::OwnerExitDestroys(v) => RoomChange::OwnerExitDestroys(v),
        v2::RoomChange::AccessPassword(v) => RoomChange::AccessPassword(v),
        v2::RoomChange::Invite(v) => RoomChange::Invite(invite_in(v)),
        v2::RoomChange::Name(v) => RoomChange::Name(v),
        v2::RoomChange::Description(v) => RoomChange::Description(v),
        v2::RoomChange::MembersChangeSubject(v) => RoomChange::MembersChangeSubject(v),
        v2::RoomChange::Persistent(v) => RoomChange::Persistent(v),
        v2::RoomChange::PublicAddresses(v) => RoomChange::PublicAddresses(v),
    }
}

pub(super) fn policy_in(c: v1::PolicyChange) -> PolicyChange {
    match c {
        v1::PolicyChange::ServerPassword(v) => PolicyChange::ServerPassword(v),
        v1::PolicyChange::LogDays(v) => PolicyChange::LogDays(v),
        v1::PolicyChange::ObfuscateIps(v) => PolicyChange::ObfuscateIps(v),
        v1::PolicyChange::WelcomeText(v) => PolicyChange::WelcomeText(v),
    }
}

pub(super) fn deny_in(r: v1::DenyReason) -> DenyReason {
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
        v1::DenyReason::PasswordRequired => DenyReason::PasswordRequired,
        v1::DenyReason::InvitationExpired => DenyReason::InvitationExpired,
        v1::DenyReason::InvitationClosed => DenyReason::InvitationClosed,
        v1::DenyReason::AccountRequired => DenyReason::AccountRequired,
    }
}

pub(super) fn key_in(k: v1::AutobanKey) -> Result<AutobanKey, CodecError> {
    Ok(match k {
        v1::AutobanKey::Identity(a) => AutobanKey::Identity(addr_in(&a)?),
        v1::AutobanKey::Remote(r) => AutobanKey::Remote(r),
    })
}

pub(super) fn room_in(s: String) -> RoomName {
    RoomName::from_stored(s)
}

pub(super) fn acc_in(s: String) -> AccountId {
    AccountId::from_stored(s)
}

pub(super) fn recording_kind_out(k: crate::recording::RecordingKind) -> v1::RecordingKind {
    match k {
        crate::recording::RecordingKind::Audio => v1::RecordingKind::Audio,
        crate::recording::RecordingKind::Video => v1::RecordingKind::Video,
    }
}

pub(super) fn recording_kind_in(k: v1::RecordingKind) -> crate::recording::RecordingKind {
    match k {
        v1::RecordingKind::Audio => crate::recording::RecordingKind::Audio,
        v1::RecordingKind::Video => crate::recording::RecordingKind::Video,
    }
}

pub(super) fn erasure_out(a: crate::recording::RecordingErasure) -> v1::RecordingErasure {
    match a {
        crate::recording::RecordingErasure::Retention => v1::RecordingErasure::Retention,
        crate::recording::RecordingErasure::Erasure => v1::RecordingErasure::Erasure,
    }
}

pub(super) fn erasure_in(a: v1::RecordingErasure) -> crate::recording::RecordingErasure {
    match a {
        v1::RecordingErasure::Retention => crate::recording::RecordingErasure::Retention,
        v1::RecordingErasure::Erasure => crate::recording::RecordingErasure::Erasure,
    }
}
