//! Who is calling: the admin token, a participant token issued at join, or nobody.
//!
//! Tokens are compared through their BLAKE3 digests: the admin digest with BLAKE3's
//! constant-time equality, participant tokens by digest lookup, so response timing says
//! nothing about a token's bytes. Participant tokens live in memory only: a restart
//! forgets them (people join again; owners of reserved rooms regain ownership with the
//! owner password). A token stands for a right in the engine (see
//! `State::grant_holds`): it is refused as soon as that right ends, and
//! `revocation.rs` removes it when the committed feed shows the event that ended it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use conclave_engine::{Address, RoomName, SessionId};

use crate::error::ApiError;

/// How many participant tokens may exist at once; beyond it joins get 503 until some
/// leave (bounds memory under a flood of anonymous joins).
pub const MAX_PARTICIPANT_TOKENS: usize = 100_000;

/// Authentication settings for the router.
#[derive(Clone)]
pub struct AuthConfig {
    admin_digest: blake3::Hash,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthConfig(..)")
    }
}

impl AuthConfig {
    /// Admin access with this bearer token (kept only as a digest).
    pub fn new(admin_token: &str) -> Self {
        AuthConfig {
            admin_digest: blake3::hash(admin_token.as_bytes()),
        }
    }

    fn is_admin(&self, token: &str) -> bool {
        // blake3::Hash's equality is constant-time.
        blake3::hash(token.as_bytes()) == self.admin_digest
    }
}

fn invalid() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "auth.invalid_token",
        "the bearer token is not valid",
    )
}

fn too_many() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "auth.too_many_tokens",
        "too many participant tokens are in use; try again later",
    )
    .with_retry_after(30)
}

fn expired() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "auth.token_expired",
        "this token has expired; join again",
    )
}

/// The answer to a token whose right has ended.
pub(crate) fn revoked() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "auth.token_revoked",
        "this token's session has ended (left, kicked, banned, expired, or the room is gone); join again",
    )
}

/// 256 random bits as 64 lowercase hex characters.
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)?;
    Ok(conclave_journal::hex(&b))
}

/// Reads the admin token from `path`, or creates it (256 random bits, mode 0600).
/// Returns the token and whether it was just created (so the caller prints it once).
pub fn load_or_create_admin_token(path: &Path) -> std::io::Result<(String, bool)> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let t = s.trim().to_owned();
            if t.len() < 16 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: admin token shorter than 16 characters", path.display()),
                ));
            }
            Ok((t, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = random_token().map_err(|e| std::io::Error::other(e.to_string()))?;
            if let Some(dir) = path.parent() {
                conclave_journal::durable::create_dir_all(dir)?;
            }
            conclave_journal::durable::create_private_file(path, format!("{token}\n").as_bytes())?;
            Ok((token, true))
        }
        Err(e) => Err(e),
    }
}

/// What a participant token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// The identity the bearer acts as.
    pub identity: Address,
    /// The room the token was issued for; other rooms' routes refuse it.
    pub room: RoomName,
    /// The session it joined with (`None` for a room creator's token).
    pub session: Option<SessionId>,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it stops being valid (its right may end sooner).
    pub expires_at: DateTime<Utc>,
}

impl Participant {
    /// The holder of this token as the engine's visibility rules see them.
    pub fn viewer(&self) -> conclave_engine::access::Viewer<'_> {
        conclave_engine::access::Viewer::Holder {
            room: &self.room,
            identity: &self.identity,
            session: self.session.as_ref(),
        }
    }
}

/// The caller of one request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The admin token.
    Admin,
    /// A participant token.
    Participant {
        /// Digest of the token (to revoke it).
        digest: [u8; 32],
        /// What it stands for.
        who: Participant,
    },
    /// No Authorization header.
    Anonymous,
}

#[derive(Default)]
struct Registry {
    tokens: HashMap<[u8; 32], Participant>,
    /// The tokens of each room, so an event in one room checks only that room's.
    by_room: HashMap<RoomName, HashSet<[u8; 32]>>,
    /// Recently revoked tokens (at most [`REMEMBER_REVOKED`]), so their bearers hear
    /// why their token stopped working rather than that it never did.
    revoked: std::collections::VecDeque<[u8; 32]>,
    revoked_set: HashSet<[u8; 32]>,
    /// When each live token's session was last renewed.
    renewed: HashMap<[u8; 32], std::time::Instant>,
    /// Live tokens (and pending anonymous claims) per identity: a claimed guest name
    /// cannot be claimed again by someone else while its holder has a token.
    claims: HashMap<Address, usize>,
}

