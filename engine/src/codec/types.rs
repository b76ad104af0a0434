//! The event type table: one row per stored type name with its current schema version
//! and its decoder (storage struct → domain event). A type is named here once; the
//! domain side of the name is [`EventKind::type_name`], and a test checks that the two
//! agree for every variant.
//!
//! Several types share a storage struct (`hand_raise` and `lobby_admit` are both a room
//! and a subject): their rows share a reader (`room_subject`, ...) and differ only in
//! the constructor they pass it.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::de::DeserializeOwned;

use super::convert::*;
use super::stored::{v1, v2};
use super::{de, CodecError};
use crate::event::{DeleteReason, EventKind, InvalidationReason, LeaveReason, RoleVia};
use crate::ids::{AccountId, InvitationId, MessageId, Principal, RecordingId, RoomName, SessionId};

/// A record's bytes at the current version of its type, ready to decode.
pub(super) struct Raw<'a> {
    pub(super) name: &'a str,
    pub(super) version: u16,
    pub(super) payload: &'a [u8],
    pub(super) content: Option<&'a [u8]>,
}

impl Raw<'_> {
    /// The envelope and the storage struct.
    fn read<S: DeserializeOwned>(&self) -> Result<(v1::Envelope, S), CodecError> {
        de(self.name, self.version, self.payload)
    }

    /// The personal text (a display name, a chat body), `None` if absent or purged.
    fn personal(&self) -> Result<Option<String>, CodecError> {
        self.content
            .map(|c| de::<String>(self.name, self.version, c))
            .transpose()
    }
}

type Decoded = Result<(v1::Envelope, EventKind), CodecError>;

/// One stored event type.
pub struct TypeSpec {
    /// Stable snake_case name, as in the journal and every external view.
    pub name: &'static str,
    /// The schema version this build writes; older ones are upcast (see `upcast.rs`).
    pub version: u16,
    decode: fn(&Raw<'_>) -> Decoded,
}

impl TypeSpec {
    pub(super) fn decode(&self, raw: &Raw<'_>) -> Decoded {
        (self.decode)(raw)
    }
}

const fn row(name: &'static str, version: u16, decode: fn(&Raw<'_>) -> Decoded) -> TypeSpec {
    TypeSpec {
        name,
        version,
        decode,
    }
}

