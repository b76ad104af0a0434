//! Events: facts the engine has decided, including denied attempts.
//!
//! An [`Event`] is an envelope (when, who acted) around an [`EventKind`] (what happened,
//! to whom). Every event belongs to exactly one stream ([`StreamId`]): `room:<name>`,
//! `account:<id>` or `server`; the journal orders events per stream and globally.
//! Domain events are not the storage format: see [`crate::codec`].

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::context::Actor;
use crate::ids::{
    AccountId, Address, InvitationId, MessageId, Principal, RecordingId, RoomName, SessionId,
};
use crate::model::{BanScope, PolicyChange, Role, RoomChange, RoomConfig};
use crate::recording::{RecordingErasure, RecordingFile};

/// The aggregate an event belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamId {
    /// Server-wide facts: policy, server bans, autoban.
    Server,
    /// One room: its lifecycle, members, roles, invitations, moderation, chat.
    Room(RoomName),
    /// One account: identities, display name, allow-list, moderators, rendezvous.
    Account(AccountId),
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamId::Server => f.write_str("server"),
            StreamId::Room(r) => write!(f, "room:{r}"),
            StreamId::Account(a) => write!(f, "account:{a}"),
        }
    }
}

/// Why a join was refused. Journaled so forensics and autoban can see every attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    /// A room, account, server or automatic ban applies.
    Banned,
    /// The room is at its member limit (VROOM `member_off_limit`).
    RoomFull,
    /// The server is at its user limit (Mumble `max-users`).
    ServerFull,
    /// A server, room or owner password was missing or wrong.
    WrongPassword,
    /// Private room, no affiliation, no valid invitation.
    NotInvited,
    /// The room is locked.
    Locked,
    /// Nothing gives the joiner a role (VROOM `no_role`).
    NoRole,
    /// The joiner's account (or the called account) is disabled.
    AccountDisabled,
    /// Not on the called account's allowed-contacts list (Jami).
    NotAllowed,
    /// The room has a lobby: knock first.
    Lobby,
    /// A password was needed and none was given: the usual "ask for the password"
    /// step of a client, not a guess.
    PasswordRequired,
    /// The invitation presented has expired.
    InvitationExpired,
    /// The invitation presented was already used or revoked.
    InvitationClosed,
    /// The server admits only identities linked to an account (`policy.accounts_only`).
    AccountRequired,
}

impl DenyReason {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::Banned => "banned",
            DenyReason::RoomFull => "room_full",
            DenyReason::ServerFull => "server_full",
            DenyReason::WrongPassword => "wrong_password",
            DenyReason::NotInvited => "not_invited",
            DenyReason::Locked => "locked",
            DenyReason::NoRole => "no_role",
            DenyReason::AccountDisabled => "account_disabled",
            DenyReason::NotAllowed => "not_allowed",
            DenyReason::Lobby => "lobby",
            DenyReason::PasswordRequired => "password_required",
            DenyReason::InvitationExpired => "invitation_expired",
            DenyReason::InvitationClosed => "invitation_closed",
            DenyReason::AccountRequired => "account_required",
        }
    }

    /// Whether this denial counts towards autoban. Guessing (passwords, invitations,
    /// allow-lists, roles) counts; a full or locked room, an existing ban, a lobby, a
    /// join that has not offered a password yet, or an invitation that has run out or
    /// was used does not, so honest clients are never punished.
    pub fn counts_for_autoban(self) -> bool {
        matches!(
            self,
            DenyReason::WrongPassword
                | DenyReason::NotInvited
                | DenyReason::NotAllowed
                | DenyReason::NoRole
        )
    }
}

/// Why a room was deleted by a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    /// Its owner (or an operator) destroyed it.
    Destroyed,
    /// The owner left a room configured to close then (Kamailio IMC `#exit`).
    OwnerLeft,
    /// Its parent was destroyed.
    ParentDeleted,
}

/// Why a session left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The person left.
    Left,
    /// The gateway lost the session (hang-up, timeout) and reported it.
    Disconnected,
    /// Its gateway stopped renewing its lease (a vanished client, a gateway gone).
    LeaseExpired,
    /// Its gateway restarted and announced that none of its sessions survived.
    GatewayRestarted,
}

/// How a role change came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleVia {
    /// Someone granted it.
    Grant,
    /// Someone revoked it.
    Revoke,
    /// The subject presented the owner password.
    OwnerPassword,
    /// The subject accepted or used an invitation.
    Invitation,
}

