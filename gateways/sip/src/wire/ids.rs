//! Random Via branches, tags and Call-IDs (RFC 3261 §8.1.1.4, §8.1.1.7, §19.3).

use std::sync::atomic::{AtomicU64, Ordering};

/// The RFC 3261 branch prefix (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Prefix of the To tags the layer puts on its own stateless answers, so that the ACK
/// of such an answer can be recognised and absorbed (it belongs to no dialog).
pub const STATELESS_TAG_PREFIX: &str = "sl.";

/// `n` random bytes as lowercase hex. getrandom failing (no entropy source) falls back
/// to a hash of a counter and the clock: unique, if not unpredictable.
fn random_hex<const N: usize>() -> String {
    let mut buf = [0u8; N];
    if getrandom::fill(&mut buf).is_err() {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = blake3::Hasher::new();
        hasher.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        hasher.update(&nanos.to_le_bytes());
        let hash = hasher.finalize();
        for (dst, src) in buf.iter_mut().zip(hash.as_bytes().iter().cycle()) {
            *dst = *src;
        }
    }
    let mut out = String::with_capacity(N * 2);
    for b in buf {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: [u8; 16] = *b"0123456789abcdef";

/// A new Via branch: the magic cookie and 96 random bits.
pub fn new_branch() -> String {
    format!("{MAGIC_COOKIE}{}", random_hex::<12>())
}

/// A new From/To tag (64 random bits).
pub fn new_tag() -> String {
    random_hex::<8>()
}

/// A To tag for a stateless answer (see [`STATELESS_TAG_PREFIX`]).
pub fn new_stateless_tag() -> String {
    format!("{STATELESS_TAG_PREFIX}{}", random_hex::<8>())
}

/// A new Call-ID (128 random bits), `@host` appended when given.
pub fn new_call_id(host: Option<&str>) -> String {
    match host {
        Some(host) => format!("{}@{host}", random_hex::<16>()),
        None => random_hex::<16>(),
    }
}