/// Every event type this build knows.
pub static TYPES: &[TypeSpec] = &[
    row("account_create", 1, |r| {
        account_named(r, |account, display_name| EventKind::AccountCreated {
            account,
            display_name,
        })
    }),
    row("display_name_change", 1, |r| {
        account_named(r, |account, display_name| EventKind::DisplayNameChanged {
            account,
            display_name,
        })
    }),
    row("account_enable", 1, |r| {
        account(r, |account| EventKind::AccountEnabled { account })
    }),
    row("account_disable", 1, |r| {
        account(r, |account| EventKind::AccountDisabled { account })
    }),
    row("contacts_open", 1, |r| {
        account(r, |account| EventKind::ContactsOpened { account })
    }),
    row("identity_link", 1, |r| {
        let (env, p): (_, v1::AccountIdentity) = r.read()?;
        let (account, address) = (acc_in(p.account), addr_in(&p.address)?);
        Ok((env, EventKind::IdentityLinked { account, address }))
    }),
    row("identity_unlink", 1, |r| {
        let (env, p): (_, v1::AccountIdentity) = r.read()?;
        let (account, address) = (acc_in(p.account), addr_in(&p.address)?);
        Ok((env, EventKind::IdentityUnlinked { account, address }))
    }),
    row("contact_allow", 1, |r| {
        account_principal(r, |account, contact| EventKind::ContactAllowed {
            account,
            contact,
        })
    }),
    row("contact_disallow", 1, |r| {
        account_principal(r, |account, contact| EventKind::ContactDisallowed {
            account,
            contact,
        })
    }),
    row("moderator_add", 1, |r| {
        account_principal(r, |account, moderator| EventKind::ModeratorAdded {
            account,
            moderator,
        })
    }),
    row("moderator_remove", 1, |r| {
        account_principal(r, |account, moderator| EventKind::ModeratorRemoved {
            account,
            moderator,
        })
    }),
    row("rendezvous_change", 1, |r| {
        let (env, p): (_, v1::Rendezvous) = r.read()?;
        Ok((
            env,
            EventKind::RendezvousChanged {
                account: acc_in(p.account),
                room: p.room.map(room_in),
            },
        ))
    }),
    row("room_create", 2, |r| {
        let (env, p): (_, v2::RoomCreated) = r.read()?;
        Ok((
            env,
            EventKind::RoomCreated {
                room: room_in(p.room),
                parent: p.parent.map(room_in),
                owner: principal_in(p.owner)?,
                config: config_in(p.config),
            },
        ))
    }),
    row("room_modify", 2, |r| {
        let (env, p): (_, v2::RoomModified) = r.read()?;
        Ok((
            env,
            EventKind::RoomModified {
                room: room_in(p.room),
                change: change_in(p.change),
            },
        ))
    }),
    row("room_subject", 1, |r| {
        let (env, p): (_, v1::SubjectChanged) = r.read()?;
        Ok((
            env,
            EventKind::SubjectChanged {
                room: room_in(p.room),
                subject: p.subject,
                by: p.by.map(principal_in).transpose()?,
                address: p.address.as_deref().map(addr_in).transpose()?,
            },
        ))
    }),
    row("room_reserve", 1, |r| {
        let (env, p): (_, v1::RoomReserved) = r.read()?;
        Ok((
            env,
            EventKind::RoomReserved {
                room: room_in(p.room),
                owner_password_hash: p.owner_password_hash,
            },
        ))
    }),
    row("room_unreserve", 1, |r| {
        let (env, p): (_, v1::RoomRef) = r.read()?;
        let room = room_in(p.room);
        Ok((env, EventKind::RoomUnreserved { room }))
    }),
    row("room_delete", 1, |r| {
        let (env, p): (_, v1::RoomDeleted) = r.read()?;
        let reason = match p.reason {
            v1::DeleteReason::Destroyed => DeleteReason::Destroyed,
            v1::DeleteReason::OwnerLeft => DeleteReason::OwnerLeft,
            v1::DeleteReason::ParentDeleted => DeleteReason::ParentDeleted,
        };
        let room = room_in(p.room);
        Ok((env, EventKind::RoomDeleted { room, reason }))
    }),
    row("room_expire", 1, |r| {
        let (env, p): (_, v1::RoomExpired) = r.read()?;
        Ok((
            env,
            EventKind::RoomExpired {
                room: room_in(p.room),
                idle_secs: p.idle_secs,
                reserved: p.reserved,
            },
        ))
    }),
    row("room_join", 1, |r| {
        let (env, p): (_, v1::Joined) = r.read()?;
        Ok((
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
        ))
    }),
    row("room_leave", 1, |r| {
        let (env, p): (_, v1::Left) = r.read()?;
        let reason = match p.reason {
            v1::LeaveReason::Left => LeaveReason::Left,
            v1::LeaveReason::Disconnected => LeaveReason::Disconnected,
            v1::LeaveReason::LeaseExpired => LeaveReason::LeaseExpired,
            v1::LeaveReason::GatewayRestarted => LeaveReason::GatewayRestarted,
        };
        Ok((
            env,
            EventKind::Left {
                room: room_in(p.room),
                principal: principal_in(p.principal)?,
                session: SessionId::from_stored(p.session),
                reason,
            },
        ))
    }),
    row("session_renew", 1, |r| {
        let (env, p): (_, v1::SessionRenewed) = r.read()?;
        Ok((
            env,
            EventKind::SessionRenewed {
                room: room_in(p.room),
                principal: principal_in(p.principal)?,
                session: SessionId::from_stored(p.session),
                until: t_in(p.until)?,
            },
        ))
    }),
    // A denied join is stored under VROOM's name for its reason; all three read alike.
    row("join_denied", 1, join_denied),
    row("member_off_limit", 1, join_denied),
    row("no_role", 1, join_denied),
    row("peer_role", 1, |r| {
        let (env, p): (_, v1::RoleChanged) = r.read()?;
        let via = match p.via {
            v1::RoleVia::Grant => RoleVia::Grant,
            v1::RoleVia::Revoke => RoleVia::Revoke,
            v1::RoleVia::OwnerPassword => RoleVia::OwnerPassword,
            v1::RoleVia::Invitation => RoleVia::Invitation,
        };
        Ok((
            env,
            EventKind::RoleChanged {
                room: room_in(p.room),
                subject: principal_in(p.subject)?,
                from: p.from.map(role_in),
                to: p.to.map(role_in),
                via,
            },
        ))
    }),
    row("send_invitation", 2, |r| {
        let (env, p): (_, v2::InvitationIssued) = r.read()?;
        Ok((
            env,
            EventKind::InvitationIssued {
                room: room_in(p.room),
                invitation: InvitationId::from_stored(p.invitation),
                invitee: addr_in(&p.invitee)?,
                expires_at: p.expires_at.map(t_in).transpose()?,
                single_use: p.single_use,
                secret_digest: p.secret_digest.map(crate::command::SecretDigest),
            },
        ))
    }),
    row("invitation_response", 1, |r| {
        let (env, p): (_, v1::InvitationAnswered) = r.read()?;
        Ok((
            env,
            EventKind::InvitationAnswered {
                room: room_in(p.room),
                invitation: InvitationId::from_stored(p.invitation),
                accepted: p.accepted,
                by: principal_in(p.by)?,
            },
        ))
    }),
    row("invalidate_invitation", 1, |r| {
        let (env, p): (_, v1::InvitationInvalidated) = r.read()?;
        let reason = match p.reason {
            v1::InvalidationReason::Used => InvalidationReason::Used,
            v1::InvalidationReason::Revoked => InvalidationReason::Revoked,
            v1::InvalidationReason::Expired => InvalidationReason::Expired,
        };
        Ok((
            env,
            EventKind::InvitationInvalidated {
                room: room_in(p.room),
                invitation: InvitationId::from_stored(p.invitation),
                reason,
            },
        ))
    }),
    row("audio_mute", 1, |r| {
        media_closed(r, |room, subject, by_moderator| EventKind::AudioMuted {
            room,
            subject,
            by_moderator,
        })
    }),
    row("video_pause", 1, |r| {
        media_closed(r, |room, subject, by_moderator| EventKind::VideoPaused {
            room,
            subject,
            by_moderator,
        })
    }),
    row("audio_unmute", 1, |r| {
        room_subject(r, |room, subject| EventKind::AudioUnmuted { room, subject })
    }),
    row("video_resume", 1, |r| {
        room_subject(r, |room, subject| EventKind::VideoResumed { room, subject })
    }),
    row("peer_kick", 2, |r| {
        let (env, p): (_, v2::Kicked) = r.read()?;
        Ok((
            env,
            EventKind::Kicked {
                room: room_in(p.room),
                subject: principal_in(p.subject)?,
                reason: p.reason,
            },
        ))
    }),
    row("ban", 1, |r| {
        let (env, p): (_, v1::Banned) = r.read()?;
        Ok((
            env,
            EventKind::Banned {
                scope: scope_in(p.scope),
                subject: principal_in(p.subject)?,
                reason: p.reason,
                until: p.until.map(t_in).transpose()?,
            },
        ))
    }),
    row("unban", 1, |r| {
        let (env, p): (_, v1::Unbanned) = r.read()?;
        Ok((
            env,
            EventKind::Unbanned {
                scope: scope_in(p.scope),
                subject: principal_in(p.subject)?,
                expired: p.expired,
            },
        ))
    }),
    row("address_ban", 1, |r| {
        let (env, p): (_, v1::AddressBanned) = r.read()?;
        Ok((
            env,
            EventKind::AddressBanned {
                scope: scope_in(p.scope),
                id: p.id,
                remote: p.remote,
                subject: p.subject.map(principal_in).transpose()?,
                reason: p.reason,
                until: p.until.map(t_in).transpose()?,
            },
        ))
    }),
    row("address_unban", 1, |r| {
        let (env, p): (_, v1::AddressUnbanned) = r.read()?;
        Ok((
            env,
            EventKind::AddressUnbanned {
                scope: scope_in(p.scope),
                id: p.id,
                remote: p.remote,
                expired: p.expired,
            },
        ))
    }),
    row("lobby_knock", 1, |r| {
        let (env, p): (_, v1::Knocked) = r.read()?;
        Ok((
            env,
            EventKind::Knocked {
                room: room_in(p.room),
                principal: principal_in(p.principal)?,
                address: addr_in(&p.address)?,
                session: SessionId::from_stored(p.session),
                gateway: p.gateway,
            },
        ))
    }),
    row("lobby_admit", 1, |r| {
        room_subject(r, |room, principal| EventKind::KnockAdmitted {
            room,
            principal,
        })
    }),
    row("lobby_reject", 1, |r| {
        room_subject(r, |room, principal| EventKind::KnockRejected {
            room,
            principal,
        })
    }),
    row("hand_raise", 1, |r| {
        room_subject(r, |room, subject| EventKind::HandRaised { room, subject })
    }),
    row("hand_lower", 1, |r| {
        room_subject(r, |room, subject| EventKind::HandLowered { room, subject })
    }),
    row("api_action_denied", 1, |r| {
        let (env, p): (_, v1::ActionDenied) = r.read()?;
        Ok((
            env,
            EventKind::ActionDenied {
                room: p.room.map(room_in),
                action: p.action,
                subject: p.subject.map(principal_in).transpose()?,
                code: p.code,
            },
        ))
    }),
    row("autoban", 2, |r| {
        let (env, p): (_, v2::AutobanApplied) = r.read()?;
        Ok((
            env,
            EventKind::AutobanApplied {
                key: key_in(p.key)?,
                attempts: p.attempts,
                until: t_in(p.until)?,
                ends_sessions: p.ends_sessions,
            },
        ))
    }),
    row("autoban_lift", 1, |r| {
        let (env, p): (_, v1::AutobanLifted) = r.read()?;
        let key = key_in(p.key)?;
        Ok((env, EventKind::AutobanLifted { key }))
    }),
    row("chat_message", 1, |r| {
        let (env, p): (_, v1::MessagePosted) = r.read()?;
        Ok((
            env,
            EventKind::MessagePosted {
                room: room_in(p.room),
                message: MessageId::from_stored(p.message),
                from: principal_in(p.from)?,
                address: addr_in(&p.address)?,
                body: r.personal()?,
                html_stripped: p.html_stripped,
            },
        ))
    }),
    row("server_modify", 1, |r| {
        let (env, p): (_, v1::PolicyChanged) = r.read()?;
        let change = policy_in(p.change);
        Ok((env, EventKind::PolicyChanged { change }))
    }),
    row("content_purge", 1, |r| {
        let (env, p): (_, v1::ContentPurged) = r.read()?;
        Ok((
            env,
            EventKind::ContentPurged {
                subject: p.subject.map(principal_in).transpose()?,
                before: p.before.map(t_in).transpose()?,
                records: p.records,
                up_to_seq: p.up_to_seq,
            },
        ))
    }),
    row("sip_credential_set", 1, |r| {
        let (env, p): (_, v1::SipCredentialSet) = r.read()?;
        Ok((
            env,
            EventKind::SipCredentialSet {
                account: acc_in(p.account),
                address: addr_in(&p.address)?,
                realm: p.realm,
                ha1_md5: p.ha1_md5,
                ha1_sha256: p.ha1_sha256,
            },
        ))
    }),
    row("sip_credential_clear", 1, |r| {
        let (env, p): (_, v1::AccountIdentity) = r.read()?;
        let (account, address) = (acc_in(p.account), addr_in(&p.address)?);
        Ok((env, EventKind::SipCredentialCleared { account, address }))
    }),
    row("recording_started", 1, |r| {
        let (env, p): (_, v1::RecordingStarted) = r.read()?;
        Ok((
            env,
            EventKind::RecordingStarted {
                room: room_in(p.room),
                recording: RecordingId::from_stored(p.recording),
                video: p.video,
                by: p.by.map(principal_in).transpose()?,
            },
        ))
    }),
    row("recording_stopped", 1, |r| {
        let (env, p): (_, v1::RecordingStopped) = r.read()?;
        Ok((
            env,
            EventKind::RecordingStopped {
                room: room_in(p.room),
                recording: RecordingId::from_stored(p.recording),
            },
        ))
    }),
    row("recording_file_closed", 1, |r| {
        let (env, p): (_, v1::RecordingFileClosed) = r.read()?;
        Ok((
            env,
            EventKind::RecordingFileClosed {
                room: room_in(p.room),
                recording: RecordingId::from_stored(p.recording),
                file: crate::recording::RecordingFile {
                    name: p.name,
                    kind: recording_kind_in(p.kind),
                    track: p.track,
                    bytes: p.bytes,
                    duration_ms: p.duration_ms,
                    blake3: p.blake3,
                },
            },
        ))
    }),
    row("recording_erased", 1, |r| {
        let (env, p): (_, v1::RecordingErased) = r.read()?;
        Ok((
            env,
            EventKind::RecordingErased {
                room: room_in(p.room),
                recording: RecordingId::from_stored(p.recording),
                names: p.names,
                action: erasure_in(p.action),
            },
        ))
    }),
];

