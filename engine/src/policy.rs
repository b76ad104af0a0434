//! Server-wide configuration, with the seeds' defaults.
//!
//! A [`Policy`] is built from the configuration file at start-up and lives inside the
//! [`State`](crate::State); the few settings an operator may change at run time (server
//! password, retention, IP obfuscation, welcome text) change through journaled events so
//! that a replay reproduces the decisions that were actually taken.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::ids::NameRule;

/// Mumble's autoban: `attempts` failed joins within `timeframe_secs` ban the identity or
/// address for `duration_secs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutobanPolicy {
    /// Failed attempts that trigger a ban (Mumble `autoban-attempts`, default 10;
    /// 0 disables autoban).
    pub attempts: u32,
    /// The sliding window in seconds (Mumble `autoban-timeframe`, default 120).
    pub timeframe_secs: u32,
    /// How long the ban lasts in seconds (Mumble `autoban-time`, default 300).
    pub duration_secs: u32,
}

impl Default for AutobanPolicy {
    fn default() -> Self {
        AutobanPolicy {
            attempts: 10,
            timeframe_secs: 120,
            duration_secs: 300,
        }
    }
}

/// Server-wide configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Sessions connected to the whole server at once (Mumble `max-users`, default 100).
    pub max_users: u32,
    /// Cap on members of any one room; per-room limits cannot exceed it (VROOM
    /// `max_members`). Default 100, the same as `max_users`.
    pub max_members: u32,
    /// How deep rooms may nest (Mumble `channel-nesting-limit`, default 10).
    pub nesting_limit: u32,
    /// Longest chat message in characters (Mumble `text-message-length`, default 5000).
    pub text_message_length: u32,
    /// Longest image message in bytes (Mumble `image-message-length`, default 128 KiB).
    pub image_message_length: u32,
    /// Whether HTML is kept in chat and descriptions (Mumble `allow-html`, default off:
    /// tags are stripped).
    pub allow_html: bool,
    /// Autoban thresholds.
    pub autoban: AutobanPolicy,
    /// Store a keyed hash instead of remote addresses (Mumble `obfuscate-ips`, default on).
    pub obfuscate_ips: bool,
    /// Days personal content is kept (Mumble `log-days`, default 31; 0 keeps forever,
    /// -1 keeps none).
    pub log_days: i32,
    /// Names that may be used for rooms but not reserved (VROOM `common_names`).
    pub common_names: Vec<String>,
    /// Minutes without activity after which an unreserved room expires (VROOM
    /// `inactivity_timeout`, default 60; 0 never).
    pub inactivity_timeout_mins: u32,
    /// Same for reserved rooms (VROOM `reserved_inactivity_timeout`, default 86400
    /// minutes = 60 days; 0 never).
    pub reserved_inactivity_timeout_mins: u32,
    /// Default lifetime of an invitation in seconds (default 7 days).
    pub invitation_ttl_secs: u32,
    /// Server password as an argon2 PHC string (Mumble `server-password`); `None` = open.
    pub server_password_hash: Option<String>,
    /// Text sent to clients when they connect (Mumble `welcome-text`).
    pub welcome_text: String,
    /// Rule for room names (Mumble `channelname-regex` default).
    pub room_name_rule: NameRule,
    /// Rule for display names (Mumble `username-regex` default).
    pub user_name_rule: NameRule,
    /// Longest ban / kick reason in characters.
    pub max_reason_len: u32,
    /// How long a session lives without a renewal from its gateway, in seconds (0:
    /// sessions without leases, which only end when someone ends them; the engine's
    /// default, while the server's configuration defaults to
    /// [`DEFAULT_SESSION_LEASE_SECS`]). A lease running out is a journaled leave
    /// (`lease_expired`), so a client or gateway that vanished leaves no ghost behind,
    /// across restarts too.
    pub session_lease_secs: u32,
    /// Sessions one identity may hold at once, across rooms (0: no limit, the engine's
    /// default; the server's configuration defaults to 16): one person, or one stolen
    /// guest name, cannot fill the server.
    pub max_sessions_per_identity: u32,
    /// Whether guests (identities not linked to an account) may create rooms (default
    /// true). Operators always may; an identity linked to an enabled account always may.
    pub guests_may_create: bool,
    /// Only identities linked to an enabled account may enter the server: join, knock,
    /// call or create (Mumble's `certrequired`, by account rather than by client
    /// certificate; default false).
    pub accounts_only: bool,
}

