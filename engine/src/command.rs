//! Commands: what gateways and the admin API ask the engine to do.
//!
//! Commands are requests, not facts: `decide` may refuse them. Passwords being *set*
//! arrive already hashed (argon2 PHC strings computed by the service, so the core never
//! spends CPU on hashing nor holds a salt source); password *attempts* arrive in
//! plaintext wrapped in [`Secret`] and are checked through the injected
//! [`PasswordVerifier`](crate::PasswordVerifier).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, Address, InvitationId, Principal, RecordingId, RoomName, SessionId};
use crate::model::{AddressTarget, BanScope, Role, RoomChange};
use crate::recording::{RecordingErasure, RecordingFile};

/// A plaintext secret (a password attempt). Its `Debug` never prints the value, so
/// commands can be logged safely.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret(pub String);

impl Secret {
    /// Wrap a plaintext secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The plaintext, for the verifier only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The SHA-256 digest of a bearer secret (an email invitation's): what the journal and
/// the state keep instead of the secret. The secrets are 256 random bits made by the
/// gateway, so an unkeyed digest is enough: nothing short of the secret matches it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SecretDigest(pub [u8; 32]);

impl SecretDigest {
    /// The digest of `secret`.
    pub fn of(secret: &Secret) -> Self {
        use sha2::Digest;
        SecretDigest(sha2::Sha256::digest(secret.expose().as_bytes()).into())
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigest(..)")
    }
}

/// Shortest and longest bearer secret the engine takes (the web gateway makes 43
/// characters: 32 random bytes, base64url).
pub const SECRET_LEN: std::ops::RangeInclusive<usize> = 22..=256;

/// What a joiner presents.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Credentials {
    /// Mumble server password attempt.
    pub server_password: Option<Secret>,
    /// Room access password attempt.
    pub password: Option<Secret>,
    /// Owner password attempt (reserved rooms); success grants the owner role.
    pub owner_password: Option<Secret>,
    /// Invitation being used, by id: a personal invitation (or an email invitation
    /// journaled before bearer secrets existed, whose id was its bearer token).
    pub invitation: Option<InvitationId>,
    /// The bearer secret of an email invitation (the token in its link); checked
    /// against the digest the invitation keeps, never journaled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation_secret: Option<Secret>,
}

