//! Where IMC lives in SIP's URI space: the manager URI, the room URIs
//! (`sip:<prefix><room>@<domain>`), and how the room and user arguments of a command
//! become a [`RoomName`] and an [`Address`].

use conclave_engine::{Address, RoomName, Scheme};

use super::command::ImcError;

/// The SIP domain, the manager's user part and the room prefix, as in Kamailio's imc
/// example (`sip:chat-manager@<domain>`, rooms `sip:chat-<name>@<domain>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressing {
    /// The SIP domain rooms and the manager live in.
    pub domain: String,
    /// The manager's user part (`chat-manager`).
    pub manager_user: String,
    /// What a room URI's user part starts with (`chat-`); the rest is the room name.
    pub room_prefix: String,
    /// The command character (`#`), which the invitation notice names; [`super::Imc::new`]
    /// sets it from its own argument.
    pub command_char: char,
}

/// What a `MESSAGE`'s Request-URI names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The conference manager.
    Manager,
    /// One room (whether it exists is the engine's business).
    Room(RoomName),
    /// Not an IMC URI at all.
    Other,
}

impl Addressing {
    /// Kamailio's defaults for `domain`: `chat-manager`, rooms `chat-<name>`, `#`.
    pub fn new(domain: impl Into<String>) -> Self {
        Addressing {
            domain: domain.into(),
            manager_user: "chat-manager".into(),
            room_prefix: "chat-".into(),
            command_char: '#',
        }
    }

    /// The room's URI: `sip:chat-<room>@<domain>`.
    pub fn room_uri(&self, room: &RoomName) -> String {
        format!("sip:{}{}@{}", self.room_prefix, room, self.domain)
    }

    /// The manager's URI: `sip:chat-manager@<domain>`.
    pub fn manager_uri(&self) -> String {
        format!("sip:{}@{}", self.manager_user, self.domain)
    }

    /// What a Request-URI with this user part and host names. The host must be the
    /// domain (compared without case, as DNS names are); the manager's user part wins
    /// over a room that would have the same spelling.
    pub fn target(&self, request_uri_user: &str, host: &str) -> Target {
        if !host.eq_ignore_ascii_case(&self.domain) {
            return Target::Other;
        }
        if request_uri_user == self.manager_user {
            return Target::Manager;
        }
        match request_uri_user
            .strip_prefix(self.room_prefix.as_str())
            .map(RoomName::lookup)
        {
            Some(Ok(room)) => Target::Room(room),
            _ => Target::Other,
        }
    }

    /// The room a command argument names, or the room the command was sent to when it
    /// names none. An argument is a room URI (`sip:chat-x@domain`, `chat-x@domain`), a
    /// room URI's user part (`chat-x`) or a bare room name (`x`).
    pub fn room_arg(&self, arg: Option<&str>, target: &Target) -> Result<RoomName, ImcError> {
        let Some(arg) = arg else {
            return match target {
                Target::Room(r) => Ok(r.clone()),
                _ => Err(ImcError::NoRoom),
            };
        };
        let invalid = || ImcError::InvalidRoom(super::notice::clip(arg));
        let bare = arg.strip_prefix("sip:").unwrap_or(arg);
        let name = match bare.rsplit_once('@') {
            Some((user, host)) => {
                if !host.eq_ignore_ascii_case(&self.domain) {
                    return Err(invalid());
                }
                user.strip_prefix(self.room_prefix.as_str())
                    .ok_or_else(invalid)?
            }
            None if bare.len() != arg.len() => return Err(invalid()),
            None => bare.strip_prefix(self.room_prefix.as_str()).unwrap_or(bare),
        };
        RoomName::lookup(name).map_err(|_| invalid())
    }

    /// The person a command argument names: an address (`sip:john@x`, `xmpp:john@x`),
    /// `john@host` (SIP), or a bare user name, which is `sip:<user>@<domain>` as in
    /// Kamailio. Email addresses are refused: an IMC invitation goes to someone who can
    /// `#accept` it.
    pub fn user_arg(&self, arg: &str) -> Result<Address, ImcError> {
        let invalid = || ImcError::InvalidUser(super::notice::clip(arg));
        let full = if arg.contains(':') {
            arg.to_owned()
        } else if arg.contains('@') {
            format!("sip:{arg}")
        } else {
            format!("sip:{arg}@{}", self.domain)
        };
        let address = Address::parse(&full).map_err(|_| invalid())?;
        if address.scheme() == Scheme::Mailto {
            return Err(invalid());
        }
        Ok(address)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn a() -> Addressing {
        Addressing::new("example.org")
    }

    fn room(s: &str) -> RoomName {
        RoomName::from_stored(s.into())
    }

    #[test]
    fn uris_follow_the_prefix() {
        assert_eq!(a().room_uri(&room("000")), "sip:chat-000@example.org");
        assert_eq!(a().manager_uri(), "sip:chat-manager@example.org");
    }

    #[test]
    fn targets() {
        assert_eq!(a().target("chat-manager", "EXAMPLE.org"), Target::Manager);
        assert_eq!(
            a().target("chat-000", "example.org"),
            Target::Room(room("000"))
        );
        assert_eq!(a().target("chat-000", "other.org"), Target::Other);
        assert_eq!(a().target("alice", "example.org"), Target::Other);
        assert_eq!(a().target("chat-", "example.org"), Target::Other);
    }

    #[test]
    fn room_arguments_in_every_form() {
        let t = Target::Manager;
        for arg in [
            "sip:chat-x@example.org",
            "chat-x@example.org",
            "chat-x",
            "x",
        ] {
            assert_eq!(a().room_arg(Some(arg), &t), Ok(room("x")), "{arg}");
        }
        assert_eq!(a().room_arg(None, &Target::Room(room("y"))), Ok(room("y")));
        assert_eq!(a().room_arg(None, &t), Err(ImcError::NoRoom));
        assert!(a().room_arg(Some("chat-x@other.org"), &t).is_err());
        assert!(a().room_arg(Some("bob@example.org"), &t).is_err());
        assert!(a().room_arg(Some("sip:x"), &t).is_err());
    }

    #[test]
    fn user_arguments_default_to_the_domain() {
        let sip = |s: &str| Address::parse(s).unwrap();
        assert_eq!(a().user_arg("john"), Ok(sip("sip:john@example.org")));
        assert_eq!(a().user_arg("john@x.org"), Ok(sip("sip:john@x.org")));
        assert_eq!(a().user_arg("sip:john@x.org"), Ok(sip("sip:john@x.org")));
        assert_eq!(a().user_arg("xmpp:j@x.org"), Ok(sip("xmpp:j@x.org")));
        assert!(a().user_arg("mailto:j@x.org").is_err());
        assert!(a().user_arg("sip:j;x=1@x.org").is_err());
    }
}
