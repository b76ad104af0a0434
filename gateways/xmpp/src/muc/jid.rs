//! JIDs as the MUC core needs them: split into parts, room JIDs mapped to Conclave room
//! names, nicknames checked. Prosody has already applied its stringprep to what it
//! routes; these checks bound what a hostile client can still put in a resource.

use conclave_engine::ids::{Address, RoomName};

use crate::core::escape_node;

/// Longest nickname accepted (RFC 7622 bounds a resourcepart at 1023 bytes; prosody's
/// MUC accepts what fits; a nickname longer than this is no one's name).
pub const MAX_NICK_CHARS: usize = 64;

/// A JID split into its parts (RFC 7622 §3.1), as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jid<'a> {
    /// The localpart, if any.
    pub node: Option<&'a str>,
    /// The domainpart.
    pub domain: &'a str,
    /// The resourcepart, if any.
    pub resource: Option<&'a str>,
}

impl<'a> Jid<'a> {
    /// Splits `s`; `None` for an empty domain or an empty present part.
    pub fn parse(s: &'a str) -> Option<Jid<'a>> {
        let (bare, resource) = match s.split_once('/') {
            Some((b, r)) => (b, Some(r)),
            None => (s, None),
        };
        let (node, domain) = match bare.split_once('@') {
            Some((n, d)) => (Some(n), d),
            None => (None, bare),
        };
        if domain.is_empty() || node == Some("") || resource == Some("") {
            return None;
        }
        Some(Jid {
            node,
            domain,
            resource,
        })
    }

    /// `node@domain` or `domain`.
    pub fn bare(&self) -> String {
        match self.node {
            Some(n) => format!("{n}@{}", self.domain),
            None => self.domain.to_owned(),
        }
    }
}

/// The Conclave identity of a user's JID: `xmpp:node@domain` (resources are sessions,
/// not identities). `None` for a JID without a localpart (a server or component) or one
/// the engine's address rules refuse.
pub fn user_address(jid: &Jid<'_>) -> Option<Address> {
    let node = jid.node?;
    Address::parse(&format!("xmpp:{node}@{}", jid.domain)).ok()
}

/// The bare JID of a user identity (`xmpp:a@b` → `a@b`); `None` for other schemes.
pub fn address_jid(address: &Address) -> Option<String> {
    let s = address.to_string();
    s.strip_prefix("xmpp:").map(str::to_owned)
}

/// XEP-0106 unescaping of a room localpart; `None` when an escape is malformed in a way
/// that would change meaning (an unknown `\xx` is kept as written, as XEP-0106 says).
pub fn unescape_node(node: &str) -> String {
    let mut out = String::with_capacity(node.len());
    let mut rest = node;
    while let Some(pos) = rest.find('\\') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        let decoded = after.get(1..3).and_then(|hex| match hex {
            "20" => Some(' '),
            "22" => Some('"'),
            "26" => Some('&'),
            "27" => Some('\''),
            "2f" => Some('/'),
            "3a" => Some(':'),
            "3c" => Some('<'),
            "3e" => Some('>'),
            "40" => Some('@'),
            "5c" => Some('\\'),
            _ => None,
        });
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[3..];
            }
            None => {
                out.push('\\');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The room a room JID's localpart names: the existing room whose escaped name is that
/// localpart (servers fold localparts to lower case, so the match ignores case), else
/// the unescaped localpart as the name of a room that does not exist yet.
pub fn room_for_node<'r>(
    node: &str,
    existing: impl IntoIterator<Item = &'r RoomName>,
) -> Result<RoomName, String> {
    let wanted = node.to_lowercase();
    for name in existing {
        if escape_node(name.as_str()) == wanted {
            return Ok(name.clone());
        }
    }
    RoomName::lookup(&unescape_node(&wanted)).map_err(|e| e.to_string())
}

/// Checks a nickname: 1..=[`MAX_NICK_CHARS`] characters, no control or format
/// characters, not only spaces (a nickname is shown to people).
pub fn check_nick(nick: &str) -> Result<(), &'static str> {
    let len = nick.chars().count();
    if len == 0 || len > MAX_NICK_CHARS {
        return Err("a nickname has 1 to 64 characters");
    }
    if nick.trim().is_empty() {
        return Err("a nickname cannot be blank");
    }
    if conclave_engine::text::check(nick, conclave_engine::text::TextKind::Line).is_err() {
        return Err("a nickname cannot hold control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_full_bare_and_domain_jids() {
        let j = Jid::parse("room@conf.example/nick/with/slash");
        assert_eq!(
            j,
            Some(Jid {
                node: Some("room"),
                domain: "conf.example",
                resource: Some("nick/with/slash")
            })
        );
        assert_eq!(Jid::parse("conf.example").map(|j| j.node), Some(None));
        assert_eq!(Jid::parse("@x"), None);
        assert_eq!(Jid::parse("a@x/"), None);
        assert_eq!(Jid::parse(""), None);
    }

    #[test]
    fn room_localparts_unescape_and_find_rooms_whatever_their_case() {
        assert_eq!(unescape_node("team\\20room"), "team room");
        assert_eq!(unescape_node("a\\zzb"), "a\\zzb");
        let rooms = [RoomName::from_stored("Team Room".into())];
        assert_eq!(
            room_for_node("team\\20room", rooms.iter()).map(|r| r.as_str().to_owned()),
            Ok("Team Room".to_owned())
        );
        assert_eq!(
            room_for_node("Lobby", rooms.iter()).map(|r| r.as_str().to_owned()),
            Ok("lobby".to_owned())
        );
    }

    #[test]
    fn nicknames_are_bounded_and_printable() {
        assert!(check_nick("Alice").is_ok());
        assert!(check_nick("").is_err());
        assert!(check_nick("   ").is_err());
        assert!(check_nick("a\u{7}b").is_err());
        assert!(check_nick(&"x".repeat(65)).is_err());
    }
}