/// The session lease a server runs with unless configured otherwise: long enough for a
/// REST client between two calls, short enough that a vanished one is gone in minutes.
pub const DEFAULT_SESSION_LEASE_SECS: u32 = 300;

/// The sessions one identity may hold at once on a server unless configured otherwise:
/// a person with a few devices and tabs, not a flood under one name.
pub const DEFAULT_MAX_SESSIONS_PER_IDENTITY: u32 = 16;

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_users: 100,
            max_members: 100,
            nesting_limit: 10,
            text_message_length: 5000,
            image_message_length: 128 * 1024,
            allow_html: false,
            autoban: AutobanPolicy::default(),
            obfuscate_ips: true,
            log_days: 31,
            common_names: default_common_names(),
            inactivity_timeout_mins: 60,
            reserved_inactivity_timeout_mins: 86_400,
            invitation_ttl_secs: 7 * 24 * 3600,
            server_password_hash: None,
            welcome_text: String::new(),
            room_name_rule: NameRule::mumble_channel(),
            user_name_rule: NameRule::mumble_user(),
            max_reason_len: 500,
            session_lease_secs: 0,
            max_sessions_per_identity: 0,
            guests_may_create: true,
            accounts_only: false,
        }
    }
}

/// A short list of generic names that nobody should be able to squat by reserving
/// them (the VROOM idea; its sample list is site-specific, this one is conservative).
pub fn default_common_names() -> Vec<String> {
    [
        "test",
        "demo",
        "room",
        "chat",
        "meeting",
        "conference",
        "lobby",
        "admin",
        "support",
        "help",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

impl Policy {
    /// Whether `name` is in the common-names list (case-insensitive).
    pub fn is_common_name(&self, name: &str) -> bool {
        self.common_names
            .iter()
            .any(|c| c.trim().eq_ignore_ascii_case(name.trim()))
    }
}

/// The key for obfuscating remote addresses. It comes from the configuration (never
/// generated inside the core) so that the same address always hashes to the same value
/// and autoban by address keeps working across restarts.
#[derive(Clone, PartialEq, Eq)]
pub struct IpKey(pub [u8; 32]);

impl std::fmt::Debug for IpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IpKey(..)")
    }
}

/// Turn a remote address as seen by a gateway into what may be stored: the port is
/// dropped (autoban is about hosts, not connections), then the address is replaced by
/// `h:` + a keyed BLAKE3 hash when `obfuscate` is on.
pub fn stored_remote_addr(raw: &str, obfuscate: bool, key: &IpKey) -> String {
    let host = raw
        .parse::<SocketAddr>()
        .map(|sa| sa.ip().to_string())
        .or_else(|_| raw.parse::<IpAddr>().map(|ip| ip.to_string()))
        .unwrap_or_else(|_| raw.chars().take(128).collect());
    if obfuscate {
        let hash = blake3::keyed_hash(&key.0, host.as_bytes());
        format!("h:{}", &hash.to_hex().as_str()[..32])
    } else {
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_defaults() {
        let p = Policy::default();
        assert_eq!(p.nesting_limit, 10);
        assert_eq!(p.text_message_length, 5000);
        assert!(!p.allow_html);
        assert_eq!(p.autoban, AutobanPolicy::default());
        assert_eq!(
            (
                p.autoban.attempts,
                p.autoban.timeframe_secs,
                p.autoban.duration_secs
            ),
            (10, 120, 300)
        );
        assert!(p.obfuscate_ips);
        assert_eq!(p.log_days, 31);
        assert_eq!(p.max_users, 100);
        assert!(p.is_common_name("Test"));
    }

    #[test]
    fn obfuscation_drops_port_and_hashes() {
        let k = IpKey([7; 32]);
        let a = stored_remote_addr("192.0.2.1:5060", true, &k);
        let b = stored_remote_addr("192.0.2.1:5061", true, &k);
        assert_eq!(a, b);
        assert!(a.starts_with("h:"));
        assert!(!a.contains("192"));
        assert_eq!(stored_remote_addr("[::1]:80", false, &k), "::1");
        assert_ne!(a, stored_remote_addr("192.0.2.1", true, &IpKey([8; 32])));
    }
}