/// Why an invitation stopped being usable (VROOM `invalidate_invitation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidationReason {
    /// Used (single-use invitations).
    Used,
    /// Withdrawn.
    Revoked,
    /// Past its expiry.
    Expired,
}

/// What autoban counts and bans: an identity, or a (stored, usually obfuscated) remote
/// address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutobanKey {
    /// An identity.
    Identity(Address),
    /// A remote address as stored (see [`crate::policy::stored_remote_addr`]).
    Remote(String),
}

/// A decided fact: when, who acted, what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When it was decided (the command's context time).
    pub at: DateTime<Utc>,
    /// Who acted.
    pub actor: Actor,
    /// What happened.
    pub kind: EventKind,
}

/// What happened. Fields named `subject` / `principal` say whom it is about.
///
/// Serializes (for JSON views: REST, NATS, reports) as the variant's fields only; the
/// type name travels beside it ([`EventKind::type_name`]). Not a storage format: the
/// journal stores `codec::stored` types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EventKind {
    // ---- accounts ----
    /// An account was created.
    AccountCreated {
        /// The account.
        account: AccountId,
        /// Personal content: `None` when never set or purged.
        display_name: Option<String>,
    },
    /// An identity was linked to an account.
    IdentityLinked {
        /// The account.
        account: AccountId,
        /// The identity.
        address: Address,
    },
    /// An identity was unlinked.
    IdentityUnlinked {
        /// The account.
        account: AccountId,
        /// The identity.
        address: Address,
    },
    /// A `sip:` identity of the account got digest credentials for the registrar
    /// (replacing any it had). The HA1 values are password-equivalent for the realm:
    /// they are stored (the registrar needs them after a restart) but never serialized,
    /// so no JSON view (feed, NATS, audit, timelines) shows them; the view lists the
    /// algorithms instead (see [`crate::json::event_json`]).
    SipCredentialSet {
        /// The account.
        account: AccountId,
        /// The identity.
        address: Address,
        /// The digest realm.
        realm: String,
        /// HA1 for MD5 (never serialized).
        #[serde(skip_serializing)]
        ha1_md5: String,
        /// HA1 for SHA-256 (never serialized).
        #[serde(skip_serializing)]
        ha1_sha256: String,
    },
    /// An identity's SIP digest credentials were removed (the identity stays linked).
    SipCredentialCleared {
        /// The account.
        account: AccountId,
        /// The identity.
        address: Address,
    },
    /// The display name changed.
    DisplayNameChanged {
        /// The account.
        account: AccountId,
        /// Personal content: `None` when cleared or purged.
        display_name: Option<String>,
    },
    /// The account was enabled.
    AccountEnabled {
        /// The account.
        account: AccountId,
    },
    /// The account was disabled; its sessions ended.
    AccountDisabled {
        /// The account.
        account: AccountId,
    },
    /// A contact was allowed (turns the allow-list on).
    ContactAllowed {
        /// The account.
        account: AccountId,
        /// The contact.
        contact: Principal,
    },
    /// A contact was removed from the allow-list.
    ContactDisallowed {
        /// The account.
        account: AccountId,
        /// The contact.
        contact: Principal,
    },
    /// The allow-list was cleared: anyone may reach the account.
    ContactsOpened {
        /// The account.
        account: AccountId,
    },
    /// A per-account moderator was added.
    ModeratorAdded {
        /// The account.
        account: AccountId,
        /// The moderator.
        moderator: Principal,
    },
    /// A per-account moderator was removed.
    ModeratorRemoved {
        /// The account.
        account: AccountId,
        /// The moderator.
        moderator: Principal,
    },
    /// Rendezvous mode changed.
    RendezvousChanged {
        /// The account.
        account: AccountId,
        /// Its conference room, `None` = off.
        room: Option<RoomName>,
    },

    // ---- rooms ----
    /// A room was created (VROOM `room_create`).
    RoomCreated {
        /// The room.
        room: RoomName,
        /// Parent, for nested rooms.
        parent: Option<RoomName>,
        /// First owner.
        owner: Principal,
        /// Initial configuration.
        config: RoomConfig,
    },
    /// One configuration change (VROOM `room_modify`).
    RoomModified {
        /// The room.
        room: RoomName,
        /// The change.
        change: RoomChange,
    },
    /// The room was reserved with an owner password.
    RoomReserved {
        /// The room.
        room: RoomName,
        /// argon2 PHC string.
        owner_password_hash: String,
    },
    /// The reservation was dropped.
    RoomUnreserved {
        /// The room.
        room: RoomName,
    },
    /// The room was deleted by a command (VROOM `room_delete`).
    RoomDeleted {
        /// The room.
        room: RoomName,
        /// Why.
        reason: DeleteReason,
    },
    /// The room expired after inactivity (VROOM `room_expire`).
    RoomExpired {
        /// The room.
        room: RoomName,
        /// Seconds since the last activity.
        idle_secs: u64,
        /// Whether the reserved timeout applied.
        reserved: bool,
    },
    /// The room's subject was set or cleared (XEP-0045 subject; `room_subject`). The
    /// subject is a setting of the room, not personal content: it stays in the payload
    /// as the welcome text does, so retention never makes a room lose its subject.
    SubjectChanged {
        /// The room.
        room: RoomName,
        /// The new subject, `None` when cleared.
        subject: Option<String>,
        /// Who set it, as a person; `None` when an operator or a service did.
        by: Option<Principal>,
        /// With which identity (what an XMPP gateway shows as its sender).
        address: Option<Address>,
    },

    // ---- membership ----
    /// A session joined (VROOM `room_join`).
    Joined {
        /// The room.
        room: RoomName,
        /// Who, as a person.
        principal: Principal,
        /// With which identity.
        address: Address,
        /// The session.
        session: SessionId,
        /// Through which gateway.
        gateway: String,
        /// Effective role at join.
        role: Role,
        /// Stored remote address (obfuscated by policy).
        remote: Option<String>,
    },
    /// A session's lease was granted or renewed: it ends at `until` unless renewed
    /// again (its gateway heartbeats; a SIP re-REGISTER, an XMPP presence, a WebSocket
    /// ping). Renewals are journaled only when at least half the lease is spent.
    SessionRenewed {
        /// The room.
        room: RoomName,
        /// Who.
        principal: Principal,
        /// The session.
        session: SessionId,
        /// When the lease ends.
        until: DateTime<Utc>,
    },
    /// A session left (VROOM `room_leave`).
    Left {
        /// The room.
        room: RoomName,
        /// Who.
        principal: Principal,
        /// The session.
        session: SessionId,
        /// Why.
        reason: LeaveReason,
    },
    /// A join was refused (VROOM `member_off_limit`, `no_role`, or `join_denied`).
    JoinDenied {
        /// The room.
        room: RoomName,
        /// Who, as a person.
        principal: Principal,
        /// With which identity.
        address: Address,
        /// Why.
        reason: DenyReason,
        /// Stored remote address (obfuscated by policy).
        remote: Option<String>,
    },

    // ---- roles ----
    /// An affiliation changed (VROOM `peer_role`).
    RoleChanged {
        /// The room.
        room: RoomName,
        /// Whose.
        subject: Principal,
        /// Before.
        from: Option<Role>,
        /// After (`None` = no affiliation).
        to: Option<Role>,
        /// How.
        via: RoleVia,
    },

    // ---- invitations ----
    /// An invitation was issued (VROOM `send_invitation`).
    InvitationIssued {
        /// The room.
        room: RoomName,
        /// The invitation.
        invitation: InvitationId,
        /// To whom (an identity, or `mailto:`).
        invitee: Address,
        /// Expiry.
        expires_at: Option<DateTime<Utc>>,
        /// Single use.
        single_use: bool,
        /// An email invitation's bearer secret, as its SHA-256 digest (never the
        /// secret). `None` for personal invitations, and for email invitations journaled
        /// before secrets existed (their id was the bearer token). Never serialized: the
        /// JSON views say `"bearer": true` instead (see [`crate::json::event_json`]).
        #[serde(skip_serializing)]
        secret_digest: Option<crate::command::SecretDigest>,
    },
    /// The invitee answered (VROOM `invitation_response`).
    InvitationAnswered {
        /// The room.
        room: RoomName,
        /// The invitation.
        invitation: InvitationId,
        /// Accepted or declined.
        accepted: bool,
        /// Who answered.
        by: Principal,
    },
    /// The invitation is no longer usable (VROOM `invalidate_invitation`).
    InvitationInvalidated {
        /// The room.
        room: RoomName,
        /// The invitation.
        invitation: InvitationId,
        /// Why.
        reason: InvalidationReason,
    },

    // ---- moderation ----
    /// Audio muted.
    AudioMuted {
        /// The room.
        room: RoomName,
        /// Whose.
        subject: Principal,
        /// By a moderator (server-enforced) rather than by the subject.
        by_moderator: bool,
    },
    /// Audio mute lifted.
    AudioUnmuted {
        /// The room.
        room: RoomName,
        /// Whose.
        subject: Principal,
    },
    /// Video paused.
    VideoPaused {
        /// The room.
        room: RoomName,
        /// Whose.
        subject: Principal,
        /// By a moderator rather than by the subject.
        by_moderator: bool,
    },
    /// Video resumed.
    VideoResumed {
        /// The room.
        room: RoomName,
        /// Whose.
        subject: Principal,
    },
    /// All of the subject's sessions were removed from the room.
    Kicked {
        /// The room.
        room: RoomName,
        /// Who.
        subject: Principal,
        /// Why (added in schema v2 of `peer_kick`).
        reason: Option<String>,
    },
    /// A ban; implies the subject's sessions in the scope end and moderation rights there
    /// are stripped (the last owner of a room keeps ownership so the room keeps one).
    Banned {
        /// Where.
        scope: BanScope,
        /// Who.
        subject: Principal,
        /// Why.
        reason: Option<String>,
        /// Until when.
        until: Option<DateTime<Utc>>,
    },
    /// A ban was lifted, by someone or by expiry.
    Unbanned {
        /// Where.
        scope: BanScope,
        /// Who.
        subject: Principal,
        /// Lifted because it expired.
        expired: bool,
    },
    /// A remote address (or, with obfuscation off, a network) was banned: attempts to
    /// join, knock or create a room from it are refused in the scope. When it was made
    /// from a present person (`subject`), their sessions in the scope end, as a ban's
    /// do; other people's live sessions from the same address are left alone (as
    /// Mumble's ban disconnects only the banned user: others behind the same NAT keep
    /// their session until they reconnect).
    AddressBanned {
        /// Where.
        scope: BanScope,
        /// Its id (listing, lifting): names it without showing the address.
        id: String,
        /// The remote address as stored (see [`crate::policy::stored_remote_addr`]), or
        /// a network in CIDR form.
        remote: String,
        /// The person it was made from, if any.
        subject: Option<Principal>,
        /// Why.
        reason: Option<String>,
        /// Until when; `None` = until lifted.
        until: Option<DateTime<Utc>>,
    },
    /// An address ban was lifted, by someone or by expiry.
    AddressUnbanned {
        /// Where.
        scope: BanScope,
        /// Its id.
        id: String,
        /// The address as it was banned.
        remote: String,
        /// Lifted because it expired.
        expired: bool,
    },
    /// Someone waits in the lobby.
    Knocked {
        /// The room.
        room: RoomName,
        /// Who.
        principal: Principal,
        /// With which identity.
        address: Address,
        /// The waiting session.
        session: SessionId,
        /// Through which gateway.
        gateway: String,
    },
    /// A knock was admitted (a `room_join` follows).
    KnockAdmitted {
        /// The room.
        room: RoomName,
        /// Who.
        principal: Principal,
    },
    /// A knock was turned away.
    KnockRejected {
        /// The room.
        room: RoomName,
        /// Who.
        principal: Principal,
    },
    /// A hand went up.
    HandRaised {
        /// The room.
        room: RoomName,
        /// Whose.
        subject: Principal,
    },
    /// A hand went down.
    HandLowered {
        /// The room.
        room: RoomName,
        /// Whose.
        subject: Principal,
    },
    /// A command was refused for lack of rights (VROOM `api_action_denied`).
    ActionDenied {
        /// The room, if the command was about one (else the event goes to `server`).
        room: Option<RoomName>,
        /// The command's name.
        action: String,
        /// Whom it would have affected.
        subject: Option<Principal>,
        /// The rejection code.
        code: String,
    },

    // ---- autoban ----
    /// Too many failed joins: a timed ban.
    AutobanApplied {
        /// What is banned.
        key: AutobanKey,
        /// Failures counted in the window.
        attempts: u32,
        /// Until when.
        until: DateTime<Utc>,
        /// Whether it also ended the live sessions it matched. Autobans written before
        /// `autoban` v2 did (and still do on replay); since then an autoban only refuses
        /// new attempts, as Mumble's does, so a guesser cannot throw out the people who
        /// share an address or whose name was guessed.
        ends_sessions: bool,
    },
    /// An autoban ended.
    AutobanLifted {
        /// What was banned.
        key: AutobanKey,
    },

    // ---- recording ----
    /// A moderator started recording the room (every participant sees it: "this
    /// meeting is being recorded").
    RecordingStarted {
        /// The room.
        room: RoomName,
        /// The recording (its files live under `<data>/recordings/<recording>/`).
        recording: RecordingId,
        /// Whether video tracks are recorded too.
        video: bool,
        /// Who started it, as a person; `None` when an operator or a service did.
        by: Option<Principal>,
    },
    /// The recording stopped: by a moderator, or because the room went.
    RecordingStopped {
        /// The room.
        room: RoomName,
        /// The recording.
        recording: RecordingId,
    },
    /// The media node closed one of the recording's files: its length, duration and
    /// blake3, which `conclave verify-recording` checks a file against.
    RecordingFileClosed {
        /// The room.
        room: RoomName,
        /// The recording.
        recording: RecordingId,
        /// The file.
        file: RecordingFile,
    },
    /// The recording's files were deleted (retention or erasure). The
    /// `recording_file_closed` records stay, so their names and hashes remain.
    RecordingErased {
        /// The room.
        room: RoomName,
        /// The recording.
        recording: RecordingId,
        /// The files deleted (names relative to `<data>/recordings/`).
        names: Vec<String>,
        /// Why.
        action: RecordingErasure,
    },

    // ---- chat ----
    /// A chat message was posted.
    MessagePosted {
        /// The room.
        room: RoomName,
        /// The message.
        message: MessageId,
        /// Who, as a person.
        from: Principal,
        /// With which identity.
        address: Address,
        /// Personal content: `None` once purged by retention or erasure.
        body: Option<String>,
        /// Whether HTML was stripped from it.
        html_stripped: bool,
    },

    // ---- policy ----
    /// A server policy changed.
    PolicyChanged {
        /// The change.
        change: PolicyChange,
    },

    // ---- retention ----
    /// Personal content was removed from the journal's side store (Mumble log-days
    /// retention, or erasure of one person's content); the records and the hash chain
    /// stay, so this fact is what tells an auditor why content is missing.
    ContentPurged {
        /// The person whose content was erased; `None` for log-days retention.
        subject: Option<Principal>,
        /// Retention cut-off: content of records before this time was purged.
        before: Option<DateTime<Utc>>,
        /// Records whose content this action removed.
        records: u64,
        /// The journal head the action covered.
        up_to_seq: u64,
    },
}

