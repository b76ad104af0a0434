//! Guest names that cannot be taken over.
//!
//! A guest (`web:alice`) is anyone who claims a free `web:` name without an account. Once
//! a guest name has standing in some room (a role, a presence, a place in a lobby), the
//! next anonymous claim of it must present the name's guest key, which the first
//! claimant received with their token: otherwise whoever typed the same name after
//! Alice left would inherit her ownership of a room. The key is a keyed hash of the name
//! under a secret kept in the data directory, so it survives restarts and needs no
//! journaled state: the engine's state says whether a name has standing, the secret
//! says whether a key is the name's.

use std::path::Path;

use conclave_engine::{Address, Principal, State};

/// File in the data directory holding the secret.
const KEY_FILE: &str = "guest-key";

pub(crate) struct GuestKeys {
    secret: [u8; 32],
}

impl GuestKeys {
    /// The secret from `data_dir`, created (private, durable) on first use. A data
    /// directory that cannot hold it gets a secret for this run only: guest keys then
    /// stop working at the next restart, and that is logged.
    pub(crate) fn load(data_dir: &Path) -> GuestKeys {
        GuestKeys {
            secret: load_secret(&data_dir.join(KEY_FILE)),
        }
    }

    /// The guest key of a name.
    pub(crate) fn key_for(&self, a: &Address) -> String {
        let mac = blake3::keyed_hash(
            &self.secret,
            format!("conclave guest key v1 {a}").as_bytes(),
        );
        conclave_journal::hex(mac.as_bytes())
    }

    /// Whether `presented` is the guest key of `a` (compared in constant time).
    pub(crate) fn verify(&self, a: &Address, presented: Option<&str>) -> bool {
        let Some(p) = presented else { return false };
        let want = blake3::hash(self.key_for(a).as_bytes());
        blake3::hash(p.as_bytes()) == want
    }
}

/// A 32-byte secret kept in `path` (created private and durable on first use), or, if
/// the file cannot be read or written, a secret for this run only (logged): what it
/// protects then lasts until the next restart.
pub(crate) fn load_secret(path: &Path) -> [u8; 32] {
    load_or_create(path).unwrap_or_else(|e| {
        tracing::error!(error = %e, path = %path.display(), "cannot keep a secret in the data directory; using one for this run only");
        let mut secret = [0u8; 32];
        let _ = getrandom::fill(&mut secret);
        secret
    })
}

fn load_or_create(path: &Path) -> std::io::Result<[u8; 32]> {
    match std::fs::read_to_string(path) {
        Ok(text) => conclave_replay::verify::unhex::<32>(text.trim()).map_err(|why| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {why}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
            let text = format!("{}\n", conclave_journal::hex(&secret));
            conclave_journal::durable::create_private_file(path, text.as_bytes())?;
            Ok(secret)
        }
        Err(e) => Err(e),
    }
}

/// Whether a guest name has standing anywhere: a role in a room, a presence, or a place
/// in a lobby. (An open invitation does not count: its id is the invitee's secret.)
pub(crate) fn has_standing(st: &State, a: &Address) -> bool {
    let p = Principal::Address(a.clone());
    st.rooms.values().any(|r| {
        r.affiliations.contains_key(&p) || r.members.contains_key(&p) || r.lobby.contains_key(&p)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_key_is_the_names_own_and_survives_reloading() {
        let dir = tempfile::tempdir().unwrap();
        let alice = Address::parse("web:alice").unwrap();
        let bob = Address::parse("web:bob").unwrap();
        let keys = GuestKeys::load(dir.path());
        let key = keys.key_for(&alice);
        assert!(keys.verify(&alice, Some(&key)));
        assert!(!keys.verify(&bob, Some(&key)));
        assert!(!keys.verify(&alice, None));
        assert!(GuestKeys::load(dir.path()).verify(&alice, Some(&key)));
    }
}
