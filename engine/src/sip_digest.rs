//! SIP digest credentials as the engine stores them: HA1 values (RFC 7616 §3.4.2,
//! `H(username ":" realm ":" password)`), never the password. The admin API computes
//! them with [`ha1`]; `decide` checks their shape with [`is_ha1`]; the SIP gateway's
//! registrar verifies responses against them.

use md5::{Digest as _, Md5};
use sha2::Sha256;

/// The digest algorithms a credential is stored for (RFC 8760: SHA-256 preferred, MD5
/// for older phones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// `MD5`: 32 lowercase hex digits.
    Md5,
    /// `SHA-256`: 64 lowercase hex digits.
    Sha256,
}

impl DigestAlgorithm {
    /// The token as in `algorithm=` (RFC 7616 §6.1).
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }

    /// Length of a hash in lowercase hex.
    pub fn hex_len(self) -> usize {
        match self {
            DigestAlgorithm::Md5 => 32,
            DigestAlgorithm::Sha256 => 64,
        }
    }

    /// `H(data)` in lowercase hex.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            DigestAlgorithm::Md5 => hex(&Md5::digest(data)),
            DigestAlgorithm::Sha256 => hex(&Sha256::digest(data)),
        }
    }
}

/// The algorithms every stored credential holds, in the order JSON views list them.
pub const ALGORITHMS: [DigestAlgorithm; 2] = [DigestAlgorithm::Md5, DigestAlgorithm::Sha256];

/// Longest realm accepted (it travels in every 401 and is part of every HA1).
pub const MAX_REALM_LEN: usize = 255;

/// HA1 = `H(username ":" realm ":" password)` in lowercase hex (RFC 7616 §3.4.2). The
/// username is the user part of the `sip:` address.
pub fn ha1(algorithm: DigestAlgorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hash_hex(format!("{username}:{realm}:{password}").as_bytes())
}

/// Whether `value` has the shape of an HA1 of `algorithm`: lowercase hex of the right
/// length (what the registrar compares against, so anything else could never match).
pub fn is_ha1(algorithm: DigestAlgorithm, value: &str) -> bool {
    value.len() == algorithm.hex_len()
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Why a realm is refused, if it is (besides control characters, which the text rule
/// refuses first): empty, too long, or holding `"` or `\`, which would have to be
/// escaped in every challenge and that no phone's configuration expects.
pub fn realm_problem(realm: &str) -> Option<&'static str> {
    if realm.is_empty() {
        Some("the realm is empty")
    } else if realm.len() > MAX_REALM_LEN {
        Some("the realm is longer than 255 bytes")
    } else if realm.contains(['"', '\\']) {
        Some("the realm may not contain '\"' or '\\'")
    } else {
        None
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ha1_matches_rfc_7616_example() {
        // RFC 7616 §3.9.1: Mufasa / http-auth@example.org / "Circle of Life".
        let md5 = ha1(
            DigestAlgorithm::Md5,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        assert_eq!(
            md5,
            DigestAlgorithm::Md5.hash_hex(b"Mufasa:http-auth@example.org:Circle of Life")
        );
        assert!(is_ha1(DigestAlgorithm::Md5, &md5));
        let sha = ha1(
            DigestAlgorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        assert!(is_ha1(DigestAlgorithm::Sha256, &sha));
        assert_eq!(
            DigestAlgorithm::Md5.hash_hex(b""),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            DigestAlgorithm::Sha256.hash_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn is_ha1_refuses_uppercase_and_wrong_lengths() {
        assert!(!is_ha1(
            DigestAlgorithm::Md5,
            "D41D8CD98F00B204E9800998ECF8427E"
        ));
        assert!(!is_ha1(
            DigestAlgorithm::Md5,
            "d41d8cd98f00b204e9800998ecf8427"
        ));
        assert!(!is_ha1(
            DigestAlgorithm::Sha256,
            "d41d8cd98f00b204e9800998ecf8427e"
        ));
        assert!(!is_ha1(
            DigestAlgorithm::Md5,
            "g41d8cd98f00b204e9800998ecf8427e"
        ));
    }
}
