//! argon2id password hashing and verification for the service (the core only sees the
//! [`PasswordVerifier`] trait).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier as _, SaltString};
use argon2::Argon2;

use crate::context::PasswordVerifier;

/// Verifies attempts against stored argon2 PHC strings.
#[derive(Debug, Default, Clone, Copy)]
pub struct Argon2Verifier;

impl PasswordVerifier for Argon2Verifier {
    fn verify(&self, stored_hash: &str, attempt: &str) -> bool {
        match PasswordHash::new(stored_hash) {
            Ok(parsed) => Argon2::default()
                .verify_password(attempt.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }
}

/// Password checks done before a command reaches the decider, so argon2's deliberate
/// slowness (tens of milliseconds) is spent on the caller's blocking pool instead of
/// holding up every other command on the single decider thread.
#[derive(Debug, Default, Clone)]
pub struct Prechecked {
    /// (stored hash, attempt, verdict).
    results: Vec<(String, String, bool)>,
}

impl Prechecked {
    /// Verifies every secret in `attempts` against every hash in `hashes`.
    pub fn compute(hashes: &[String], attempts: &[String]) -> Self {
        let mut results = Vec::new();
        for h in hashes {
            for a in attempts {
                results.push((h.clone(), a.clone(), Argon2Verifier.verify(h, a)));
            }
        }
        Prechecked { results }
    }

    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }
}

impl PasswordVerifier for Prechecked {
    /// The precomputed verdict; a pair not prechecked (the hash changed between the
    /// precheck and the decision) is verified now.
    fn verify(&self, stored_hash: &str, attempt: &str) -> bool {
        match self
            .results
            .iter()
            .find(|(h, a, _)| h == stored_hash && a == attempt)
        {
            Some((_, _, ok)) => *ok,
            None => Argon2Verifier.verify(stored_hash, attempt),
        }
    }
}

/// Hashes a new password with argon2id and a fresh random salt, as a PHC string.
pub fn hash_password(plaintext: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(plaintext.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_garbage_does_not() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(Argon2Verifier.verify(&h, "s3cret"));
        assert!(!Argon2Verifier.verify(&h, "S3cret"));
        assert!(!Argon2Verifier.verify("not a hash", "s3cret"));
        assert!(!Argon2Verifier.verify("", ""));
    }

    #[test]
    fn prechecked_verdicts_match_and_unknown_pairs_are_verified() {
        let h = hash_password("open sesame").unwrap();
        let pre = Prechecked::compute(
            std::slice::from_ref(&h),
            &["open sesame".into(), "nope".into()],
        );
        assert!(pre.verify(&h, "open sesame"));
        assert!(!pre.verify(&h, "nope"));
        let other = hash_password("other").unwrap();
        assert!(pre.verify(&other, "other"));
    }
}
