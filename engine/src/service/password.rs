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
}
