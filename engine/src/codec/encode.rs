//! Domain → storage: one arm per event variant, each building its frozen storage struct.
//!
//! The match is exhaustive on purpose: a new variant does not compile until it has a
//! storage shape. The type name and version come from [`super::types`], not from here.

use super::convert::*;
use super::stored::{v1, v2};
use super::{ser, CodecError};
use crate::event::{DeleteReason, EventKind, InvalidationReason, LeaveReason, RoleVia};

/// The payload (`(envelope, storage struct)` in bincode) and the personal content, if any.
pub(super) fn payload(
    t: &'static str,
    env: &v1::Envelope,
    kind: &EventKind,
) -> Result<(Vec<u8>, Option<Vec<u8>>), CodecError> {
    /// Serializes `(envelope, $stored)`.
    macro_rules! put {
        ($stored:expr) => {
            ser(t, &(env, $stored))?
        };
    }
    let mut content: Option<Vec<u8>> = None;
    use EventKind as E;
    let payload = match kind {
        E::AccountCreated {
            account,
            display_name,
        }
        | E::DisplayNameChanged {
            account,
            display_name,
        } => {
            content = display_name.as_ref().map(|n| ser(t, n)).transpose()?;
            put!(v1::AccountRef {
                account: s(account),
            })
        }
        E::AccountEnabled { account }
        | E::AccountDisabled { account }
        | E::ContactsOpened { account } => put!(v1::AccountRef {
            account: s(account),
        }),
        E::SipCredentialSet {
            account,
            address,
            realm,
            ha1_md5,
            ha1_sha256,
        } => put!(v1::SipCredentialSet {
            account: s(account),
            address: s(address),
            realm: realm.clone(),
            ha1_md5: ha1_md5.clone(),
            ha1_sha256: ha1_sha256.clone(),
        }),
        E::IdentityLinked { account, address }
        | E::IdentityUnlinked { account, address }
        | E::SipCredentialCleared { account, address } => {
            put!(v1::AccountIdentity {
                account: s(account),
                address: s(address),
            })
        }
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
        } => put!(v1::AccountPrincipal {
            account: s(account),
            principal: principal_out(p),
        }),
        E::RendezvousChanged { account, room } => put!(v1::Rendezvous {
            account: s(account),
            room: room.as_ref().map(s),
        }),
        E::RoomCreated {
            room,
            parent,
            owner,
            config,
        } => put!(v2::RoomCreated {
            room: s(room),
            parent: parent.as_ref().map(s),
            owner: principal_out(owner),
            config: config_out(config)?,
        }),
        E::RoomModified { room, change } => put!(v2::RoomModified {
            room: s(room),
            change: change_out(change),
        }),
        E::SubjectChanged {
            room,
            subject,
            by,
            address,
        } => put!(v1::SubjectChanged {
            room: s(room),
            subject: subject.clone(),
            by: by.as_ref().map(principal_out),
            address: address.as_ref().map(s),
        }),
        E::RoomReserved {
            room,
            owner_password_hash,
        } => put!(v1::RoomReserved {
            room: s(room),
            owner_password_hash: owner_password_hash.clone(),
        }),
        E::RoomUnreserved { room } => put!(v1::RoomRef { room: s(room) }),
        E::RoomDeleted { room, reason } => put!(v1::RoomDeleted {
            room: s(room),
            reason: match reason {
                DeleteReason::Destroyed => v1::DeleteReason::Destroyed,
                DeleteReason::OwnerLeft => v1::DeleteReason::OwnerLeft,
                DeleteReason::ParentDeleted => v1::DeleteReason::ParentDeleted,
            },
        }),
        E::RoomExpired {
            room,
            idle_secs,
            reserved,
        } => put!(v1::RoomExpired {
            room: s(room),
            idle_secs: *idle_secs,
            reserved: *reserved,
        }),
        E::Joined {
            room,
            principal,
            address,
            session,
            gateway,
            role,
            remote,
        } => put!(v1::Joined {
            room: s(room),
            principal: principal_out(principal),
            address: s(address),
            session: s(session),
            gateway: gateway.clone(),
            role: role_out(*role),
            remote: remote.clone(),
        }),
        E::Left {
            room,
            principal,
            session,
            reason,
        } => put!(v1::Left {
            room: s(room),
            principal: principal_out(principal),
            session: s(session),
            reason: match reason {
                LeaveReason::Left => v1::LeaveReason::Left,
                LeaveReason::Disconnected => v1::LeaveReason::Disconnected,
                LeaveReason::LeaseExpired => v1::LeaveReason::LeaseExpired,
                LeaveReason::GatewayRestarted => v1::LeaveReason::GatewayRestarted,
            },
        }),
        E::SessionRenewed {
            room,
            principal,
            session,
            until,
        } => put!(v1::SessionRenewed {
            room: s(room),
            principal: principal_out(principal),
            session: s(session),
            until: time_out(*until),
        }),
        E::JoinDenied {
            room,
            principal,
            address,
            reason,
            remote,
        } => put!(v1::JoinDenied {
            room: s(room),
            principal: principal_out(principal),
            address: s(address),
            reason: deny_out(*reason),
            remote: remote.clone(),
        }),
        E::RoleChanged {
            room,
            subject,
            from,
            to,
            via,
        } => put!(v1::RoleChanged {
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
        }),
        E::InvitationIssued {
            room,
            invitation,
            invitee,
            expires_at,
            single_use,
            secret_digest,
        } => put!(v2::InvitationIssued {
            room: s(room),
            invitation: s(invitation),
            invitee: s(invitee),
            secret_digest: secret_digest.map(|d| d.0),
            expires_at: expires_at.map(time_out),
            single_use: *single_use,
        }),
        E::InvitationAnswered {
            room,
            invitation,
            accepted,
            by,
        } => put!(v1::InvitationAnswered {
            room: s(room),
            invitation: s(invitation),
            accepted: *accepted,
            by: principal_out(by),
        }),
        E::InvitationInvalidated {
            room,
            invitation,
            reason,
        } => put!(v1::InvitationInvalidated {
            room: s(room),
            invitation: s(invitation),
            reason: match reason {
                InvalidationReason::Used => v1::InvalidationReason::Used,
                InvalidationReason::Revoked => v1::InvalidationReason::Revoked,
                InvalidationReason::Expired => v1::InvalidationReason::Expired,
            },
        }),
        E::AudioMuted {
            room,
            subject,
            by_moderator,
        }
        | E::VideoPaused {
            room,
            subject,
            by_moderator,
        } => put!(v1::MediaClosed {
            room: s(room),
            subject: principal_out(subject),
            by_moderator: *by_moderator,
        }),
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
        } => put!(v1::RoomSubject {
            room: s(room),
            subject: principal_out(subject),
        }),
        E::Kicked {
            room,
            subject,
            reason,
        } => put!(v2::Kicked {
            room: s(room),
            subject: principal_out(subject),
            reason: reason.clone(),
        }),
        E::Banned {
            scope,
            subject,
            reason,
            until,
        } => put!(v1::Banned {
            scope: scope_out(scope),
            subject: principal_out(subject),
            reason: reason.clone(),
            until: until.map(time_out),
        }),
        E::Unbanned {
            scope,
            subject,
            expired,
        } => put!(v1::Unbanned {
            scope: scope_out(scope),
            subject: principal_out(subject),
            expired: *expired,
        }),
        E::AddressBanned {
            scope,
            id,
            remote,
            subject,
            reason,
            until,
        } => put!(v1::AddressBanned {
            scope: scope_out(scope),
            id: id.clone(),
            remote: remote.clone(),
            subject: subject.as_ref().map(principal_out),
            reason: reason.clone(),
            until: until.map(time_out),
        }),
        E::AddressUnbanned {
            scope,
            id,
            remote,
            expired,
        } => put!(v1::AddressUnbanned {
            scope: scope_out(scope),
            id: id.clone(),
            remote: remote.clone(),
            expired: *expired,
        }),
        E::Knocked {
            room,
            principal,
            address,
            session,
            gateway,
        } => put!(v1::Knocked {
            room: s(room),
            principal: principal_out(principal),
            address: s(address),
            session: s(session),
            gateway: gateway.clone(),
        }),
        E::ActionDenied {
            room,
            action,
            subject,
            code,
        } => put!(v1::ActionDenied {
            room: room.as_ref().map(s),
            action: action.clone(),
            subject: subject.as_ref().map(principal_out),
            code: code.clone(),
        }),
        E::AutobanApplied {
            key,
            attempts,
            until,
            ends_sessions,
        } => put!(v2::AutobanApplied {
            key: key_out(key),
            attempts: *attempts,
            until: time_out(*until),
            ends_sessions: *ends_sessions,
        }),
        E::AutobanLifted { key } => put!(v1::AutobanLifted { key: key_out(key) }),
        E::MessagePosted {
            room,
            message,
            from,
            address,
            body,
            html_stripped,
        } => {
            content = body.as_ref().map(|b| ser(t, b)).transpose()?;
            put!(v1::MessagePosted {
                room: s(room),
                message: s(message),
                from: principal_out(from),
                address: s(address),
                html_stripped: *html_stripped,
            })
        }
        E::PolicyChanged { change } => put!(v1::PolicyChanged {
            change: policy_out(change),
        }),
        E::ContentPurged {
            subject,
            before,
            records,
            up_to_seq,
        } => put!(v1::ContentPurged {
            subject: subject.as_ref().map(principal_out),
            before: before.map(time_out),
            records: *records,
            up_to_seq: *up_to_seq,
        }),
        E::RecordingStarted {
            room,
            recording,
            video,
            by,
        } => put!(v1::RecordingStarted {
            room: s(room),
            recording: s(recording),
            video: *video,
            by: by.as_ref().map(principal_out),
        }),
        E::RecordingStopped { room, recording } => put!(v1::RecordingStopped {
            room: s(room),
            recording: s(recording),
        }),
        E::RecordingFileClosed {
            room,
            recording,
            file,
        } => put!(v1::RecordingFileClosed {
            room: s(room),
            recording: s(recording),
            name: file.name.clone(),
            kind: recording_kind_out(file.kind),
            track: file.track.clone(),
            bytes: file.bytes,
            duration_ms: file.duration_ms,
            blake3: file.blake3.clone(),
        }),
        E::RecordingErased {
            room,
            recording,
            names,
            action,
        } => put!(v1::RecordingErased {
            room: s(room),
            recording: s(recording),
            names: names.clone(),
            action: erasure_out(*action),
        }),
    };
    Ok((payload, content))
}
