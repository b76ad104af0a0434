//! Typed refusals with stable codes.
//!
//! [`Rejection::code`] is a contract: gateways, clients, metrics and docs key on it, so a
//! code never changes meaning once released. Each gateway's answer for a refusal (HTTP,
//! SIP, XMPP, Kamailio IMC) comes from [`Rejection::mapping`] in [`crate::protocol`], so
//! that "banned" means the same on every protocol.

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::event::Event;
use crate::ids::{AccountId, RoomName};
use crate::model::PasswordKind;
use crate::text::CharClass;

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Rejection {
    // ---- input ----
    /// A field failed validation.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A field holds a character that text may not hold there: a control character, a
    /// bidirectional control, a line separator, or in a name an invisible character or a
    /// bidirectional mark (the rule is [`crate::text::check`]).
    #[error("{field} contains U+{:04X}, {}, which is not allowed", u32::from(*.ch), .class.as_str())]
    ForbiddenChar {
        /// Which field.
        field: &'static str,
        /// The first refused character.
        ch: char,
        /// Why it is refused.
        class: CharClass,
    },
    /// A new name looks like a name already taken (the same letters in other scripts, or
    /// characters drawn alike: `pаypal` with a Cyrillic `а` for `paypal`), or mixes
    /// look-alike scripts within one word (see [`crate::ids::name_keys`] and
    /// [`crate::text::mixed_script_word`]). A name that differs from a taken one only by
    /// case or Unicode compatibility form is the same name (`room.exists`).
    #[error("{field} {}", .existing.as_ref().map_or_else(|| "mixes look-alike scripts within one word".to_owned(), |e| format!("looks like the existing name {e:?}")))]
    ConfusableName {
        /// Which field.
        field: &'static str,
        /// The taken name it looks like, if any.
        existing: Option<String>,
    },
    /// The command needs a person (an identity), not an operator or service.
    #[error("this action must be performed by an identity")]
    IdentityRequired,
    /// The server admits only identities linked to an enabled account
    /// (`policy.accounts_only`, Mumble's `certrequired`), and this one is not.
    #[error("this server admits only identities linked to an account")]
    AccountRequired,

    // ---- rooms ----
    /// No such room.
    #[error("room {0} does not exist")]
    RoomNotFound(RoomName),
    /// The name is taken.
    #[error("room {0} already exists")]
    RoomExists(RoomName),
    /// The parent of a nested room does not exist.
    #[error("parent room {0} does not exist")]
    ParentNotFound(RoomName),
    /// Nesting deeper than the limit.
    #[error("rooms may be nested at most {limit} deep")]
    NestingLimit {
        /// The limit.
        limit: u32,
    },
    /// The name is in the common-names list and cannot be reserved.
    #[error("room {0} has a common name and cannot be reserved")]
    CommonName(RoomName),
    /// Unreserving a room that is not reserved.
    #[error("room is not reserved")]
    NotReserved,
    /// A per-room limit above the server cap, zero, or below the current members.
    #[error("max members {requested} not allowed (server cap {cap}, present {present})")]
    MaxMembers {
        /// Requested limit.
        requested: u32,
        /// Server cap.
        cap: u32,
        /// Members present now.
        present: u32,
    },
    /// A room needs an owner and none could be determined.
    #[error("an owner is required to create a room")]
    OwnerRequired,
    /// The room is at its member limit (VROOM `member_off_limit`).
    #[error("room is full ({max} members)")]
    RoomFull {
        /// The effective limit.
        max: u32,
    },
    /// The server is at `max_users`.
    #[error("server is full ({max} users)")]
    ServerFull {
        /// The limit.
        max: u32,
    },
    /// The identity already holds as many sessions as the policy allows one identity.
    #[error("this identity already holds {max} sessions")]
    TooManySessions {
        /// The limit.
        max: u32,
    },
    /// A gateway acted for an identity outside its scope (a SIP gateway for an xmpp:
    /// address).
    #[error("the {gateway} gateway may not act for {scheme}: identities")]
    OutOfScope {
        /// The gateway.
        gateway: String,
        /// The scheme of the identity it tried to act for.
        scheme: String,
    },
    /// Locked room.
    #[error("room is locked")]
    Locked,
    /// The room has a lobby; knock first.
    #[error("room has a lobby: knock and wait to be admitted")]
    LobbyRequired,
    /// Knocking at a room without a lobby.
    #[error("room has no lobby: join directly")]
    LobbyDisabled,

    // ---- authentication ----
    /// A password is needed and none was given.
    #[error("{} password required", .0.as_str())]
    PasswordRequired(PasswordKind),
    /// The password is wrong.
    #[error("wrong {} password", .0.as_str())]
    WrongPassword(PasswordKind),

    // ---- permissions ----
    /// Needs moderator rights in the room.
    #[error("only moderators may do this")]
    NotModerator,
    /// Needs ownership of the room or account.
    #[error("only owners may do this")]
    NotOwner,
    /// Needs the operator.
    #[error("only the server operator may do this")]
    NotAdmin,
    /// The subject has at least the actor's rank.
    #[error("cannot act on someone of equal or higher rank")]
    Outranked,
    /// Moderators-only chat.
    #[error("chat is restricted to moderators")]
    ChatModerated,
    /// Visitors cannot post.
    #[error("visitors may not post messages")]
    VisitorCannotPost,
    /// Not on the allowed-contacts list.
    #[error("not an allowed contact of this account")]
    NotAllowed,
    /// Acting on someone else's session or invitation.
    #[error("this belongs to someone else")]
    NotYours,
    /// Guests (identities not linked to an account) may not create rooms on this
    /// server (`policy.guests_may_create` off).
    #[error("guests may not create rooms on this server")]
    GuestsMayNotCreate,
    /// Changing the room's subject needs moderator rights, or member rights where the
    /// room lets members change it (`members_change_subject`); visitors never may.
    #[error("you may not change the subject of this room")]
    SubjectNotAllowed,

    // ---- membership ----
    /// A ban applies.
    #[error("banned{}", .until.map(|u| format!(" until {}", u.to_rfc3339())).unwrap_or_default())]
    Banned {
        /// When it ends, if ever.
        until: Option<DateTime<Utc>>,
    },
    /// Private room without invitation or affiliation.
    #[error("this room is invite-only")]
    NotInvited,
    /// Nothing gives the joiner a role.
    #[error("no role in this room")]
    NoRole,
    /// The subject is not present in the room.
    #[error("not present in this room")]
    NotMember,
    /// The session id is already used in this room.
    #[error("session already present in this room")]
    SessionExists,
    /// No such session in this room.
    #[error("no such session in this room")]
    SessionNotFound,
    /// The subject is not waiting in the lobby.
    #[error("not waiting in the lobby")]
    NotKnocking,

    // ---- roles ----
    /// Would leave the room without an owner.
    #[error("the last owner cannot be removed")]
    LastOwner,

    // ---- invitations ----
    /// No such invitation.
    #[error("no such invitation")]
    InvitationNotFound,
    /// Already used, declined or revoked.
    #[error("invitation is no longer valid")]
    InvitationClosed,
    /// Past its expiry.
    #[error("invitation has expired")]
    InvitationExpired,

    // ---- accounts ----
    /// No such account.
    #[error("account {0} does not exist")]
    AccountNotFound(AccountId),
    /// The id is taken.
    #[error("account {0} already exists")]
    AccountExists(AccountId),
    /// The account is disabled.
    #[error("account is disabled")]
    AccountDisabled,
    /// The identity already belongs to another account.
    #[error("identity already linked to account {0}")]
    IdentityAlreadyLinked(AccountId),
    /// The identity is not linked to that account.
    #[error("identity is not linked to this account")]
    IdentityNotLinked,
    /// Calling an account that is not in rendezvous mode.
    #[error("account is not in rendezvous mode")]
    NotRendezvous,

    // ---- bans ----
    /// Unbanning someone who is not banned there.
    #[error("no such ban")]
    BanNotFound,
    /// An address ban made from a person with no known address in the scope: not
    /// present there, or present only through gateways that gave no remote address.
    #[error("no address is known for this person here")]
    NoKnownAddress,
    /// A network (CIDR) cannot be banned while remote addresses are obfuscated: the
    /// journal would hold a plain network where the operator asked for none (ban plain
    /// addresses, which are stored obfuscated, or turn obfuscation off).
    #[error("networks cannot be banned while remote addresses are obfuscated")]
    NetworkWhileObfuscated,

    // ---- chat ----
    /// Over the text length limit.
    #[error("message is {len} characters long, at most {max} allowed")]
    MessageTooLong {
        /// Its length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// Nothing left after sanitizing.
    #[error("message is empty")]
    MessageEmpty,

    // ---- recording ----
    /// Starting a recording while one runs in the room.
    #[error("the room is already being recorded")]
    RecordingActive,
    /// Stopping a recording when none runs.
    #[error("the room is not being recorded")]
    RecordingNotActive,
    /// No such recording in this room (a file or an erasure naming one never started
    /// there).
    #[error("no such recording in this room")]
    RecordingNotFound,
    /// A recording file's description is malformed (name, hash or track id), or the
    /// recording already lists as many files as it may.
    #[error("invalid recording file: {0}")]
    RecordingFileInvalid(String),

    // ---- gateways ----
    /// A gateway refused a request on its own (a SIP INVITE with no common codec, a
    /// REGISTER interval too brief) and had it journaled
    /// ([`Command::RecordGatewayRefusal`](crate::Command::RecordGatewayRefusal)); the
    /// gateway has already answered its client.
    #[error("the gateway refused {action}: {code}")]
    GatewayRefused {
        /// What was refused (`sip_invite`).
        action: String,
        /// The gateway's code for why (`sdp.no_common_codec`).
        code: String,
    },
}

impl Rejection {
    /// Every stable code, for docs, metrics pre-registration and tests.
    pub const ALL_CODES: &'static [&'static str] = &[
        "input.invalid",
        "auth.identity_required",
        "room.not_found",
        "room.exists",
        "room.parent_not_found",
        "room.nesting_limit",
        "room.common_name",
        "room.not_reserved",
        "room.max_members",
        "room.owner_required",
        "room.full",
        "server.full",
        "membership.too_many_sessions",
        "perm.out_of_scope",
        "room.locked",
        "room.lobby",
        "room.lobby_disabled",
        "auth.password_required",
        "auth.wrong_password",
        "perm.not_moderator",
        "perm.not_owner",
        "perm.not_admin",
        "perm.outranked",
        "perm.chat_moderated",
        "perm.visitor",
        "perm.not_allowed",
        "perm.not_yours",
        "membership.banned",
        "membership.not_invited",
        "membership.no_role",
        "membership.not_member",
        "membership.session_exists",
        "membership.session_not_found",
        "membership.not_knocking",
        "role.last_owner",
        "invitation.not_found",
        "invitation.closed",
        "invitation.expired",
        "account.not_found",
        "account.exists",
        "account.disabled",
        "identity.already_linked",
        "identity.not_linked",
        "account.not_rendezvous",
        "ban.not_found",
        "chat.too_long",
        "chat.empty",
        "input.forbidden_char",
        "name.confusable",
        "auth.account_required",
        "perm.guests_may_not_create",
        "ban.no_known_address",
        "ban.network_while_obfuscated",
        "gateway.refused",
        "perm.subject_not_allowed",
        "recording.already_active",
        "recording.not_active",
        "recording.not_found",
        "recording.invalid_file",
    ];

    /// The stable code: `area.reason`, lowercase.
    pub fn code(&self) -> &'static str {
        use Rejection as R;
        match self {
            R::InvalidInput { .. } => "input.invalid",
            R::IdentityRequired => "auth.identity_required",
            R::RoomNotFound(_) => "room.not_found",
            R::RoomExists(_) => "room.exists",
            R::ParentNotFound(_) => "room.parent_not_found",
            R::NestingLimit { .. } => "room.nesting_limit",
            R::CommonName(_) => "room.common_name",
            R::NotReserved => "room.not_reserved",
            R::MaxMembers { .. } => "room.max_members",
            R::OwnerRequired => "room.owner_required",
            R::RoomFull { .. } => "room.full",
            R::ServerFull { .. } => "server.full",
            R::TooManySessions { .. } => "membership.too_many_sessions",
            R::OutOfScope { .. } => "perm.out_of_scope",
            R::Locked => "room.locked",
            R::LobbyRequired => "room.lobby",
            R::LobbyDisabled => "room.lobby_disabled",
            R::PasswordRequired(_) => "auth.password_required",
            R::WrongPassword(_) => "auth.wrong_password",
            R::NotModerator => "perm.not_moderator",
            R::NotOwner => "perm.not_owner",
            R::NotAdmin => "perm.not_admin",
            R::Outranked => "perm.outranked",
            R::ChatModerated => "perm.chat_moderated",
            R::VisitorCannotPost => "perm.visitor",
            R::NotAllowed => "perm.not_allowed",
            R::NotYours => "perm.not_yours",
            R::Banned { .. } => "membership.banned",
            R::NotInvited => "membership.not_invited",
            R::NoRole => "membership.no_role",
            R::NotMember => "membership.not_member",
            R::SessionExists => "membership.session_exists",
            R::SessionNotFound => "membership.session_not_found",
            R::NotKnocking => "membership.not_knocking",
            R::LastOwner => "role.last_owner",
            R::InvitationNotFound => "invitation.not_found",
            R::InvitationClosed => "invitation.closed",
            R::InvitationExpired => "invitation.expired",
            R::AccountNotFound(_) => "account.not_found",
            R::AccountExists(_) => "account.exists",
            R::AccountDisabled => "account.disabled",
            R::IdentityAlreadyLinked(_) => "identity.already_linked",
            R::IdentityNotLinked => "identity.not_linked",
            R::NotRendezvous => "account.not_rendezvous",
            R::BanNotFound => "ban.not_found",
            R::MessageTooLong { .. } => "chat.too_long",
            R::MessageEmpty => "chat.empty",
            R::ForbiddenChar { .. } => "input.forbidden_char",
            R::ConfusableName { .. } => "name.confusable",
            R::AccountRequired => "auth.account_required",
            R::GuestsMayNotCreate => "perm.guests_may_not_create",
            R::NoKnownAddress => "ban.no_known_address",
            R::NetworkWhileObfuscated => "ban.network_while_obfuscated",
            R::GatewayRefused { .. } => "gateway.refused",
            R::SubjectNotAllowed => "perm.subject_not_allowed",
            R::RecordingActive => "recording.already_active",
            R::RecordingNotActive => "recording.not_active",
            R::RecordingNotFound => "recording.not_found",
            R::RecordingFileInvalid(_) => "recording.invalid_file",
        }
    }

    /// The human message (the `Display` text).
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// Whether the refusal is about rights (journaled as `api_action_denied`).
    pub fn is_permission(&self) -> bool {
        self.code().starts_with("perm.")
    }
}

/// A refused command, with the events that must still be journaled (a denied join, an
/// `api_action_denied`, an autoban it triggered).
///
/// Why this shape: `decide` returns `Result<Vec<Event>, Rejected>`, which keeps the
/// design brief's `Result<Vec<Event>, Rejection>` reading (`?` works, a refusal is an
/// `Err` and cannot be mistaken for success) while making "record this denial" part of
/// the error itself, so a gateway cannot answer a denied join without the service
/// having the events to append first. The service appends `record` (when non-empty)
/// and then answers with `rejection`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{rejection}")]
pub struct Rejected {
    /// What to answer.
    pub rejection: Rejection,
    /// What to journal anyway.
    pub record: Vec<Event>,
}

impl From<Rejection> for Rejected {
    fn from(rejection: Rejection) -> Self {
        Rejected {
            rejection,
            record: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for code in Rejection::ALL_CODES {
            assert!(seen.insert(*code), "duplicate {code}");
        }
    }
}
