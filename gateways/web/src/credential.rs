//! Scoped, time-limited operator credentials for automation, besides the master admin
//! token: `ca1.<payload>.<mac>`, signed like participant tokens (keyed BLAKE3 under the
//! data directory's token key, another domain string), naming a label, the API areas it
//! may act in (the route tags of `/openapi.json`: `moderation`, `accounts`, `server`,
//! `replay`...), whether it may only read, and its expiry (at most 30 days).
//!
//! On a route of one of its areas the credential acts as the admin does, and every
//! command it sends is journaled with `authorized_by: credential:<label>/<id>`, so
//! forensics can tell a script from the operator. Outside its areas, or writing when it
//! may only read, it is refused (403 `auth.out_of_scope`). Only the master admin token
//! mints credentials; a credential cannot mint another. Credentials are not stored, so
//! they end at their expiry; rotating `<data-dir>/token-key` ends every one at once
//! (and every participant token).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::token::{Invalid, TokenSigner};

const PREFIX: &str = "ca1.";
const DOMAIN: &str = "conclave credential v1";

/// The longest a credential may live.
pub const MAX_TTL: TimeDelta = TimeDelta::days(30);

/// What a credential says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Random id, to tell two credentials of one label apart in the journal.
    pub id: String,
    /// Who or what it is for (`ci`, `crm-sync`...).
    pub label: String,
    /// The route tags it may act in.
    pub scopes: Vec<String>,
    /// Only GET routes.
    pub read_only: bool,
    /// When it was minted.
    pub issued_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    i: String,
    l: String,
    s: Vec<String>,
    r: bool,
    t: i64,
    x: i64,
}

impl Credential {
    /// Whether it may call a route tagged `tag` with `method`.
    pub fn allows(&self, tag: &str, method: &axum::http::Method) -> bool {
        let reads = matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD);
        (reads || !self.read_only) && self.scopes.iter().any(|s| s == tag)
    }

    /// How the journal names who authorized what it did.
    pub fn authority(&self) -> String {
        format!("credential:{}/{}", self.label, self.id)
    }

    /// Whether `token` has the credential form (so it is never taken for another kind).
    pub fn looks_like(token: &str) -> bool {
        token.starts_with(PREFIX)
    }

    /// Signs it.
    pub fn sign(&self, signer: &TokenSigner) -> String {
        let claims = Claims {
            i: self.id.clone(),
            l: self.label.clone(),
            s: self.scopes.clone(),
            r: self.read_only,
            t: self.issued_at.timestamp(),
            x: self.expires_at.timestamp(),
        };
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let payload = conclave_journal::hex(&json);
        let mac = signer.mac(DOMAIN, &payload);
        format!("{PREFIX}{payload}.{mac}")
    }

    /// The credential `token` stands for, if this server signed it and it is live at
    /// `now`.
    pub fn verify(signer: &TokenSigner, token: &str, now: DateTime<Utc>) -> Result<Self, Invalid> {
        let rest = token.strip_prefix(PREFIX).ok_or(Invalid::Forged)?;
        let (payload, mac) = rest.split_once('.').ok_or(Invalid::Forged)?;
        if !signer.mac_matches(DOMAIN, payload, mac) {
            return Err(Invalid::Forged);
        }
        let json = conclave_replay::verify::unhex_vec(payload).map_err(|_| Invalid::Forged)?;
        let c: Claims = serde_json::from_slice(&json).map_err(|_| Invalid::Forged)?;
        let at = |secs| DateTime::from_timestamp(secs, 0).ok_or(Invalid::Forged);
        let credential = Credential {
            id: c.i,
            label: c.l,
            scopes: c.s,
            read_only: c.r,
            issued_at: at(c.t)?,
            expires_at: at(c.x)?,
        };
        if credential.expires_at <= now {
            return Err(Invalid::Expired);
        }
        Ok(credential)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use axum::http::Method;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).unwrap()
    }

    fn ci() -> Credential {
        Credential {
            id: "0123abcd".into(),
            label: "ci".into(),
            scopes: vec!["moderation".into(), "replay".into()],
            read_only: false,
            issued_at: now(),
            expires_at: now() + TimeDelta::hours(1),
        }
    }

    #[test]
    fn a_credential_says_what_it_was_minted_for_until_it_expires() {
        let s = TokenSigner::ephemeral();
        let t = ci().sign(&s);
        assert!(Credential::looks_like(&t));
        assert_eq!(Credential::verify(&s, &t, now()), Ok(ci()));
        assert_eq!(
            Credential::verify(&s, &t, now() + TimeDelta::hours(1)),
            Err(Invalid::Expired)
        );
    }

    #[test]
    fn forged_altered_and_foreign_credentials_are_refused() {
        let s = TokenSigner::ephemeral();
        let t = ci().sign(&s);
        assert_eq!(
            Credential::verify(&TokenSigner::ephemeral(), &t, now()),
            Err(Invalid::Forged)
        );
        let widened = Credential {
            scopes: vec!["server".into()],
            ..ci()
        }
        .sign(&TokenSigner::ephemeral());
        let (_, their_mac) = widened.rsplit_once('.').unwrap();
        let (mine, _) = t.rsplit_once('.').unwrap();
        assert_eq!(
            Credential::verify(&s, &format!("{mine}.{their_mac}"), now()),
            Err(Invalid::Forged)
        );
        for junk in ["", "ca1.", "ca1.zz.zz", "ca1..", "cv1.00.00"] {
            assert_eq!(Credential::verify(&s, junk, now()), Err(Invalid::Forged));
        }
    }

    #[test]
    fn a_participant_token_is_not_a_credential() {
        // Same secret, other domain: a participant token's MAC never verifies here.
        let s = TokenSigner::ephemeral();
        let t = ci().sign(&s).replacen("ca1.", "cv1.", 1);
        assert_eq!(Credential::verify(&s, &t, now()), Err(Invalid::Forged));
    }

    #[test]
    fn scopes_and_read_only_bound_what_it_may_call() {
        let c = ci();
        assert!(c.allows("moderation", &Method::POST));
        assert!(c.allows("replay", &Method::GET));
        assert!(!c.allows("server", &Method::GET));
        let ro = Credential {
            read_only: true,
            ..ci()
        };
        assert!(ro.allows("moderation", &Method::GET));
        assert!(!ro.allows("moderation", &Method::DELETE));
    }
}
