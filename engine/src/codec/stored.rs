//! Storage types: the journal's view of events, frozen per schema version.
//!
//! These are written with bincode 2 (serde, standard config), which is not
//! self-describing: **never reorder, remove or change a field or an enum variant of a
//! released version** (a variant may be appended at the end of an enum: bincode stores
//! its index, so older records keep their meaning). To evolve an event, add a new version module with the new shape,
//! bump the type's version in its row of [`super::types::TYPES`] and add an upcaster from the
//! previous version. Names and addresses are plain strings here: validation rules may
//! change, stored history may not.

/// Schema version 1 of every event type (the first release).
pub mod v1 {
    use serde::{Deserialize, Serialize};

    /// Common to every record: when and who.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Envelope {
        /// Seconds since the Unix epoch (UTC).
        pub at_secs: i64,
        /// Nanoseconds within the second.
        pub at_nanos: u32,
        /// Who acted.
        pub actor: Actor,
    }

    /// A point in time.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Time {
        /// Seconds since the Unix epoch (UTC).
        pub secs: i64,
        /// Nanoseconds within the second.
        pub nanos: u32,
    }

    /// Who acted.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Actor {
        /// An identity address.
        Identity(String),
        /// The operator.
        Admin,
        /// A named service.
        Service(String),
    }

    /// Whom a rule is about.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Principal {
        /// An account id.
        Account(String),
        /// An identity address.
        Address(String),
    }

    /// A role.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Role {
        /// Visitor.
        Visitor,
        /// Member.
        Member,
        /// Moderator.
        Moderator,
        /// Owner.
        Owner,
    }

    /// A ban scope.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub enum BanScope {
        /// A room.
        Room(String),
        /// An account.
        Account(String),
        /// The server.
        Server,
    }

    /// Room configuration.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RoomConfig {
        /// Invite-only.
        pub private: bool,
        /// Locked.
        pub locked: bool,
        /// Member limit.
        pub max_members: Option<u32>,
        /// Welcome text.
        pub welcome_text: Option<String>,
        /// Moderators-only chat.
        pub moderated_chat: bool,
        /// Lobby.
        pub lobby: bool,
        /// Default role.
        pub default_role: Option<Role>,
        /// Owner exit destroys.
        pub owner_exit_destroys: bool,
        /// Access password hash.
        pub access_password_hash: Option<String>,
    }

    /// One configuration change.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub enum RoomChange {
        /// Private.
        Private(bool),
        /// Locked.
        Locked(bool),
        /// Max members.
        MaxMembers(Option<u32>),
        /// Welcome text.
        WelcomeText(Option<String>),
        /// Moderated chat.
        ModeratedChat(bool),
        /// Lobby.
        Lobby(bool),
        /// Default role.
        DefaultRole(Option<Role>),
        /// Owner exit destroys.
        OwnerExitDestroys(bool),
        /// Access password hash.
        AccessPassword(Option<String>),
    }

    /// A policy change.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub enum PolicyChange {
        /// Server password hash.
        ServerPassword(Option<String>),
        /// Retention days.
        LogDays(i32),
        /// Obfuscate IPs.
        ObfuscateIps(bool),
        /// Welcome text.
        WelcomeText(String),
    }

    /// Why a join was refused.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum DenyReason {
        /// Banned.
        Banned,
        /// Room full.
        RoomFull,
        /// Server full.
        ServerFull,
        /// Wrong password.
        WrongPassword,
        /// Not invited.
        NotInvited,
        /// Locked.
        Locked,
        /// No role.
        NoRole,
        /// Account disabled.
        AccountDisabled,
        /// Not allowed.
        NotAllowed,
        /// Lobby.
        Lobby,
        // Appended later (new variants go last, so older records keep their index).
        /// No password given where one was needed.
        PasswordRequired,
        /// The invitation had expired.
        InvitationExpired,
        /// The invitation was used or revoked.
        InvitationClosed,
        /// Only identities linked to an account are admitted.
        AccountRequired,
    }

    /// Why a room was deleted.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum DeleteReason {
        /// Destroyed.
        Destroyed,
        /// Owner left.
        OwnerLeft,
        /// Parent deleted.
        ParentDeleted,
    }

    /// Why a session left.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum LeaveReason {
        /// Left.
        Left,
        /// Disconnected.
        Disconnected,
        /// Lease expired (appended: earlier variants keep their stored index).
        LeaseExpired,
        /// Gateway restarted.
        GatewayRestarted,
    }

    /// How a role changed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum RoleVia {
        /// Grant.
        Grant,
        /// Revoke.
        Revoke,
        /// Owner password.
        OwnerPassword,
        /// Invitation.
        Invitation,
    }

    /// Why an invitation was invalidated.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum InvalidationReason {
        /// Used.
        Used,
        /// Revoked.
        Revoked,
        /// Expired.
        Expired,
    }

    /// Autoban key.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub enum AutobanKey {
        /// Identity address.
        Identity(String),
        /// Stored remote address.
        Remote(String),
    }

    // ---- payloads ----

    /// `account_create` (display name in personal content), `account_enable`,
    /// `account_disable`, `contacts_open`, `display_name_change` (name in content).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AccountRef {
        /// Account id.
        pub account: String,
    }

    /// `identity_link`, `identity_unlink`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AccountIdentity {
        /// Account id.
        pub account: String,
        /// Identity address.
        pub address: String,
    }

    /// `contact_allow`, `contact_disallow`, `moderator_add`, `moderator_remove`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AccountPrincipal {
        /// Account id.
        pub account: String,
        /// The contact / moderator.
        pub principal: Principal,
    }

    /// `rendezvous_change`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Rendezvous {
        /// Account id.
        pub account: String,
        /// Room.
        pub room: Option<String>,
    }

    /// `room_create`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RoomCreated {
        /// Room.
        pub room: String,
        /// Parent.
        pub parent: Option<String>,
        /// Owner.
        pub owner: Principal,
        /// Configuration.
        pub config: RoomConfig,
    }

    /// `room_modify`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RoomModified {
        /// Room.
        pub room: String,
        /// Change.
        pub change: RoomChange,
    }

    /// `room_reserve`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RoomReserved {
        /// Room.
        pub room: String,
        /// Owner password hash.
        pub owner_password_hash: String,
    }

    /// `room_unreserve`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RoomRef {
        /// Room.
        pub room: String,
    }

    /// `room_delete`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RoomDeleted {
        /// Room.
        pub room: String,
        /// Why.
        pub reason: DeleteReason,
    }

    /// `room_expire`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RoomExpired {
        /// Room.
        pub room: String,
        /// Idle seconds.
        pub idle_secs: u64,
        /// Reserved timeout applied.
        pub reserved: bool,
    }

    /// `room_join`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Joined {
        /// Room.
        pub room: String,
        /// Person.
        pub principal: Principal,
        /// Identity.
        pub address: String,
        /// Session.
        pub session: String,
        /// Gateway.
        pub gateway: String,
        /// Role.
        pub role: Role,
        /// Stored remote address.
        pub remote: Option<String>,
    }

    /// `room_leave`.
    /// `session_renew`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SessionRenewed {
        /// Room.
        pub room: String,
        /// Person.
        pub principal: Principal,
        /// Session.
        pub session: String,
        /// Lease end.
        pub until: Time,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Left {
        /// Room.
        pub room: String,
        /// Person.
        pub principal: Principal,
        /// Session.
        pub session: String,
        /// Why.
        pub reason: LeaveReason,
    }

    /// `join_denied`, `member_off_limit`, `no_role`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct JoinDenied {
        /// Room.
        pub room: String,
        /// Person.
        pub principal: Principal,
        /// Identity.
        pub address: String,
        /// Why.
        pub reason: DenyReason,
        /// Stored remote address.
        pub remote: Option<String>,
    }

    /// `peer_role`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RoleChanged {
        /// Room.
        pub room: String,
        /// Whose.
        pub subject: Principal,
        /// Before.
        pub from: Option<Role>,
        /// After.
        pub to: Option<Role>,
        /// How.
        pub via: RoleVia,
    }

    /// `send_invitation`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct InvitationIssued {
        /// Room.
        pub room: String,
        /// Invitation id.
        pub invitation: String,
        /// Invitee address.
        pub invitee: String,
        /// Expiry.
        pub expires_at: Option<Time>,
        /// Single use.
        pub single_use: bool,
    }

    /// `invitation_response`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct InvitationAnswered {
        /// Room.
        pub room: String,
        /// Invitation id.
        pub invitation: String,
        /// Accepted.
        pub accepted: bool,
        /// By whom.
        pub by: Principal,
    }

    /// `invalidate_invitation`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct InvitationInvalidated {
        /// Room.
        pub room: String,
        /// Invitation id.
        pub invitation: String,
        /// Why.
        pub reason: InvalidationReason,
    }

    /// `audio_mute`, `video_pause`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct MediaClosed {
        /// Room.
        pub room: String,
        /// Whose.
        pub subject: Principal,
        /// By a moderator.
        pub by_moderator: bool,
    }

    /// `audio_unmute`, `video_resume`, `hand_raise`, `hand_lower`, `lobby_admit`,
    /// `lobby_reject`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RoomSubject {
        /// Room.
        pub room: String,
        /// Whom.
        pub subject: Principal,
    }

    /// `peer_kick` version 1: no reason yet (see `v2::Kicked`).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Kicked {
        /// Room.
        pub room: String,
        /// Whom.
        pub subject: Principal,
    }

    /// `ban`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Banned {
        /// Scope.
        pub scope: BanScope,
        /// Whom.
        pub subject: Principal,
        /// Why.
        pub reason: Option<String>,
        /// Until.
        pub until: Option<Time>,
    }

    /// `unban`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Unbanned {
        /// Scope.
        pub scope: BanScope,
        /// Whom.
        pub subject: Principal,
        /// By expiry.
        pub expired: bool,
    }

    /// `lobby_knock`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Knocked {
        /// Room.
        pub room: String,
        /// Person.
        pub principal: Principal,
        /// Identity.
        pub address: String,
        /// Session.
        pub session: String,
        /// Gateway.
        pub gateway: String,
    }

    /// `api_action_denied`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ActionDenied {
        /// Room.
        pub room: Option<String>,
        /// Command name.
        pub action: String,
        /// Subject.
        pub subject: Option<Principal>,
        /// Rejection code.
        pub code: String,
    }

    /// `autoban`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AutobanApplied {
        /// Key.
        pub key: AutobanKey,
        /// Attempts counted.
        pub attempts: u32,
        /// Until.
        pub until: Time,
    }

    /// `autoban_lift`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AutobanLifted {
        /// Key.
        pub key: AutobanKey,
    }

    /// `chat_message` (body in personal content).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct MessagePosted {
        /// Room.
        pub room: String,
        /// Message id.
        pub message: String,
        /// Person.
        pub from: Principal,
        /// Identity.
        pub address: String,
        /// HTML stripped.
        pub html_stripped: bool,
    }

    /// `server_modify`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct PolicyChanged {
        /// Change.
        pub change: PolicyChange,
    }

    /// `content_purge`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ContentPurged {
        /// Erased person; `None` for retention.
        pub subject: Option<Principal>,
        /// Retention cut-off.
        pub before: Option<Time>,
        /// Records purged.
        pub records: u64,
        /// Head covered.
        pub up_to_seq: u64,
    }

    /// `address_ban` (added after release 1; first version).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AddressBanned {
        /// Scope.
        pub scope: BanScope,
        /// Ban id.
        pub id: String,
        /// Stored remote address, or a network in CIDR form.
        pub remote: String,
        /// The person it was made from.
        pub subject: Option<Principal>,
        /// Why.
        pub reason: Option<String>,
        /// Until.
        pub until: Option<Time>,
    }

    /// `address_unban` (added after release 1; first version).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AddressUnbanned {
        /// Scope.
        pub scope: BanScope,
        /// Ban id.
        pub id: String,
        /// The address as banned.
        pub remote: String,
        /// By expiry.
        pub expired: bool,
    }

    /// `sip_credential_set` (added after release 1; first version). `sip_credential_clear`
    /// is an [`AccountIdentity`].
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SipCredentialSet {
        /// Account id.
        pub account: String,
        /// The `sip:` identity.
        pub address: String,
        /// Digest realm.
        pub realm: String,
        /// HA1 for MD5, lowercase hex.
        pub ha1_md5: String,
        /// HA1 for SHA-256, lowercase hex.
        pub ha1_sha256: String,
    }

    /// `room_subject` (added after release 1; first version). The subject is payload,
    /// not personal content (a room setting, as the welcome text is).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SubjectChanged {
        /// Room.
        pub room: String,
        /// The subject; `None` when cleared.
        pub subject: Option<String>,
        /// The person who set it; `None` for an operator or a service.
        pub by: Option<Principal>,
        /// The identity they set it with.
        pub address: Option<String>,
    }

    /// `recording_started` (added after release 1; first version).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RecordingStarted {
        /// Room.
        pub room: String,
        /// Recording id.
        pub recording: String,
        /// Video tracks too.
        pub video: bool,
        /// The person who started it; `None` for an operator or a service.
        pub by: Option<Principal>,
    }

    /// `recording_stopped` (added after release 1; first version).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RecordingStopped {
        /// Room.
        pub room: String,
        /// Recording id.
        pub recording: String,
    }

    /// What a recording file holds.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum RecordingKind {
        /// Mixed audio.
        Audio,
        /// One video track.
        Video,
    }

    /// `recording_file_closed` (added after release 1; first version). Payload, not
    /// personal content: the hash must outlive any erasure.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RecordingFileClosed {
        /// Room.
        pub room: String,
        /// Recording id.
        pub recording: String,
        /// Path relative to `<data>/recordings/`.
        pub name: String,
        /// Audio or video.
        pub kind: RecordingKind,
        /// The forwarded track id (video).
        pub track: Option<String>,
        /// Length in bytes.
        pub bytes: u64,
        /// Duration in milliseconds.
        pub duration_ms: u64,
        /// blake3, lowercase hex.
        pub blake3: String,
    }

    /// Why a recording was erased.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum RecordingErasure {
        /// Log-days retention.
        Retention,
        /// A person's erasure.
        Erasure,
    }

    /// `recording_erased` (added after release 1; first version).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RecordingErased {
        /// Room.
        pub room: String,
        /// Recording id.
        pub recording: String,
        /// The file names deleted.
        pub names: Vec<String>,
        /// Why.
        pub action: RecordingErasure,
    }
}