/// The row of a type name, if this build knows it (a hash lookup: decode is on the
/// replay hot path).
pub fn spec(name: &str) -> Option<&'static TypeSpec> {
    static INDEX: LazyLock<HashMap<&'static str, &'static TypeSpec>> =
        LazyLock::new(|| TYPES.iter().map(|t| (t.name, t)).collect());
    INDEX.get(name).copied()
}

// ---- readers shared by several rows ----

fn account(r: &Raw<'_>, make: fn(AccountId) -> EventKind) -> Decoded {
    let (env, p): (_, v1::AccountRef) = r.read()?;
    Ok((env, make(acc_in(p.account))))
}

fn account_named(r: &Raw<'_>, make: fn(AccountId, Option<String>) -> EventKind) -> Decoded {
    let (env, p): (_, v1::AccountRef) = r.read()?;
    Ok((env, make(acc_in(p.account), r.personal()?)))
}

fn account_principal(r: &Raw<'_>, make: fn(AccountId, Principal) -> EventKind) -> Decoded {
    let (env, p): (_, v1::AccountPrincipal) = r.read()?;
    Ok((env, make(acc_in(p.account), principal_in(p.principal)?)))
}

fn room_subject(r: &Raw<'_>, make: fn(RoomName, Principal) -> EventKind) -> Decoded {
    let (env, p): (_, v1::RoomSubject) = r.read()?;
    Ok((env, make(room_in(p.room), principal_in(p.subject)?)))
}

fn media_closed(r: &Raw<'_>, make: fn(RoomName, Principal, bool) -> EventKind) -> Decoded {
    let (env, p): (_, v1::MediaClosed) = r.read()?;
    let subject = principal_in(p.subject)?;
    Ok((env, make(room_in(p.room), subject, p.by_moderator)))
}

fn join_denied(r: &Raw<'_>) -> Decoded {
    let (env, p): (_, v1::JoinDenied) = r.read()?;
    Ok((
        env,
        EventKind::JoinDenied {
            room: room_in(p.room),
            principal: principal_in(p.principal)?,
            address: addr_in(&p.address)?,
            reason: deny_in(p.reason),
            remote: p.remote,
        },
    ))
}