/// The in-memory participant token registry.
#[derive(Clone)]
pub struct Tokens {
    inner: Arc<Mutex<Registry>>,
    signer: Arc<crate::token::TokenSigner>,
}

impl Default for Tokens {
    /// A registry whose tokens are signed with a secret of this process only.
    fn default() -> Self {
        Tokens::new(crate::token::TokenSigner::ephemeral())
    }
}

/// Holds a guest name while a join is decided; dropping it without
/// [`Tokens::issue`] releases the name.
pub struct Claim {
    tokens: Tokens,
    identity: Option<Address>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(a) = self.identity.take() {
            self.tokens.lock().release(&a);
        }
    }
}

/// How many revoked tokens are remembered for a clearer refusal.
const REMEMBER_REVOKED: usize = 16_384;

impl Registry {
    /// Registers a live token; it holds its identity's name while it lives.
    fn insert(&mut self, digest: [u8; 32], who: Participant) {
        *self.claims.entry(who.identity.clone()).or_default() += 1;
        self.by_room
            .entry(who.room.clone())
            .or_default()
            .insert(digest);
        self.tokens.insert(digest, who);
    }

    fn remove(&mut self, digest: &[u8; 32]) -> bool {
        let Some(p) = self.tokens.remove(digest) else {
            return false;
        };
        self.renewed.remove(digest);
        if self.revoked.len() == REMEMBER_REVOKED {
            if let Some(old) = self.revoked.pop_front() {
                self.revoked_set.remove(&old);
            }
        }
        self.revoked.push_back(*digest);
        self.revoked_set.insert(*digest);
        if let Some(set) = self.by_room.get_mut(&p.room) {
            set.remove(digest);
            if set.is_empty() {
                self.by_room.remove(&p.room);
            }
        }
        self.release(&p.identity);
        true
    }

    fn release(&mut self, a: &Address) {
        if let Some(n) = self.claims.get_mut(a) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.claims.remove(a);
            }
        }
    }
}

impl Tokens {
    /// A registry signing tokens with `signer`.
    pub fn new(signer: crate::token::TokenSigner) -> Self {
        Tokens {
            inner: Arc::default(),
            signer: Arc::new(signer),
        }
    }

    /// The signer of participant tokens (operator credentials share its secret, in
    /// another domain).
    pub(crate) fn signer(&self) -> &crate::token::TokenSigner {
        &self.signer
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves the Authorization header.
    pub fn caller(&self, auth: &AuthConfig, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            return Ok(Caller::Anonymous);
        };
        let value = value.to_str().map_err(|_| invalid())?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(invalid)?;
        self.resolve(auth, token)
    }

    /// Resolves a bearer token however it came (header, or a query parameter for
    /// clients that cannot send headers).
    pub fn resolve(&self, auth: &AuthConfig, token: &str) -> Result<Caller, ApiError> {
        let token = Some(token.trim())
            .filter(|t| !t.is_empty() && t.len() <= 1024)
            .ok_or_else(invalid)?;
        if auth.is_admin(token) {
            return Ok(Caller::Admin);
        }
        let digest = *blake3::hash(token.as_bytes()).as_bytes();
        let now = Utc::now();
        let mut r = self.lock();
        if r.revoked_set.contains(&digest) {
            return Err(revoked());
        }
        if let Some(who) = r.tokens.get(&digest) {
            if who.expires_at <= now {
                r.remove(&digest);
                return Err(expired());
            }
            return Ok(Caller::Participant {
                digest,
                who: who.clone(),
            });
        }
        // Not seen by this process: a token from before a restart is taken back into
        // the registry if this server signed it and it has not expired.
        match self.signer.verify(token, now) {
            Ok(who) => {
                if r.tokens.len() >= MAX_PARTICIPANT_TOKENS {
                    return Err(too_many());
                }
                r.insert(digest, who.clone());
                Ok(Caller::Participant { digest, who })
            }
            Err(crate::token::Invalid::Expired) => Err(expired()),
            Err(crate::token::Invalid::Forged) => Err(invalid()),
        }
    }