/// Schema version 2: `peer_kick` gained a reason; `autoban` says whether it ended the
/// sessions it matched; `room_create` and `room_modify` gained who may invite;
/// `send_invitation` gained the digest of an email invitation's bearer secret. Later,
/// `room_modify` v2's change gained variants (appended: the room's title and
/// description, members changing the subject, persistence, public addresses);
/// `room_create` v2's configuration did not, so a room is created with their defaults
/// and they change only through `room_modify`.
pub mod v2 {
    use serde::{Deserialize, Serialize};

    use super::v1::{AutobanKey, Principal, Role, Time};

    /// Who may invite.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum InviteRight {
        /// Members and up.
        Members,
        /// Moderators and up.
        Moderators,
        /// Owners.
        Owners,
        /// Members in a public room, moderators in a private one (every v1 room).
        MembersUnlessPrivate,
    }

    /// Room configuration, version 2.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RoomConfig {
        /// Invite-only.
        pub private: bool,
        /// Locked.
        pub locked: bool,
        /// Member limit.
        pub max_members: Option<u32>,
        /// Welcome text.
        pub welcome_text: Option<String>,
        /// Moderators-only chat.
        pub moderated_chat: bool,
        /// Lobby.
        pub lobby: bool,
        /// Default role.
        pub default_role: Option<Role>,
        /// Owner exit destroys.
        pub owner_exit_destroys: bool,
        /// Access password hash.
        pub access_password_hash: Option<String>,
        /// Who may invite.
        pub invite: InviteRight,
    }

    /// One configuration change, version 2.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub enum RoomChange {
        /// Private.
        Private(bool),
        /// Locked.
        Locked(bool),
        /// Max members.
        MaxMembers(Option<u32>),
        /// Welcome text.
        WelcomeText(Option<String>),
        /// Moderated chat.
        ModeratedChat(bool),
        /// Lobby.
        Lobby(bool),
        /// Default role.
        DefaultRole(Option<Role>),
        /// Owner exit destroys.
        OwnerExitDestroys(bool),
        /// Access password hash.
        AccessPassword(Option<String>),
        /// Who may invite.
        Invite(InviteRight),
        // Appended later (new variants go last, so older records keep their index).
        /// Room title.
        Name(Option<String>),
        /// Room description.
        Description(Option<String>),
        /// Members may change the subject.
        MembersChangeSubject(bool),
        /// Kept when idle.
        Persistent(bool),
        /// Participants see real addresses.
        PublicAddresses(bool),
    }

    /// `room_create` version 2.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RoomCreated {
        /// Room.
        pub room: String,
        /// Parent.
        pub parent: Option<String>,
        /// Owner.
        pub owner: Principal,
        /// Configuration.
        pub config: RoomConfig,
    }

    /// `room_modify` version 2.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RoomModified {
        /// Room.
        pub room: String,
        /// Change.
        pub change: RoomChange,
    }

    /// `autoban` version 2.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AutobanApplied {
        /// Key.
        pub key: AutobanKey,
        /// Attempts counted.
        pub attempts: u32,
        /// Until.
        pub until: Time,
        /// Whether matching live sessions were ended (v1: always).
        pub ends_sessions: bool,
    }

    /// `peer_kick` version 2.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Kicked {
        /// Room.
        pub room: String,
        /// Whom.
        pub subject: Principal,
        /// Why.
        pub reason: Option<String>,
    }

    /// `send_invitation` version 2: an email invitation's bearer secret, as its SHA-256
    /// digest (the secret itself is never stored). v1 had none: the id was the bearer.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct InvitationIssued {
        /// Room.
        pub room: String,
        /// Invitation id.
        pub invitation: String,
        /// Invitee address.
        pub invitee: String,
        /// SHA-256 of the bearer secret (email invitations issued with one).
        pub secret_digest: Option<[u8; 32]>,
        /// Expiry.
        pub expires_at: Option<Time>,
        /// Single use.
        pub single_use: bool,
    }
}
