//! Participant tokens that survive a restart: `cv1.<payload>.<mac>`, the payload naming
//! the identity, room, session, issue and expiry times, the MAC a keyed BLAKE3 hash under
//! a secret kept in the data directory.
//!
//! A token proves only what it was issued for; whether that right still stands (the
//! session present, the person not banned, the room there) is asked of the engine at
//! every use, so a signed token needs no registry to be revoked: the right it names
//! ends, and the token with it, whichever gateway ended it, across restarts too.

use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use conclave_engine::{Address, RoomName, SessionId};
use serde::{Deserialize, Serialize};

use crate::auth::Participant;

/// How long a participant token is valid (its session may end sooner).
pub const TOKEN_TTL: TimeDelta = TimeDelta::hours(24);

/// File in the data directory holding the secret.
const KEY_FILE: &str = "token-key";
const PREFIX: &str = "cv1.";
/// The MAC's domain string (kept: tokens issued before a restart must still verify).
const DOMAIN: &str = "conclave token v1";

/// What a token says.
#[derive(Serialize, Deserialize)]
struct Claims {
    /// Identity.
    i: String,
    /// Room.
    r: String,
    /// Session, if the token stands for one.
    s: Option<String>,
    /// Issued at (Unix seconds).
    t: i64,
    /// Expires at (Unix seconds).
    x: i64,
    /// Random, so two tokens for the same session differ.
    n: String,
}

/// Why a token is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Not a token this server signed.
    Forged,
    /// Past its expiry.
    Expired,
}

pub struct TokenSigner {
    secret: [u8; 32],
}

impl TokenSigner {
    /// The secret from `data_dir` (created, private and durable, on first use), or a
    /// secret for this run only if the directory cannot hold one (logged).
    pub fn load(data_dir: &Path) -> TokenSigner {
        TokenSigner {
            secret: crate::guest::load_secret(&data_dir.join(KEY_FILE)),
        }
    }

    /// A signer with a random secret (tests, and routers without a data directory).
    pub fn ephemeral() -> TokenSigner {
        let mut secret = [0u8; 32];
        let _ = getrandom::fill(&mut secret);
        TokenSigner { secret }
    }

    /// The MAC of `payload` under this secret in `domain` (participant tokens and
    /// operator credentials use different domains, so one never verifies as the other).
    pub(crate) fn mac(&self, domain: &str, payload: &str) -> String {
        let h = blake3::keyed_hash(&self.secret, format!("{domain} {payload}").as_bytes());
        conclave_journal::hex(h.as_bytes())
    }

    /// Whether `mac` is `payload`'s MAC in `domain`, compared in constant time (through
    /// BLAKE3 digests, whose equality is constant-time).
    pub(crate) fn mac_matches(&self, domain: &str, payload: &str, mac: &str) -> bool {
        blake3::hash(self.mac(domain, payload).as_bytes()) == blake3::hash(mac.as_bytes())
    }

    /// A token for `who`, valid until `who.expires_at`.
    pub fn sign(&self, who: &Participant) -> Result<String, getrandom::Error> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce)?;
        let claims = Claims {
            i: who.identity.to_string(),
            r: who.room.as_str().to_owned(),
            s: who.session.as_ref().map(|s| s.as_str().to_owned()),
            t: who.issued_at.timestamp(),
            x: who.expires_at.timestamp(),
            n: conclave_journal::hex(&nonce),
        };
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let payload = conclave_journal::hex(&json);
        let mac = self.mac(DOMAIN, &payload);
        Ok(format!("{PREFIX}{payload}.{mac}"))
    }

    /// What a token stands for, if this server signed it and it has not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Participant, Invalid> {
        let rest = token.strip_prefix(PREFIX).ok_or(Invalid::Forged)?;
        let (payload, mac) = rest.split_once('.').ok_or(Invalid::Forged)?;
        if !self.mac_matches(DOMAIN, payload, mac) {
            return Err(Invalid::Forged);
        }
        let json = conclave_replay::verify::unhex_vec(payload).map_err(|_| Invalid::Forged)?;
        let c: Claims = serde_json::from_slice(&json).map_err(|_| Invalid::Forged)?;
        let at = |secs| DateTime::from_timestamp(secs, 0).ok_or(Invalid::Forged);
        let who = Participant {
            identity: Address::parse(&c.i).map_err(|_| Invalid::Forged)?,
            room: RoomName::lookup(&c.r).map_err(|_| Invalid::Forged)?,
            session: match c.s {
                Some(s) => Some(SessionId::parse(&s).map_err(|_| Invalid::Forged)?),
                None => None,
            },
            issued_at: at(c.t)?,
            expires_at: at(c.x)?,
        };
        if who.expires_at <= now {
            return Err(Invalid::Expired);
        }
        Ok(who)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn who(now: DateTime<Utc>) -> Participant {
        Participant {
            identity: Address::parse("web:alice").unwrap(),
            room: RoomName::lookup("standup").unwrap(),
            session: Some(SessionId::parse("tab-1").unwrap()),
            issued_at: now,
            expires_at: now + TOKEN_TTL,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).unwrap()
    }

    #[test]
    fn a_signed_token_says_what_it_was_issued_for() {
        let s = TokenSigner::ephemeral();
        let t = s.sign(&who(now())).unwrap();
        assert_eq!(s.verify(&t, now()), Ok(who(now())));
    }

    #[test]
    fn a_token_of_another_secret_or_altered_is_forged() {
        let s = TokenSigner::ephemeral();
        let t = s.sign(&who(now())).unwrap();
        assert_eq!(
            TokenSigner::ephemeral().verify(&t, now()),
            Err(Invalid::Forged)
        );
        let mut altered = t.clone().into_bytes();
        let i = t.find('.').unwrap() + 3;
        altered[i] = if altered[i] == b'0' { b'1' } else { b'0' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(s.verify(&altered, now()), Err(Invalid::Forged));
        for junk in ["", "cv1.", "cv1.zz.zz", "cv1..", "nonsense"] {
            assert_eq!(s.verify(junk, now()), Err(Invalid::Forged), "{junk:?}");
        }
    }

    #[test]
    fn a_token_past_its_expiry_is_refused() {
        let s = TokenSigner::ephemeral();
        let t = s.sign(&who(now())).unwrap();
        assert_eq!(s.verify(&t, now() + TOKEN_TTL), Err(Invalid::Expired));
    }
}
