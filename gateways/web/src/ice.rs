//! ICE servers for browsers, from configuration, with TURN REST credentials
//! (time-limited, compatible with coturn's `use-auth-secret`, as VROOM's `rest` mode):
//! username = `<expiry unix time>:<session>`, credential = base64(HMAC-SHA1(secret,
//! username)). The secret never leaves the server; a credential stops working at its
//! expiry on every TURN server that shares the secret.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

/// Default lifetime of a TURN credential.
pub const DEFAULT_TURN_TTL: Duration = Duration::from_secs(24 * 3600);

/// The ICE servers handed to browsers.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IceSettings {
    /// `stun:` / `stuns:` URLs.
    pub stun_urls: Vec<String>,
    /// `turn:` / `turns:` URLs (they need [`IceSettings::turn_secret`]).
    pub turn_urls: Vec<String>,
    /// The secret shared with the TURN servers (coturn `static-auth-secret`).
    pub turn_secret: Option<String>,
    /// How long a credential is valid; `None`: [`DEFAULT_TURN_TTL`].
    pub turn_ttl: Option<Duration>,
}

impl std::fmt::Debug for IceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceSettings")
            .field("stun_urls", &self.stun_urls)
            .field("turn_urls", &self.turn_urls)
            .field(
                "turn_secret",
                &self.turn_secret.as_ref().map(|_| "<hidden>"),
            )
            .field("turn_ttl", &self.turn_ttl)
            .finish()
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IceError(pub String);

impl IceSettings {
    /// Checks the URLs' schemes, and that TURN URLs come with a secret.
    pub fn new(
        stun_urls: Vec<String>,
        turn_urls: Vec<String>,
        turn_secret: Option<String>,
        turn_ttl: Option<Duration>,
    ) -> Result<Self, IceError> {
        let bad = |u: &String, schemes: &[&str]| {
            !schemes.iter().any(|s| u.starts_with(s))
                || u.len() > 512
                || u.chars().any(|c| c.is_control() || c.is_whitespace())
        };
        if let Some(u) = stun_urls.iter().find(|u| bad(u, &["stun:", "stuns:"])) {
            return Err(IceError(format!("not a stun:/stuns: URL: {u:?}")));
        }
        if let Some(u) = turn_urls.iter().find(|u| bad(u, &["turn:", "turns:"])) {
            return Err(IceError(format!("not a turn:/turns: URL: {u:?}")));
        }
        if !turn_urls.is_empty() && turn_secret.as_deref().is_none_or(str::is_empty) {
            return Err(IceError(
                "TURN URLs need the TURN secret (coturn static-auth-secret)".into(),
            ));
        }
        if turn_ttl.is_some_and(|t| t.as_secs() < 60 || t.as_secs() > 30 * 86_400) {
            return Err(IceError(
                "the TURN credential lifetime must be 60..=2592000 s".into(),
            ));
        }
        Ok(IceSettings {
            stun_urls,
            turn_urls,
            turn_secret,
            turn_ttl,
        })
    }

    /// The `RTCIceServer` list for `session` at `now_unix` (seconds).
    pub fn servers(&self, session: &str, now_unix: u64) -> Value {
        let mut out = Vec::new();
        if !self.stun_urls.is_empty() {
            out.push(json!({"urls": self.stun_urls}));
        }
        if let (false, Some(secret)) = (self.turn_urls.is_empty(), &self.turn_secret) {
            let ttl = self.turn_ttl.unwrap_or(DEFAULT_TURN_TTL).as_secs();
            let (username, credential) = turn_credential(secret, session, now_unix + ttl);
            out.push(json!({
                "urls": self.turn_urls,
                "username": username,
                "credential": credential,
                "credentialType": "password",
            }));
        }
        Value::Array(out)
    }
}

/// A TURN REST credential: (`<expiry>:<user>`, base64(HMAC-SHA1(secret, username))).
pub fn turn_credential(secret: &str, user: &str, expiry_unix: u64) -> (String, String) {
    let username = format!("{expiry_unix}:{user}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let tag = ring::hmac::sign(&key, username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    (username, credential)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn credential_matches_coturn_rest_api() {
        // Computed independently: printf '%s' '1700000000:web-abc' |
        //   openssl dgst -sha1 -hmac 'north' -binary | base64
        let (u, c) = turn_credential("north", "web-abc", 1_700_000_000);
        assert_eq!(u, "1700000000:web-abc");
        assert_eq!(c.len(), 28);
        assert_eq!(c, EXPECTED);
    }

    const EXPECTED: &str = include_str!("../tests/data/turn-credential.txt");

    #[test]
    fn servers_list_stun_and_turn_with_expiring_credentials() {
        let s = IceSettings::new(
            vec!["stun:stun.example.org:3478".into()],
            vec!["turn:turn.example.org:3478?transport=udp".into()],
            Some("north".into()),
            Some(Duration::from_secs(600)),
        )
        .unwrap();
        let v = s.servers("web-abc", 1_699_999_400);
        assert_eq!(v[0]["urls"][0], "stun:stun.example.org:3478");
        assert_eq!(v[1]["username"], "1700000000:web-abc");
        assert_eq!(v[1]["credential"], EXPECTED);
        assert!(!format!("{s:?}").contains("north"));
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(IceSettings::new(vec!["http://x".into()], vec![], None, None).is_err());
        assert!(IceSettings::new(vec![], vec!["turn:x".into()], None, None).is_err());
        assert!(IceSettings::new(vec![], vec!["stun:x".into()], Some("s".into()), None).is_err());
        assert_eq!(
            IceSettings::new(vec![], vec![], None, None)
                .unwrap()
                .servers("s", 1),
            json!([])
        );
    }
}
