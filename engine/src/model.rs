//! Value types shared by commands, events and state: roles, ban scopes, room
//! configuration and its changes, server policy changes.

use serde::{Deserialize, Serialize};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ids::{AccountId, Principal, RoomName};

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
    /// The room's human title (XEP-0045 `muc#roomconfig_roomname`); `None` = the room
    /// is shown by its name. One line, at most [`MAX_ROOM_TITLE_LEN`] characters.
    #[serde(default)]
    pub name: Option<String>,
    /// A longer description (XEP-0045 `muc#roomconfig_roomdesc`), bounded like the
    /// welcome text.
    #[serde(default)]
    pub description: Option<String>,
    /// Members (not only moderators) may change the subject (XEP-0045
    /// `muc#roomconfig_changesubject`). Visitors never may.
    #[serde(default)]
    pub members_change_subject: bool,
    /// The room outlives inactivity: it never expires for being idle, as a reserved
    /// room with a timeout of 0 (XEP-0045 `muc#roomconfig_persistentroom`).
    #[serde(default)]
    pub persistent: bool,
    /// Every participant may see the others' real addresses (XEP-0045 non-anonymous,
    /// `muc#roomconfig_whois` = anyone); off (the default), only moderators see them
    /// (semi-anonymous). See [`crate::State::sees_addresses`].
    #[serde(default)]
    pub public_addresses: bool,
}

/// The longest room title ([`RoomConfig::name`]) in characters; the policy's
/// `text_message_length` caps it further when it is smaller.
pub const MAX_ROOM_TITLE_LEN: u32 = 200;

/// The longest room subject in characters; the policy's `text_message_length` caps it
/// further when it is smaller.
pub const MAX_SUBJECT_LEN: u32 = 1000;

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
            name: None,
            description: None,
            members_change_subject: false,
            persistent: false,
            public_addresses: false,
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
    // Appended after `Invite` (the stored form appends them too, so older records keep
    // their meaning).
    /// Set or clear the room's title.
    Name(Option<String>),
    /// Set or clear the room's description.
    Description(Option<String>),
    /// Whether members (not only moderators) may change the subject.
    MembersChangeSubject(bool),
    /// Whether the room is kept when idle.
    Persistent(bool),
    /// Whether every participant sees the others' real addresses.
    PublicAddresses(bool),
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
            RoomChange::Name(v) => config.name.clone_from(v),
            RoomChange::Description(v) => config.description.clone_from(v),
            RoomChange::MembersChangeSubject(v) => config.members_change_subject = *v,
            RoomChange::Persistent(v) => config.persistent = *v,
            RoomChange::PublicAddresses(v) => config.public_addresses = *v,
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

/// What an address ban is made against (`Command::BanAddress`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressTarget {
    /// The remote addresses (as stored) of this person's present sessions in the ban's
    /// scope: what a moderator, who never sees addresses, bans (Mumble's ban of a
    /// connected user).
    Of(Principal),
    /// An IP address, or with obfuscation off a network in CIDR form (`192.0.2.0/24`):
    /// operators only.
    Ip(String),
}

/// An IP network in CIDR form, its host bits cleared (`192.0.2.7/24` is
/// `192.0.2.0/24`). A full-length prefix (`/32`, `/128`) is not a network but the one
/// address, and reads as `None`, as does anything that is not `address/prefix`.
pub fn parse_network(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = s.split_once('/')?;
    let ip: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if len >= max {
        return None;
    }
    Some((mask(ip, len), len))
}

/// The canonical text of a network (`parse_network` of it gives it back).
pub fn network_string(ip: IpAddr, len: u8) -> String {
    format!("{}/{len}", mask(ip, len))
}

/// `ip` with the bits past the first `len` cleared.
fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

/// Whether an address ban's key (`banned`: a stored remote address, or a network in
/// CIDR form) matches an attempt, given the attempt's stored remote address and its
/// plain IP address. A network is matched against the plain address, which only
/// `decide` sees (it is never stored when obfuscation is on); anything else must equal
/// the stored form.
pub fn address_ban_matches(banned: &str, stored: Option<&str>, plain: Option<IpAddr>) -> bool {
    match parse_network(banned) {
        Some((net, len)) => plain.is_some_and(|ip| {
            // An IPv4 client may reach an IPv6 listener as ::ffff:a.b.c.d.
            let ip = match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                v4 => v4,
            };
            ip.is_ipv4() == net.is_ipv4() && mask(ip, len) == net
        }),
        None => stored == Some(banned),
    }
}

/// The plain IP address of a remote address as a gateway gives it (`ip` or `ip:port`).
pub fn plain_ip(raw: &str) -> Option<IpAddr> {
    raw.parse::<std::net::SocketAddr>()
        .map(|sa| sa.ip())
        .or_else(|_| raw.parse::<IpAddr>())
        .ok()
}

#[cfg(test)]
mod network_tests {
    use super::*;

    #[test]
    fn networks_are_canonical_and_match_what_they_hold() {
        assert_eq!(
            parse_network("192.0.2.7/24").map(|(ip, l)| network_string(ip, l)),
            Some("192.0.2.0/24".to_owned())
        );
        assert_eq!(parse_network("192.0.2.7/32"), None);
        assert_eq!(parse_network("192.0.2.7"), None);
        assert_eq!(parse_network("h:abcd"), None);
        assert_eq!(parse_network("2001:db8::1/33").map(|(_, l)| l), Some(33));
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert!(address_ban_matches("192.0.2.0/24", None, ip("192.0.2.200")));
        assert!(address_ban_matches(
            "192.0.2.0/24",
            None,
            ip("::ffff:192.0.2.9")
        ));
        assert!(!address_ban_matches("192.0.2.0/24", None, ip("192.0.3.1")));
        assert!(!address_ban_matches(
            "192.0.2.0/24",
            Some("192.0.2.0/24"),
            None
        ));
        assert!(address_ban_matches("0.0.0.0/0", None, ip("203.0.113.5")));
        assert!(address_ban_matches("h:ab", Some("h:ab"), ip("192.0.2.1")));
        assert!(!address_ban_matches("h:ab", Some("h:cd"), ip("192.0.2.1")));
        assert_eq!(plain_ip("[::1]:80"), ip("::1"));
        assert_eq!(plain_ip("192.0.2.1:5060"), ip("192.0.2.1"));
    }
}