    /// Holds `identity` for an anonymous claim: refused while someone else holds it.
    pub fn claim(&self, identity: &Address) -> Result<Claim, ApiError> {
        let mut r = self.lock();
        if r.claims.contains_key(identity) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "auth.identity_claimed",
                format!("{identity} is in use by someone holding a token; pick another name or present your token"),
            ));
        }
        r.claims.insert(identity.clone(), 1);
        Ok(Claim {
            tokens: self.clone(),
            identity: Some(identity.clone()),
        })
    }

    /// A claim that holds nothing (the caller already proved the identity).
    pub fn no_claim(&self) -> Claim {
        Claim {
            tokens: self.clone(),
            identity: None,
        }
    }

    /// Issues a fresh token for `who`, consuming the claim (if any) into it.
    pub fn issue(&self, who: Participant, mut claim: Claim) -> Result<String, ApiError> {
        let token = self
            .signer
            .sign(&who)
            .map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
        let digest = *blake3::hash(token.as_bytes()).as_bytes();
        let mut r = self.lock();
        if r.tokens.len() >= MAX_PARTICIPANT_TOKENS {
            return Err(too_many());
        }
        // The claim's hold on the name passes to the token.
        if claim.identity.take().is_some() {
            r.release(&who.identity);
        }
        r.insert(digest, who);
        Ok(token)
    }

    /// Revokes one token.
    pub fn revoke(&self, digest: &[u8; 32]) {
        self.lock().remove(digest);
    }

    /// Drops tokens whose room no longer exists (called when a room goes).
    pub fn forget_room(&self, room: &RoomName) {
        self.revoke_unless(Some(room), |_| false);
    }

    /// Revokes the tokens of `room` (of every room with `None`) for which `holds` says
    /// the right they stand for has ended; returns how many. `holds` runs without the
    /// registry's lock held, so it may read the engine.
    pub fn revoke_unless(
        &self,
        room: Option<&RoomName>,
        holds: impl Fn(&Participant) -> bool,
    ) -> usize {
        let candidates: Vec<([u8; 32], Participant)> = {
            let r = self.lock();
            let digests: Vec<[u8; 32]> = match room {
                Some(room) => r
                    .by_room
                    .get(room)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default(),
                None => r.tokens.keys().copied().collect(),
            };
            digests
                .into_iter()
                .filter_map(|d| r.tokens.get(&d).map(|p| (d, p.clone())))
                .collect()
        };
        let ended: Vec<[u8; 32]> = candidates
            .into_iter()
            .filter(|(_, p)| !holds(p))
            .map(|(d, _)| d)
            .collect();
        let mut r = self.lock();
        ended.iter().filter(|d| r.remove(d)).count()
    }

    /// Whether the session behind a live token is due for a renewal (at most one per
    /// `every`); marks it renewed if so.
    pub fn due_for_renewal(&self, digest: &[u8; 32], every: std::time::Duration) -> bool {
        let mut r = self.lock();
        if !r.tokens.contains_key(digest) {
            return false;
        }
        let now = std::time::Instant::now();
        match r.renewed.get(digest) {
            Some(at) if now.duration_since(*at) < every => false,
            _ => {
                r.renewed.insert(*digest, now);
                true
            }
        }
    }

    /// Live tokens (for /metrics).
    pub fn len(&self) -> usize {
        self.lock().tokens.len()
    }

    /// Whether no token is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn claims_are_exclusive_and_released() {
        let t = Tokens::default();
        let a = Address::parse("web:alice").unwrap();
        let c = t.claim(&a).unwrap();
        assert_eq!(t.claim(&a).err().unwrap().code, "auth.identity_claimed");
        drop(c);
        let c = t.claim(&a).unwrap();
        let who = Participant {
            identity: a.clone(),
            room: RoomName::lookup("r").unwrap(),
            session: None,
            issued_at: Utc::now(),
            expires_at: Utc::now() + crate::token::TOKEN_TTL,
        };
        let tok = t.issue(who, c).unwrap();
        assert!(tok.starts_with("cv1."), "{tok}");
        assert!(t.claim(&a).is_err());
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Bearer {tok}").parse().unwrap());
        let auth = AuthConfig::new("admin-token-0123456789");
        let Caller::Participant { digest, .. } = t.caller(&auth, &h).unwrap() else {
            panic!("not a participant")
        };
        t.revoke(&digest);
        assert!(t.claim(&a).is_ok());
        assert!(t.caller(&auth, &h).is_err());
    }

    #[test]
    fn admin_token_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("admin-token");
        let (a, created) = load_or_create_admin_token(&p).unwrap();
        assert!(created);
        let (b, created) = load_or_create_admin_token(&p).unwrap();
        assert!(!created);
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