/// Every request the domain understands.
///
/// JSON form (NATS, tools): `{"join": {"room": "lobby", "session": "s1", ...}}`, the
/// variant name in snake_case as [`Command::name`] gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    // ---- accounts (Jami) ----
    /// Create an account (operator only).
    CreateAccount {
        /// New account id.
        account: AccountId,
        /// Optional display name (personal content).
        display_name: Option<String>,
    },
    /// Link an identity to an account so rules about the person hold on every protocol
    /// (operator only: proving ownership of the identity is the gateway's job).
    LinkIdentity {
        /// The account.
        account: AccountId,
        /// The identity.
        address: Address,
    },
    /// Undo a link (operator only).
    UnlinkIdentity {
        /// The account.
        account: AccountId,
        /// The identity.
        address: Address,
    },
    /// Give a `sip:` identity digest credentials for the registrar (operator only): links
    /// the identity to the account if it is not linked yet (one call provisions a SIP
    /// user, as Kamailio's `kamctl add` does). The HA1 values are computed by the admin
    /// API ([`crate::sip_digest::ha1`]); the password never reaches the engine. They are
    /// password-equivalent for the realm, so no JSON view of the event shows them.
    SetSipCredential {
        /// The account.
        account: AccountId,
        /// The `sip:` identity phones register as.
        address: Address,
        /// The digest realm the HA1 values were computed for.
        realm: String,
        /// `MD5(user:realm:password)`, 32 lowercase hex digits.
        ha1_md5: String,
        /// `SHA-256(user:realm:password)`, 64 lowercase hex digits.
        ha1_sha256: String,
    },
    /// Remove an identity's SIP digest credentials (operator only); the link stays.
    ClearSipCredential {
        /// The account.
        account: AccountId,
        /// The `sip:` identity.
        address: Address,
    },
    /// Set or clear the display name (operator or the account holder).
    SetDisplayName {
        /// The account.
        account: AccountId,
        /// New name, `None` to clear.
        display_name: Option<String>,
    },
    /// Jami enable-account (operator only).
    EnableAccount {
        /// The account.
        account: AccountId,
    },
    /// Jami disable-account: the account's sessions end and it cannot be reached
    /// (operator only).
    DisableAccount {
        /// The account.
        account: AccountId,
    },
    /// Add to the allowed-contacts list; the first entry turns the restriction on.
    AllowContact {
        /// The account.
        account: AccountId,
        /// Who may reach it.
        contact: Principal,
    },
    /// Remove from the allowed-contacts list (the restriction stays on).
    DisallowContact {
        /// The account.
        account: AccountId,
        /// Who.
        contact: Principal,
    },
    /// Clear the allow-list and let anyone reach the account again.
    OpenContacts {
        /// The account.
        account: AccountId,
    },
    /// Jami add-moderator: moderator rights in the account's conferences.
    AddModerator {
        /// The account.
        account: AccountId,
        /// The new moderator.
        moderator: Principal,
    },
    /// Remove a per-account moderator.
    RemoveModerator {
        /// The account.
        account: AccountId,
        /// The moderator.
        moderator: Principal,
    },
    /// Jami rendezvous mode: calls to the account land in `room` (created if missing);
    /// `None` leaves rendezvous mode.
    SetRendezvous {
        /// The account.
        account: AccountId,
        /// Its conference room.
        room: Option<RoomName>,
    },
    /// Call an account: joins its rendezvous room.
    CallAccount {
        /// Who is called.
        account: AccountId,
        /// The caller's session.
        session: SessionId,
        /// Passwords / invitation.
        credentials: Credentials,
    },

    // ---- rooms ----
    /// Create a room (public, or private = invite-only), possibly nested.
    CreateRoom {
        /// Name, checked against the room name rule.
        room: RoomName,
        /// Parent room for nesting (Mumble channels).
        parent: Option<RoomName>,
        /// Invite-only.
        private: bool,
        /// Owner; defaults to the acting identity. Only operators may name someone else.
        owner: Option<Principal>,
        /// Per-room member limit (capped by the server's).
        max_members: Option<u32>,
        /// Welcome text.
        welcome_text: Option<String>,
        /// Access password, already hashed.
        access_password_hash: Option<String>,
        /// Mumble server password attempt: creating a room enters the server as joining
        /// one does, so an identity not linked to an account needs it when the server
        /// has one. Operators never do.
        #[serde(default)]
        server_password: Option<Secret>,
    },
    /// Change configuration (owner or operator).
    ConfigureRoom {
        /// The room.
        room: RoomName,
        /// Changes, applied in order.
        changes: Vec<RoomChange>,
    },
    /// Lock: only moderators and owners may join (moderator).
    LockRoom {
        /// The room.
        room: RoomName,
    },
    /// Unlock (moderator).
    UnlockRoom {
        /// The room.
        room: RoomName,
    },
    /// VROOM reserve: make the room persistent with an owner password (owner).
    ReserveRoom {
        /// The room.
        room: RoomName,
        /// Owner password, already hashed.
        owner_password_hash: String,
    },
    /// Drop the reservation (owner).
    UnreserveRoom {
        /// The room.
        room: RoomName,
    },
    /// Destroy the room and its sub-rooms (owner).
    DestroyRoom {
        /// The room.
        room: RoomName,
    },
    /// Set or clear the room's subject (XEP-0045 subject, a topic). Moderators may, or
    /// members when the room lets them (`members_change_subject`); the actor must be
    /// present in the room, unless an operator. `None`, or text that is empty once
    /// sanitized, clears it; setting the subject it already has changes nothing.
    SetSubject {
        /// The room.
        room: RoomName,
        /// The subject: multi-line text like a welcome text (line feeds and tabs, no
        /// other control character), HTML stripped unless the server allows it, at most
        /// [`MAX_SUBJECT_LEN`](crate::model::MAX_SUBJECT_LEN) characters (or the
        /// policy's `text_message_length`, if smaller).
        subject: Option<String>,
    },

    // ---- membership ----
    /// Enter a room with one session.
    Join {
        /// The room.
        room: RoomName,
        /// The joining session (unique in the room).
        session: SessionId,
        /// Passwords / invitation.
        credentials: Credentials,
    },
    /// Leave with one session; the person stays present through their other sessions.
    Leave {
        /// The room.
        room: RoomName,
        /// The session.
        session: SessionId,
    },
    /// Keep a session alive: its gateway still holds it (a heartbeat, a re-REGISTER, an
    /// XMPP presence, a WebSocket ping). Journals a renewal only once half the lease is
    /// spent, so frequent renewals cost nothing.
    RenewSession {
        /// The room.
        room: RoomName,
        /// The session.
        session: SessionId,
    },
    /// Operator only, sent by a gateway that (re)starts: none of its earlier sessions
    /// survived, so each ends now (`gateway_restarted`) instead of lingering as a ghost.
    EndGatewaySessions {
        /// The gateway's name, as sessions record it (`web`, `sip`, `xmpp`, `nats`).
        gateway: String,
    },

    // ---- roles ----
    /// Grant a role (affiliation).
    GrantRole {
        /// The room.
        room: RoomName,
        /// Who.
        subject: Principal,
        /// Which role.
        role: Role,
    },
    /// Remove an affiliation.
    RevokeRole {
        /// The room.
        room: RoomName,
        /// Who.
        subject: Principal,
    },

    // ---- invitations ----
    /// Invite an identity or an email address (`mailto:`; bearer invitation).
    Invite {
        /// The room.
        room: RoomName,
        /// Invitee.
        invitee: Address,
        /// Lifetime; defaults to the policy's.
        ttl_secs: Option<u32>,
        /// Used once then invalid (VROOM). Defaults to true in APIs.
        single_use: bool,
        /// The bearer secret of an email (`mailto:`) invitation, made by the gateway
        /// (which delivers it): required for `mailto:` invitees, refused for others.
        /// Only its digest is journaled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<Secret>,
    },
    /// Accept (Kamailio `#accept`): the invitee becomes a member.
    AcceptInvitation {
        /// The room.
        room: RoomName,
        /// The invitation.
        invitation: InvitationId,
    },
    /// Decline (Kamailio `#deny`).
    DenyInvitation {
        /// The room.
        room: RoomName,
        /// The invitation.
        invitation: InvitationId,
    },
    /// Withdraw an invitation (its issuer or a moderator).
    RevokeInvitation {
        /// The room.
        room: RoomName,
        /// The invitation.
        invitation: InvitationId,
    },

    // ---- moderation ----
    /// Mute someone's audio (a moderator, or oneself).
    MuteAudio {
        /// The room.
        room: RoomName,
        /// Who.
        subject: Principal,
    },
    /// Lift an audio mute.
    UnmuteAudio {
        /// The room.
        room: RoomName,
        /// Who.
        subject: Principal,
    },
    /// Pause someone's video (a moderator, or oneself).
    PauseVideo {
        /// The room.
        room: RoomName,
        /// Who.
        subject: Principal,
    },
    /// Resume video.
    ResumeVideo {
        /// The room.
        room: RoomName,
        /// Who.
        subject: Principal,
    },
    /// Remove someone's sessions from the room (Kamailio `#remove`).
    Kick {
        /// The room.
        room: RoomName,
        /// Who.
        subject: Principal,
        /// Why.
        reason: Option<String>,
    },
    /// Ban; strips moderation rights in the scope and ends the subject's sessions there.
    Ban {
        /// Where.
        scope: BanScope,
        /// Who.
        subject: Principal,
        /// Why.
        reason: Option<String>,
        /// Until when; `None` = until unbanned.
        until: Option<DateTime<Utc>>,
    },
    /// Lift a ban.
    Unban {
        /// Where.
        scope: BanScope,
        /// Who.
        subject: Principal,
    },
    /// Ban a remote address (Mumble's ban by address): joins, knocks and room creations
    /// from it are refused in the scope. Moderators (room scope, on people they
    /// outrank) and account holders (account scope) ban the address of a present
    /// person; operators may also name an IP address or, with obfuscation off, a
    /// network. The person it is made from loses their sessions in the scope.
    BanAddress {
        /// Where.
        scope: BanScope,
        /// Whose address, or which.
        target: AddressTarget,
        /// Why.
        reason: Option<String>,
        /// Until when; `None` = until lifted.
        until: Option<DateTime<Utc>>,
    },
    /// Lift an address ban: named by its id or its address as listed, or (operators) by
    /// the plain IP address or network.
    UnbanAddress {
        /// Where.
        scope: BanScope,
        /// The ban's id, or its address.
        address: String,
    },
    /// Ask to be let in (lobby).
    Knock {
        /// The room.
        room: RoomName,
        /// The waiting session.
        session: SessionId,
        /// The server password (Mumble's), asked of identities without an account as on
        /// a join: the lobby is inside the server.
        #[serde(default)]
        server_password: Option<Secret>,
    },
    /// Let a knocking person in (moderator); their session joins.
    Admit {
        /// The room.
        room: RoomName,
        /// Who.
        subject: Principal,
    },
    /// Turn a knocking person away (moderator).
    RejectKnock {
        /// The room.
        room: RoomName,
        /// Who.
        subject: Principal,
    },
    /// Raise one's hand.
    RaiseHand {
        /// The room.
        room: RoomName,
    },
    /// Lower a hand: one's own, or someone's (moderator).
    LowerHand {
        /// The room.
        room: RoomName,
        /// Whose hand; `None` = one's own.
        subject: Option<Principal>,
    },
    /// Moderators-only chat on/off (moderator).
    SetModeratedChat {
        /// The room.
        room: RoomName,
        /// On or off.
        enabled: bool,
    },

    // ---- recording ----
    /// Start recording the room (a moderator, as for muting others): its mixed audio,
    /// and each video track when `video`. Refused (`recording.already_active`) while
    /// one runs.
    StartRecording {
        /// The room.
        room: RoomName,
        /// Also record each video track as it arrives.
        #[serde(default)]
        video: bool,
    },
    /// Stop the room's recording (a moderator); `recording.not_active` if none runs.
    StopRecording {
        /// The room.
        room: RoomName,
    },
    /// Journal a recording file the media node closed: its name, length, duration and
    /// blake3. Operator or service only, and never accepted from outside (it is not
    /// deserialized): only the media node inside the process states what it wrote.
    /// Accepted for a recording started in the room, also after it stopped (files close
    /// after the stop).
    #[serde(skip_deserializing)]
    RecordRecordingFile {
        /// The room.
        room: RoomName,
        /// The recording.
        recording: RecordingId,
        /// The file.
        file: RecordingFile,
    },
    /// Journal that a recording's files are about to be deleted (retention or the
    /// erasure of a person who took part). Operator only, issued by the purge, never
    /// deserialized. The `recording_file_closed` facts stay: an auditor still sees what
    /// existed and its hash.
    #[serde(skip_deserializing)]
    EraseRecording {
        /// The room.
        room: RoomName,
        /// The recording.
        recording: RecordingId,
        /// Why.
        reason: RecordingErasure,
    },

    // ---- chat ----
    /// Post a chat message to the room.
    PostMessage {
        /// The room.
        room: RoomName,
        /// The text (HTML stripped unless allowed).
        body: String,
    },

    // ---- server policies (operator only) ----
    /// Set or clear the server password (already hashed).
    SetServerPassword {
        /// argon2 PHC string or `None`.
        hash: Option<String>,
    },
    /// Retention of personal content (Mumble log-days).
    SetLogDays {
        /// Days; 0 forever, -1 none.
        days: i32,
    },
    /// Obfuscate remote addresses.
    SetObfuscateIps {
        /// On or off.
        enabled: bool,
    },
    /// Server welcome text.
    SetWelcomeText {
        /// The text.
        text: String,
    },
    /// Lift an autoban before it runs out (operator only; Mumble's ban list editing).
    LiftAutoban {
        /// The identity or the stored remote address (as listed).
        key: crate::event::AutobanKey,
    },

    // ---- retention ----
    /// Journal that personal content is about to be purged (retention or erasure).
    /// Operator only. Issued by [`Engine::purge_content`](crate::service::Engine::purge_content)
    /// after it has selected the records, and never accepted from outside (it is not
    /// deserialized): a gateway must not be able to journal a purge that did not happen.
    #[serde(skip_deserializing)]
    RecordContentPurge {
        /// The person whose content is erased; `None` for log-days retention.
        subject: Option<Principal>,
        /// Retention cut-off; `None` for an erasure.
        before: Option<DateTime<Utc>>,
        /// Records whose content will be removed (at least one).
        records: u64,
        /// The last journal record the selection covered.
        up_to_seq: u64,
    },

    // ---- gateways ----
    /// Journal a refusal a gateway made on its own, before any other command: an INVITE
    /// whose SDP has no common codec (488), a session interval too small (422), a
    /// REGISTER interval too brief (423), a failed digest answer (401/403). Always
    /// refused ([`Rejection::GatewayRefused`](crate::Rejection::GatewayRefused)) with an
    /// `api_action_denied` to record, so it takes the engine's denial path: repeats from
    /// one source (the origin's remote address, else the actor) are journaled once a
    /// minute. Any actor: the gateway sends it as the identity it refused. Never
    /// accepted from outside (it is not deserialized): only a gateway inside the process
    /// states what it refused.
    #[serde(skip_deserializing)]
    RecordGatewayRefusal {
        /// The room the refused request named, if any; journaled only when it exists
        /// (else the record goes to the `server` stream).
        room: Option<RoomName>,
        /// What was refused, `[a-z0-9._]{1,64}`: `sip_invite`, `sip_register`.
        action: String,
        /// Why, a stable code `[a-z0-9._]{1,64}`: `sdp.no_common_codec`,
        /// `timer.too_small`, `register.interval_too_brief`, `digest.wrong_response`.
        code: String,
    },
}

