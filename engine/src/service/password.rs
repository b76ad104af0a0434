//! argon2id password hashing and verification for the service (the core only sees the
//! [`PasswordVerifier`] trait).

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier as _, SaltString};
use argon2::{Argon2, Params};

use crate::context::PasswordVerifier;

/// The most memory (KiB), passes and lanes a stored hash may ask a verification for.
/// Hashes are set over the API (and NATS), so a crafted PHC string could otherwise make
/// one check take gigabytes; this build's own hashes use argon2's defaults (19 MiB, 2
/// passes, 1 lane).
pub const MAX_M_COST_KIB: u32 = 64 * 1024;
pub const MAX_T_COST: u32 = 8;
pub const MAX_P_COST: u32 = 4;

/// Verifies attempts against stored argon2 PHC strings.
#[derive(Debug, Default, Clone, Copy)]
pub struct Argon2Verifier;

impl PasswordVerifier for Argon2Verifier {
    fn verify(&self, stored_hash: &str, attempt: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored_hash) else {
            return false;
        };
        match Params::try_from(&parsed) {
            Ok(p)
                if p.m_cost() <= MAX_M_COST_KIB
                    && p.t_cost() <= MAX_T_COST
                    && p.p_cost() <= MAX_P_COST => {}
            _ => {
                tracing::warn!(
                    "refusing to verify against a hash with out-of-bounds argon2 parameters"
                );
                return false;
            }
        }
        Argon2::default()
            .verify_password(attempt.as_bytes(), &parsed)
            .is_ok()
    }
}

/// How many password checks may run at once: each holds argon2's memory (19 MiB by
/// default) for tens of milliseconds, so unbounded concurrency is unbounded memory.
pub(crate) struct HashSlots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// One running password check; dropping it frees the slot.
pub(crate) struct HashSlot<'a>(&'a HashSlots);

impl HashSlots {
    pub(crate) fn new(n: usize) -> Self {
        HashSlots {
            free: Mutex::new(n.max(1)),
            freed: Condvar::new(),
        }
    }

    /// A slot, waiting at most `wait`; `None` if none came free in time.
    pub(crate) fn acquire(&self, wait: Duration) -> Option<HashSlot<'_>> {
        let deadline = Instant::now() + wait;
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            free = self
                .freed
                .wait_timeout(free, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *free -= 1;
        Some(HashSlot(self))
    }
}

impl Drop for HashSlot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.freed.notify_one();
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
    fn a_hash_asking_for_too_much_memory_is_not_verified() {
        // A valid PHC string, crafted with m = 4 GiB: refused before argon2 runs.
        let h = hash_password("s3cret")
            .unwrap()
            .replace("m=19456", "m=4194304");
        assert!(h.contains("m=4194304"), "{h}");
        assert!(!Argon2Verifier.verify(&h, "s3cret"));
    }

    #[test]
    fn slots_bound_concurrency_and_time_out() {
        let slots = HashSlots::new(1);
        let held = slots.acquire(Duration::ZERO).unwrap();
        assert!(slots.acquire(Duration::from_millis(1)).is_none());
        drop(held);
        assert!(slots.acquire(Duration::ZERO).is_some());
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
