//! Upcasters: byte-to-byte transforms from version *n* to *n + 1* of one type, so only
//! the current version of each type needs a decoder. `peer_kick` is the worked example:
//! v1 had no reason, v2 added one. `room_create` and `room_modify` v2 added who may
//! invite (see `room_create_v1_to_v2` for what an old room's setting is).
//! `send_invitation` v2 added the digest of an email invitation's bearer secret.

use std::borrow::Cow;

use super::stored::{v1, v2};
use super::{de, ser, CodecError};

/// Transforms a payload of `(type, version)` into the next version's bytes.
pub type Upcaster = fn(&[u8]) -> Result<Vec<u8>, CodecError>;

/// The upcaster chain: `(event_type, from_version, upcaster to from_version + 1)`.
pub const UPCASTERS: &[(&str, u16, Upcaster)] = &[
    ("peer_kick", 1, kicked_v1_to_v2),
    ("autoban", 1, autoban_v1_to_v2),
    ("room_create", 1, room_create_v1_to_v2),
    ("room_modify", 1, room_modify_v1_to_v2),
    ("send_invitation", 1, send_invitation_v1_to_v2),
];

/// Brings `payload` of `name` from `version` up to `current`, one step at a time.
pub(super) fn to_current<'a>(
    name: &str,
    mut version: u16,
    current: u16,
    payload: &'a [u8],
) -> Result<Cow<'a, [u8]>, CodecError> {
    let mut bytes = Cow::Borrowed(payload);
    while version < current {
        let (_, _, up) = UPCASTERS
            .iter()
            .find(|(t, v, _)| *t == name && *v == version)
            .ok_or_else(|| CodecError::UnknownVersion {
                event_type: name.to_owned(),
                version,
            })?;
        bytes = Cow::Owned(up(&bytes)?);
        version += 1;
    }
    Ok(bytes)
}

/// `autoban` v1 → v2: every v1 autoban ended the live sessions it matched.
fn autoban_v1_to_v2(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
    let (env, old): (v1::Envelope, v1::AutobanApplied) = de("autoban", 1, bytes)?;
    let new = v2::AutobanApplied {
        key: old.key,
        attempts: old.attempts,
        until: old.until,
        ends_sessions: true,
    };
    ser("autoban", &(env, new))
}

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

/// `room_create` v1 → v2: who may invite was not a setting but a rule of `decide`,
/// members in a public room and moderators in a private one, following the `private`
/// flag as later `room_modify` records change it. `MembersUnlessPrivate` is that rule,
/// so an old room decides after the upgrade exactly as it did before, and a replay of
/// its history finds the rights its people had.
fn room_create_v1_to_v2(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
    let (env, old): (v1::Envelope, v1::RoomCreated) = de("room_create", 1, bytes)?;
    let c = old.config;
    let new = v2::RoomCreated {
        room: old.room,
        parent: old.parent,
        owner: old.owner,
        config: v2::RoomConfig {
            private: c.private,
            locked: c.locked,
            max_members: c.max_members,
            welcome_text: c.welcome_text,
            moderated_chat: c.moderated_chat,
            lobby: c.lobby,
            default_role: c.default_role,
            owner_exit_destroys: c.owner_exit_destroys,
            access_password_hash: c.access_password_hash,
            invite: v2::InviteRight::MembersUnlessPrivate,
        },
    };
    ser("room_create", &(env, new))
}

/// `room_modify` v1 → v2: every v1 change has the same v2 change (v2 only adds `Invite`).
fn room_modify_v1_to_v2(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
    let (env, old): (v1::Envelope, v1::RoomModified) = de("room_modify", 1, bytes)?;
    let change = match old.change {
        v1::RoomChange::Private(v) => v2::RoomChange::Private(v),
        v1::RoomChange::Locked(v) => v2::RoomChange::Locked(v),
        v1::RoomChange::MaxMembers(v) => v2::RoomChange::MaxMembers(v),
        v1::RoomChange::WelcomeText(v) => v2::RoomChange::WelcomeText(v),
        v1::RoomChange::ModeratedChat(v) => v2::RoomChange::ModeratedChat(v),
        v1::RoomChange::Lobby(v) => v2::RoomChange::Lobby(v),
        v1::RoomChange::DefaultRole(v) => v2::RoomChange::DefaultRole(v),
        v1::RoomChange::OwnerExitDestroys(v) => v2::RoomChange::OwnerExitDestroys(v),
        v1::RoomChange::AccessPassword(v) => v2::RoomChange::AccessPassword(v),
    };
    let new = v2::RoomModified {
        room: old.room,
        change,
    };
    ser("room_modify", &(env, new))
}

/// `send_invitation` v1 → v2: no invitation had a bearer secret (an email invitation's
/// id was its bearer token, and still is for those: see `membership`), so no digest.
fn send_invitation_v1_to_v2(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
    let (env, old): (v1::Envelope, v1::InvitationIssued) = de("send_invitation", 1, bytes)?;
    let new = v2::InvitationIssued {
        room: old.room,
        invitation: old.invitation,
        invitee: old.invitee,
        secret_digest: None,
        expires_at: old.expires_at,
        single_use: old.single_use,
    };
    ser("send_invitation", &(env, new))
}