impl Command {
    /// A public top-level room with the defaults (no limit, no welcome text, no
    /// passwords), owned by `owner` if given.
    pub fn create_room(room: RoomName, owner: Option<Principal>) -> Self {
        Command::CreateRoom {
            room,
            parent: None,
            private: false,
            owner,
            max_members: None,
            welcome_text: None,
            access_password_hash: None,
            server_password: None,
        }
    }

    /// An invitation with the defaults: the policy's lifetime, single use (VROOM), no
    /// bearer secret (so not for a `mailto:` invitee: see [`Command::Invite`]).
    pub fn invite(room: RoomName, invitee: Address) -> Self {
        Command::Invite {
            room,
            invitee,
            ttl_secs: None,
            single_use: true,
            secret: None,
        }
    }

    /// Stable snake_case name, used in `api_action_denied` events and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateAccount { .. } => "create_account",
            Command::LinkIdentity { .. } => "link_identity",
            Command::UnlinkIdentity { .. } => "unlink_identity",
            Command::SetSipCredential { .. } => "set_sip_credential",
            Command::ClearSipCredential { .. } => "clear_sip_credential",
            Command::SetDisplayName { .. } => "set_display_name",
            Command::EnableAccount { .. } => "enable_account",
            Command::DisableAccount { .. } => "disable_account",
            Command::AllowContact { .. } => "allow_contact",
            Command::DisallowContact { .. } => "disallow_contact",
            Command::OpenContacts { .. } => "open_contacts",
            Command::AddModerator { .. } => "add_moderator",
            Command::RemoveModerator { .. } => "remove_moderator",
            Command::SetRendezvous { .. } => "set_rendezvous",
            Command::CallAccount { .. } => "call_account",
            Command::CreateRoom { .. } => "create_room",
            Command::ConfigureRoom { .. } => "configure_room",
            Command::LockRoom { .. } => "lock_room",
            Command::UnlockRoom { .. } => "unlock_room",
            Command::ReserveRoom { .. } => "reserve_room",
            Command::UnreserveRoom { .. } => "unreserve_room",
            Command::DestroyRoom { .. } => "destroy_room",
            Command::SetSubject { .. } => "set_subject",
            Command::Join { .. } => "join",
            Command::Leave { .. } => "leave",
            Command::RenewSession { .. } => "renew_session",
            Command::EndGatewaySessions { .. } => "end_gateway_sessions",
            Command::GrantRole { .. } => "grant_role",
            Command::RevokeRole { .. } => "revoke_role",
            Command::Invite { .. } => "invite",
            Command::AcceptInvitation { .. } => "accept_invitation",
            Command::DenyInvitation { .. } => "deny_invitation",
            Command::RevokeInvitation { .. } => "revoke_invitation",
            Command::MuteAudio { .. } => "mute_audio",
            Command::UnmuteAudio { .. } => "unmute_audio",
            Command::PauseVideo { .. } => "pause_video",
            Command::ResumeVideo { .. } => "resume_video",
            Command::Kick { .. } => "kick",
            Command::Ban { .. } => "ban",
            Command::Unban { .. } => "unban",
            Command::BanAddress { .. } => "ban_address",
            Command::UnbanAddress { .. } => "unban_address",
            Command::Knock { .. } => "knock",
            Command::Admit { .. } => "admit",
            Command::RejectKnock { .. } => "reject_knock",
            Command::RaiseHand { .. } => "raise_hand",
            Command::LowerHand { .. } => "lower_hand",
            Command::SetModeratedChat { .. } => "set_moderated_chat",
            Command::PostMessage { .. } => "post_message",
            Command::StartRecording { .. } => "start_recording",
            Command::StopRecording { .. } => "stop_recording",
            Command::RecordRecordingFile { .. } => "record_recording_file",
            Command::EraseRecording { .. } => "erase_recording",
            Command::SetServerPassword { .. } => "set_server_password",
            Command::SetLogDays { .. } => "set_log_days",
            Command::SetObfuscateIps { .. } => "set_obfuscate_ips",
            Command::SetWelcomeText { .. } => "set_welcome_text",
            Command::LiftAutoban { .. } => "lift_autoban",
            Command::RecordContentPurge { .. } => "record_content_purge",
            Command::RecordGatewayRefusal { .. } => "record_gateway_refusal",
        }
    }

    /// The room the command is about, if any: the service serializes commands per room
    /// with this.
    pub fn room(&self) -> Option<&RoomName> {
        match self {
            Command::SetRendezvous { room, .. } | Command::RecordGatewayRefusal { room, .. } => {
                room.as_ref()
            }
            Command::CreateRoom { room, .. }
            | Command::ConfigureRoom { room, .. }
            | Command::LockRoom { room }
            | Command::UnlockRoom { room }
            | Command::ReserveRoom { room, .. }
            | Command::UnreserveRoom { room }
            | Command::DestroyRoom { room }
            | Command::SetSubject { room, .. }
            | Command::Join { room, .. }
            | Command::Leave { room, .. }
            | Command::RenewSession { room, .. }
            | Command::GrantRole { room, .. }
            | Command::RevokeRole { room, .. }
            | Command::Invite { room, .. }
            | Command::AcceptInvitation { room, .. }
            | Command::DenyInvitation { room, .. }
            | Command::RevokeInvitation { room, .. }
            | Command::MuteAudio { room, .. }
            | Command::UnmuteAudio { room, .. }
            | Command::PauseVideo { room, .. }
            | Command::ResumeVideo { room, .. }
            | Command::Kick { room, .. }
            | Command::Knock { room, .. }
            | Command::Admit { room, .. }
            | Command::RejectKnock { room, .. }
            | Command::RaiseHand { room }
            | Command::LowerHand { room, .. }
            | Command::SetModeratedChat { room, .. }
            | Command::PostMessage { room, .. }
            | Command::StartRecording { room, .. }
            | Command::StopRecording { room }
            | Command::RecordRecordingFile { room, .. }
            | Command::EraseRecording { room, .. } => Some(room),
            Command::Ban { scope, .. }
            | Command::Unban { scope, .. }
            | Command::BanAddress { scope, .. }
            | Command::UnbanAddress { scope, .. } => match scope {
                BanScope::Room(r) => Some(r),
                _ => None,
            },
            _ => None,
        }
    }

    /// The person the command acts upon, if any (for `api_action_denied`).
    pub fn subject(&self) -> Option<&Principal> {
        match self {
            Command::GrantRole { subject, .. }
            | Command::RevokeRole { subject, .. }
            | Command::MuteAudio { subject, .. }
            | Command::UnmuteAudio { subject, .. }
            | Command::PauseVideo { subject, .. }
            | Command::ResumeVideo { subject, .. }
            | Command::Kick { subject, .. }
            | Command::Ban { subject, .. }
            | Command::Unban { subject, .. }
            | Command::Admit { subject, .. }
            | Command::RejectKnock { subject, .. } => Some(subject),
            Command::LowerHand { subject, .. } | Command::RecordContentPurge { subject, .. } => {
                subject.as_ref()
            }
            Command::AllowContact { contact, .. } | Command::DisallowContact { contact, .. } => {
                Some(contact)
            }
            Command::AddModerator { moderator, .. }
            | Command::RemoveModerator { moderator, .. } => Some(moderator),
            Command::BanAddress {
                target: AddressTarget::Of(p),
                ..
            } => Some(p),
            _ => None,
        }
    }
}
