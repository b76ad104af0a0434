//! Stored forms of remote addresses, remembered by the decider.
//!
//! A client keeps its address across commands, and turning it into its stored form (a
//! keyed BLAKE3 when `obfuscate_ips` is on, hex-formatted) was 13% of the decider's time
//! at 256 clients (docs/benchmarks.md). The memo is bounded: past [`RemoteMemo::MAX`]
//! addresses it starts over, so a flood of new addresses costs what it cost before.

use std::collections::HashMap;

use crate::policy::{stored_remote_addr, IpKey};

#[derive(Debug, Default)]
pub(super) struct RemoteMemo {
    /// The policy the stored forms were made under; a change forgets them all.
    obfuscate: bool,
    stored: HashMap<String, String>,
}

impl RemoteMemo {
    /// At most this many addresses are remembered.
    pub(super) const MAX: usize = 4096;

    /// `raw`'s stored form under `obfuscate` and `key` (the key is the engine's, fixed
    /// for the decider's life).
    pub(super) fn stored(&mut self, raw: &str, obfuscate: bool, key: &IpKey) -> String {
        if obfuscate != self.obfuscate {
            self.stored.clear();
            self.obfuscate = obfuscate;
        }
        if let Some(s) = self.stored.get(raw) {
            return s.clone();
        }
        let s = stored_remote_addr(raw, obfuscate, key);
        if self.stored.len() >= Self::MAX {
            self.stored.clear();
        }
        self.stored.insert(raw.to_owned(), s.clone());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_forms_equal_fresh_ones_under_either_policy() {
        let key = IpKey([7; 32]);
        let mut memo = RemoteMemo::default();
        for obfuscate in [true, false, true] {
            for raw in ["192.0.2.1:5060", "192.0.2.1:5060", "[::1]:80", "junk"] {
                assert_eq!(
                    memo.stored(raw, obfuscate, &key),
                    stored_remote_addr(raw, obfuscate, &key)
                );
            }
        }
    }

    #[test]
    fn the_memo_stays_bounded() {
        let key = IpKey([7; 32]);
        let mut memo = RemoteMemo::default();
        for i in 0..(RemoteMemo::MAX + 10) {
            memo.stored(&format!("10.0.{}.{}", i / 256, i % 256), true, &key);
        }
        assert!(memo.stored.len() <= RemoteMemo::MAX);
    }
}
