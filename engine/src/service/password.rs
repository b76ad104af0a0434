//! argon2id password hashing and verification for the service (the core only sees the
//! [`PasswordVerifier`] trait).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

/// The threads that run password checks: a fixed few (one per core), fed by a bounded
/// queue. Each check holds argon2's memory (19 MiB by default) for tens of
/// milliseconds, and the allocator keeps what a thread used, so both the checks running
/// at once and the threads that ever ran one are bounded; a request that finds the queue
/// full is refused at once as busy rather than waiting without bound.
///
/// One source (a remote IP address) may hold at most `per_source` places, queued or
/// running: a flood from one address is refused as busy while everyone else's checks
/// still find room (without it, a flood filled the queue and legitimate joins were told
/// to retry, docs/benchmarks.md).
pub(crate) struct HashPool {
    jobs: Mutex<Option<std::sync::mpsc::SyncSender<HashJob>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    held: Arc<Held>,
}

/// Places held per source; entries leave the map when they reach zero, so it holds at
/// most as many sources as the queue and workers have places.
struct Held {
    per_source: usize,
    by_source: Mutex<HashMap<String, usize>>,
}

impl Held {
    fn take(&self, source: &str) -> bool {
        let mut m = self.by_source.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(source.to_owned()).or_insert(0);
        if *n >= self.per_source {
            return false;
        }
        *n += 1;
        true
    }

    fn give_back(&self, source: &str) {
        let mut m = self.by_source.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(source);
            }
        }
    }
}

struct HashJob {
    source: Option<String>,
    hashes: Vec<String>,
    attempts: Vec<String>,
    reply: tokio::sync::oneshot::Sender<Prechecked>,
}

/// Why a check was not run.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HashPoolError {
    /// The queue is full.
    Busy,
    /// The pool is stopping.
    Stopped,
}

impl HashPool {
    /// `workers` threads, room for `queue` waiting checks, at most `per_source` places
    /// for one source.
    pub(crate) fn new(workers: usize, queue: usize, per_source: usize) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<HashJob>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let held = Arc::new(Held {
            per_source: per_source.max(1),
            by_source: Mutex::new(HashMap::new()),
        });
        let mut threads = Vec::new();
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            let held = held.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("password-check-{i}"))
                    .spawn(move || loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok(job) = job else {
                            return;
                        };
                        let verdicts = Prechecked::compute(&job.hashes, &job.attempts);
                        if let Some(s) = &job.source {
                            held.give_back(s);
                        }
                        let _ = job.reply.send(verdicts);
                    })?,
            );
        }
        Ok(HashPool {
            jobs: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
            held,
        })
    }

    /// Queues a check for `source` (a remote IP address, if known); the receiver yields
    /// its verdicts.
    pub(crate) fn submit(
        &self,
        source: Option<&str>,
        hashes: Vec<String>,
        attempts: Vec<String>,
    ) -> Result<tokio::sync::oneshot::Receiver<Prechecked>, HashPoolError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let tx = jobs.as_ref().ok_or(HashPoolError::Stopped)?;
        if let Some(s) = source {
            if !self.held.take(s) {
                return Err(HashPoolError::Busy);
            }
        }
        let job = HashJob {
            source: source.map(str::to_owned),
            hashes,
            attempts,
            reply,
        };
        let refused = match tx.try_send(job) {
            Ok(()) => return Ok(rx),
            Err(std::sync::mpsc::TrySendError::Full(_)) => HashPoolError::Busy,
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => HashPoolError::Stopped,
        };
        if let Some(s) = source {
            self.held.give_back(s);
        }
        Err(refused)
    }

    /// Lets queued checks finish, then ends the threads.
    pub(crate) fn stop(&self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        for t in std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner())) {
            let _ = t.join();
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
    fn a_hash_asking_for_too_much_memory_is_not_verified() {
        // A valid PHC string, crafted with m = 4 GiB: refused before argon2 runs.
        let h = hash_password("s3cret")
            .unwrap()
            .replace("m=19456", "m=4194304");
        assert!(h.contains("m=4194304"), "{h}");
        assert!(!Argon2Verifier.verify(&h, "s3cret"));
    }

    #[test]
    fn a_full_queue_refuses_at_once_and_queued_checks_are_answered() {
        let pool = HashPool::new(1, 1, 8).unwrap();
        let h = hash_password("pw").unwrap();
        // One running (or queued) and one queued fill a pool of one worker and one place;
        // sending many more must meet a full queue.
        let mut answers = Vec::new();
        let mut busy = 0;
        for _ in 0..50 {
            match pool.submit(None, vec![h.clone()], vec!["pw".into()]) {
                Ok(rx) => answers.push(rx),
                Err(HashPoolError::Busy) => busy += 1,
                Err(HashPoolError::Stopped) => panic!("stopped"),
            }
        }
        assert!(busy > 0);
        for rx in answers {
            assert!(rx.blocking_recv().unwrap().verify(&h, "pw"));
        }
        pool.stop();
        assert_eq!(
            pool.submit(None, vec![], vec![]).err(),
            Some(HashPoolError::Stopped)
        );
    }

    #[test]
    fn one_source_cannot_take_every_place() {
        let pool = HashPool::new(1, 16, 2).unwrap();
        let h = hash_password("pw").unwrap();
        let check = |source| pool.submit(Some(source), vec![h.clone()], vec!["pw".into()]);
        let flood: Vec<_> = (0..10).map(|_| check("192.0.2.66")).collect();
        let admitted: Vec<_> = flood.into_iter().filter_map(Result::ok).collect();
        assert_eq!(admitted.len(), 2, "a source holds at most its share");
        // Someone else still gets in while the flood's places are held.
        let other = check("198.51.100.7").expect("room for another source");
        assert!(other.blocking_recv().unwrap().verify(&h, "pw"));
        // Once answered, the source's places come back.
        for rx in admitted {
            assert!(rx.blocking_recv().unwrap().verify(&h, "pw"));
        }
        assert!(check("192.0.2.66").is_ok());
        pool.stop();
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