impl Event {
    /// The stream this event is appended to.
    pub fn stream(&self) -> StreamId {
        self.kind.stream()
    }

    /// The stable event type name (see [`EventKind::type_name`]).
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }
}

impl EventKind {
    /// The stream this event is appended to.
    pub fn stream(&self) -> StreamId {
        use EventKind as E;
        match self {
            E::AccountCreated { account, .. }
            | E::IdentityLinked { account, .. }
            | E::IdentityUnlinked { account, .. }
            | E::SipCredentialSet { account, .. }
            | E::SipCredentialCleared { account, .. }
            | E::DisplayNameChanged { account, .. }
            | E::AccountEnabled { account }
            | E::AccountDisabled { account }
            | E::ContactAllowed { account, .. }
            | E::ContactDisallowed { account, .. }
            | E::ContactsOpened { account }
            | E::ModeratorAdded { account, .. }
            | E::ModeratorRemoved { account, .. }
            | E::RendezvousChanged { account, .. } => StreamId::Account(account.clone()),
            E::RoomCreated { room, .. }
            | E::RoomModified { room, .. }
            | E::RoomReserved { room, .. }
            | E::RoomUnreserved { room }
            | E::RoomDeleted { room, .. }
            | E::RoomExpired { room, .. }
            | E::SubjectChanged { room, .. }
            | E::Joined { room, .. }
            | E::SessionRenewed { room, .. }
            | E::Left { room, .. }
            | E::JoinDenied { room, .. }
            | E::RoleChanged { room, .. }
            | E::InvitationIssued { room, .. }
            | E::InvitationAnswered { room, .. }
            | E::InvitationInvalidated { room, .. }
            | E::AudioMuted { room, .. }
            | E::AudioUnmuted { room, .. }
            | E::VideoPaused { room, .. }
            | E::VideoResumed { room, .. }
            | E::Kicked { room, .. }
            | E::Knocked { room, .. }
            | E::KnockAdmitted { room, .. }
            | E::KnockRejected { room, .. }
            | E::HandRaised { room, .. }
            | E::HandLowered { room, .. }
            | E::MessagePosted { room, .. }
            | E::RecordingStarted { room, .. }
            | E::RecordingStopped { room, .. }
            | E::RecordingFileClosed { room, .. }
            | E::RecordingErased { room, .. } => StreamId::Room(room.clone()),
            E::Banned { scope, .. }
            | E::Unbanned { scope, .. }
            | E::AddressBanned { scope, .. }
            | E::AddressUnbanned { scope, .. } => match scope {
                BanScope::Room(r) => StreamId::Room(r.clone()),
                BanScope::Account(a) => StreamId::Account(a.clone()),
                BanScope::Server => StreamId::Server,
            },
            E::ActionDenied { room, .. } => match room {
                Some(r) => StreamId::Room(r.clone()),
                None => StreamId::Server,
            },
            E::AutobanApplied { .. }
            | E::AutobanLifted { .. }
            | E::PolicyChanged { .. }
            | E::ContentPurged { .. } => StreamId::Server,
        }
    }

