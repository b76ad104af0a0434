//! Value types shared by commands, events and state: roles, ban scopes, room
//! configuration and its changes, server policy changes.

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, RoomName};

/// A person's standing in a room (an affiliation when stored, a role when present).
/// Ordered by power: `Visitor < Member < Moderator < Owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Listener: may be present, may not speak in chat (XMPP visitor, Mumble listener).
    Visitor,
    /// Ordinary participant.
    Member,
    /// Chairman (VROOM) / moderator: mute, pause, kick, ban, lobby, lock.
    Moderator,
    /// Owner: everything a moderator can, plus configure, reserve, destroy, grant owner.
    Owner,
}

impl Role {
    /// Lowercase name, as used in APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Visitor => "visitor",
            Role::Member => "member",
            Role::Moderator => "moderator",
            Role::Owner => "owner",
        }
    }
}

/// Where a ban applies. Jami's ban-contact bans from one account's conferences or, with no
/// account given, from all of them; rooms add their own scope.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BanScope {
    /// One room.
    Room(RoomName),
    /// The conferences of one account (its rendezvous room).
    Account(AccountId),
    /// The whole server: every room, every protocol.
    Server,
}

/// Who may invite people to a room.
///
/// An invitation lets its holder into a private room and gives them the member role;
/// it spares them the access password and the lobby only when its issuer is, when it is
/// used, a moderator, an owner or an operator (someone who could have let them in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteRight {
    /// Members, moderators and owners.
    Members,
    /// Moderators and owners (the default).
    Moderators,
    /// Owners only.
    Owners,
    /// The rule of rooms created before the setting existed (`room_create` v1): members
    /// in a public room, moderators in a private one, following the room's `private`
    /// flag as it changes. Kept so that replay and old rooms decide as they did; an
    /// owner may replace it with one of the others, never set it.
    MembersUnlessPrivate,
}

impl InviteRight {
    /// Lowercase name, as in APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            InviteRight::Members => "members",
            InviteRight::Moderators => "moderators",
            InviteRight::Owners => "owners",
            InviteRight::MembersUnlessPrivate => "members_unless_private",
        }
    }

    /// The least role that may invite, in a room that is `private` or not.
    pub fn least_role(self, private: bool) -> Role {
        match self {
            InviteRight::Members => Role::Member,
            InviteRight::Moderators => Role::Moderator,
            InviteRight::Owners => Role::Owner,
            InviteRight::MembersUnlessPrivate if private => Role::Moderator,
            InviteRight::MembersUnlessPrivate => Role::Member,
        }
    }
}

/// Per-room settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomConfig {
    /// Invite-only (Kamailio IMC `private`): only affiliated or invited people may join.
    pub private: bool,
    /// Locked: only moderators and owners may join.
    pub locked: bool,
    /// Per-room member limit, never above the server's `max_members`.
    pub max_members: Option<u32>,
    /// Text shown to people when they join.
    pub welcome_text: Option<String>,
    /// Only moderators may post chat messages.
    pub moderated_chat: bool,
    /// People without an affiliation or invitation wait in a lobby (knock / admit).
    pub lobby: bool,
    /// Role given to people without an affiliation; `None` = affiliated people only
    /// (a join without role is denied with `no_role`, as in VROOM).
    pub default_role: Option<Role>,
    /// The owner leaving destroys the room (Kamailio IMC `#exit`).
    pub owner_exit_destroys: bool,
    /// Access password as an argon2 PHC string (VROOM "join password").
    pub access_password_hash: Option<String>,
    /// Who may invite (default: moderators and owners).
    pub invite: InviteRight,
}

impl RoomConfig {
    /// The least role that may invite to the room now.
    pub fn invite_role(&self) -> Role {
        self.invite.least_role(self.private)
    }
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            private: false,
            locked: false,
            max_members: None,
            welcome_text: None,
            moderated_chat: false,
            lobby: false,
            default_role: Some(Role::Member),
            owner_exit_destroys: false,
            access_password_hash: None,
            invite: InviteRight::Moderators,
        }
    }
}

/// One change to a room's configuration; a configure command becomes one `room_modify`
/// event per change so the audit log says exactly what changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomChange {
    /// Make the room invite-only or open.
    Private(bool),
    /// Lock or unlock.
    Locked(bool),
    /// Set or clear the per-room member limit.
    MaxMembers(Option<u32>),
    /// Set or clear the welcome text.
    WelcomeText(Option<String>),
    /// Moderators-only chat on or off.
    ModeratedChat(bool),
    /// Lobby on or off.
    Lobby(bool),
    /// Role of unaffiliated joiners.
    DefaultRole(Option<Role>),
    /// Whether the owner leaving destroys the room.
    OwnerExitDestroys(bool),
    /// Set or clear the access password (argon2 PHC string).
    AccessPassword(Option<String>),
    /// Who may invite.
    Invite(InviteRight),
}

impl RoomChange {
    /// Apply the change to a configuration.
    pub fn apply(&self, config: &mut RoomConfig) {
        match self {
            RoomChange::Private(v) => config.private = *v,
            RoomChange::Locked(v) => config.locked = *v,
            RoomChange::MaxMembers(v) => config.max_members = *v,
            RoomChange::WelcomeText(v) => config.welcome_text.clone_from(v),
            RoomChange::ModeratedChat(v) => config.moderated_chat = *v,
            RoomChange::Lobby(v) => config.lobby = *v,
            RoomChange::DefaultRole(v) => config.default_role = *v,
            RoomChange::OwnerExitDestroys(v) => config.owner_exit_destroys = *v,
            RoomChange::AccessPassword(v) => config.access_password_hash.clone_from(v),
            RoomChange::Invite(v) => config.invite = *v,
        }
    }

    /// Whether applying the change would leave `config` as it is.
    pub fn is_noop(&self, config: &RoomConfig) -> bool {
        let mut after = config.clone();
        self.apply(&mut after);
        &after == config
    }
}

/// A run-time change to the server policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyChange {
    /// Set or clear the server password (argon2 PHC string).
    ServerPassword(Option<String>),
    /// Retention of personal content in days (0 forever, -1 none).
    LogDays(i32),
    /// Obfuscate remote addresses or not.
    ObfuscateIps(bool),
    /// Server welcome text.
    WelcomeText(String),
}

/// Which password a credential check was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordKind {
    /// Mumble server password.
    Server,
    /// VROOM room access password.
    Room,
    /// VROOM owner password of a reserved room.
    Owner,
}

impl PasswordKind {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            PasswordKind::Server => "server",
            PasswordKind::Room => "room",
            PasswordKind::Owner => "owner",
        }
    }
}