    /// The stable, snake_case event type name stored in the journal. VROOM's audit names
    /// are used where VROOM has the event; a denied join is `member_off_limit` (room
    /// full) or `no_role` as in VROOM, `join_denied` otherwise.
    pub fn type_name(&self) -> &'static str {
        use EventKind as E;
        match self {
            E::AccountCreated { .. } => "account_create",
            E::IdentityLinked { .. } => "identity_link",
            E::IdentityUnlinked { .. } => "identity_unlink",
            E::SipCredentialSet { .. } => "sip_credential_set",
            E::SipCredentialCleared { .. } => "sip_credential_clear",
            E::DisplayNameChanged { .. } => "display_name_change",
            E::AccountEnabled { .. } => "account_enable",
            E::AccountDisabled { .. } => "account_disable",
            E::ContactAllowed { .. } => "contact_allow",
            E::ContactDisallowed { .. } => "contact_disallow",
            E::ContactsOpened { .. } => "contacts_open",
            E::ModeratorAdded { .. } => "moderator_add",
            E::ModeratorRemoved { .. } => "moderator_remove",
            E::RendezvousChanged { .. } => "rendezvous_change",
            E::RoomCreated { .. } => "room_create",
            E::RoomModified { .. } => "room_modify",
            E::RoomReserved { .. } => "room_reserve",
            E::RoomUnreserved { .. } => "room_unreserve",
            E::RoomDeleted { .. } => "room_delete",
            E::RoomExpired { .. } => "room_expire",
            E::SubjectChanged { .. } => "room_subject",
            E::Joined { .. } => "room_join",
            E::SessionRenewed { .. } => "session_renew",
            E::Left { .. } => "room_leave",
            E::JoinDenied { reason, .. } => match reason {
                DenyReason::RoomFull => "member_off_limit",
                DenyReason::NoRole => "no_role",
                _ => "join_denied",
            },
            E::RoleChanged { .. } => "peer_role",
            E::InvitationIssued { .. } => "send_invitation",
            E::InvitationAnswered { .. } => "invitation_response",
            E::InvitationInvalidated { .. } => "invalidate_invitation",
            E::AudioMuted { .. } => "audio_mute",
            E::AudioUnmuted { .. } => "audio_unmute",
            E::VideoPaused { .. } => "video_pause",
            E::VideoResumed { .. } => "video_resume",
            E::Kicked { .. } => "peer_kick",
            E::Banned { .. } => "ban",
            E::Unbanned { .. } => "unban",
            E::AddressBanned { .. } => "address_ban",
            E::AddressUnbanned { .. } => "address_unban",
            E::Knocked { .. } => "lobby_knock",
            E::KnockAdmitted { .. } => "lobby_admit",
            E::KnockRejected { .. } => "lobby_reject",
            E::HandRaised { .. } => "hand_raise",
            E::HandLowered { .. } => "hand_lower",
            E::ActionDenied { .. } => "api_action_denied",
            E::AutobanApplied { .. } => "autoban",
            E::AutobanLifted { .. } => "autoban_lift",
            E::MessagePosted { .. } => "chat_message",
            E::PolicyChanged { .. } => "server_modify",
            E::ContentPurged { .. } => "content_purge",
            E::RecordingStarted { .. } => "recording_started",
            E::RecordingStopped { .. } => "recording_stopped",
            E::RecordingFileClosed { .. } => "recording_file_closed",
            E::RecordingErased { .. } => "recording_erased",
        }
    }
}
