//! Identifiers and names, validated at the edge.
//!
//! Everything that arrives from a gateway (a SIP URI, a JID, a room name typed in a
//! browser) passes through one of the parsers here before the domain sees it. The parsers
//! are deliberately strict: hostile input (overlong strings, control characters, URI
//! parameters smuggled into an identity) is refused with a typed error instead of being
//! "cleaned up", so that one person always has exactly one spelling.

use std::fmt;

use caseless::Caseless;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use crate::text::{self, TextKind};

/// Longest accepted address, scheme included. SIP and XMPP both allow more, but nobody
/// needs a 1 KiB identity and short limits keep logs and indexes bounded.
pub const MAX_ADDRESS_LEN: usize = 256;
/// Longest accepted local part (user / node / mailbox / web name).
pub const MAX_LOCAL_LEN: usize = 64;
/// Longest accepted domain part (RFC 1035 limit).
pub const MAX_DOMAIN_LEN: usize = 253;
/// Longest opaque id (account, session, invitation, message).
pub const MAX_ID_LEN: usize = 128;
/// Longest display name, in characters (Mumble's user name limit).
pub const MAX_DISPLAY_NAME_LEN: usize = 64;

// ---- when two names are the same name ----
//
// Names people choose (rooms, guest names) are compared in their compatibility caseless
// form, and two names whose UTS #39 skeletons agree look alike. The keys are derived
// data kept in the state (`State::room_keys`), so this file is among the sources that
// fingerprint checkpoints: changing these functions, or moving the pinned versions of
// caseless, unicode-normalization or unicode-security (whose tables they use), must
// come with an edit here so that old checkpoints are rebuilt. Key data: caseless 0.2.2,
// unicode-normalization 0.1.26, unicode-security 0.1.3.

/// The compatibility caseless form of a name (Unicode D146: NFD, case fold, NFKD, case
/// fold, then composed with NFKC): `Alice`, `ALICE` and the full-width `ＡＬＩＣＥ` are all
/// `alice`, `Straße` is `strasse`.
pub fn fold_name(s: &str) -> String {
    s.chars()
        .nfd()
        .default_case_fold()
        .nfkd()
        .default_case_fold()
        .nfkc()
        .collect()
}

/// The keys under which a name must be unique, runs of whitespace counting as one space:
/// the UTS #39 skeleton of its caseless form, and the same taken after a first skeleton
/// of its NFKC form (case matters to some confusables: a capital `I` looks like a small
/// `l`, and so does a Cyrillic `І`). Two names that share a key look alike: `paypal`,
/// `PayPal`, `pаypal` (Cyrillic `а`), `paypaI` (capital `i`) and `PAYPAІ` all share one.
pub fn name_keys(s: &str) -> Vec<String> {
    let skeleton = |t: &str| -> String {
        let spaced = t.split_whitespace().collect::<Vec<_>>().join(" ");
        unicode_security::skeleton(&spaced).collect()
    };
    let drawn = skeleton(&s.nfkc().collect::<String>());
    let mut keys = vec![skeleton(&fold_name(s)), skeleton(&fold_name(&drawn))];
    keys.dedup();
    keys
}

/// The protocol an identity address belongs to (its URI scheme).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// `sip:user@host` (SIP phones, SIP MESSAGE clients).
    Sip,
    /// `xmpp:node@domain` (bare JID; resources are sessions, not identities).
    Xmpp,
    /// `web:name` (browser participants known by a name only).
    Web,
    /// `mailto:mailbox@domain` (email invitees).
    Mailto,
}

impl Scheme {
    /// The URI scheme as written in addresses.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Xmpp => "xmpp",
            Scheme::Web => "web",
            Scheme::Mailto => "mailto",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    /// Nothing to parse.
    #[error("address is empty")]
    Empty,
    /// Longer than [`MAX_ADDRESS_LEN`] (or a part longer than its own limit).
    #[error("address part {part} is {len} bytes long, at most {max} allowed")]
    TooLong {
        /// Which part: "address", "local" or "domain".
        part: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A control or whitespace character (CR/LF injection, NUL, tabs...).
    #[error("address contains a control or whitespace character at byte {0}")]
    ControlChar(usize),
    /// No `scheme:` prefix.
    #[error("address has no scheme (expected sip:, xmpp:, web: or mailto:)")]
    MissingScheme,
    /// A scheme we do not serve.
    #[error("unknown address scheme {0:?}")]
    UnknownScheme(String),
    /// `user@host` form expected but no `@`.
    #[error("address needs a local part and a domain (local@domain)")]
    MissingAt,
    /// The local part is empty or contains a forbidden character.
    #[error("invalid local part {0:?}")]
    InvalidLocal(String),
    /// The domain is empty or not a hostname / IP literal.
    #[error("invalid domain {0:?}")]
    InvalidDomain(String),
}

/// A protocol-qualified identity: `sip:alice@example.org`, `xmpp:alice@example.org`,
/// `web:alice`, `mailto:alice@example.org`.
///
/// Canonical form: scheme and domain lowercased; the XMPP local part is lowercased too
/// (JID localparts are case-insensitive), SIP users and mailboxes keep their case. A
/// `web:` name is a name people choose, compared as names are ([`fold_name`]): `web:ALICE`
/// and `web:Alice` are `web:alice`, one identity.
/// URI parameters, headers, resources and ports are refused: they describe a session or a
/// route, not a person, and gateways strip them before calling the parser.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    scheme: Scheme,
    local: String,
    domain: Option<String>,
}

impl Address {
    /// Parse and canonicalize an address; see the type docs for the rules.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        if input.is_empty() {
            return Err(AddressError::Empty);
        }
        if input.len() > MAX_ADDRESS_LEN {
            return Err(AddressError::TooLong {
                part: "address",
                len: input.len(),
                max: MAX_ADDRESS_LEN,
            });
        }
        if let Some((pos, _)) = input
            .char_indices()
            .find(|(_, c)| c.is_control() || c.is_whitespace())
        {
            return Err(AddressError::ControlChar(pos));
        }
        let (scheme, rest) = input.split_once(':').ok_or(AddressError::MissingScheme)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "sip" => Scheme::Sip,
            "xmpp" => Scheme::Xmpp,
            "web" => Scheme::Web,
            "mailto" => Scheme::Mailto,
            "" => return Err(AddressError::MissingScheme),
            other => return Err(AddressError::UnknownScheme(truncate(other, 16))),
        };
        if scheme == Scheme::Web {
            check_local(rest, Scheme::Web)?;
            return Ok(Address {
                scheme,
                local: canonical_web_name(rest),
                domain: None,
            });
        }
        let (local, domain) = rest.rsplit_once('@').ok_or(AddressError::MissingAt)?;
        check_local(local, scheme)?;
        let domain = check_domain(domain)?;
        let local = if scheme == Scheme::Xmpp {
            local.to_lowercase()
        } else {
            local.to_owned()
        };
        Ok(Address {
            scheme,
            local,
            domain: Some(domain),
        })
    }

    /// The scheme (protocol) of this identity.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The local part (user, node, mailbox or web name).
    pub fn local(&self) -> &str {
        &self.local
    }

    /// The domain, absent for `web:` names.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// Whether the local part is in its canonical form. Always true but for a `web:` name
    /// whose caseless form would not be a valid name (`web:¼` folds to `1⁄4`): such a name
    /// parses as written, so that what the journal holds still reads, but a new one is
    /// refused at the command boundary.
    pub fn is_canonical(&self) -> bool {
        self.scheme != Scheme::Web || fold_name(&self.local) == self.local
    }
}

/// The canonical spelling of a valid web name: its caseless form when that is still a
/// valid web name (and stable), else the name as written.
fn canonical_web_name(raw: &str) -> String {
    let folded = fold_name(raw);
    if folded != raw && check_local(&folded, Scheme::Web).is_ok() && fold_name(&folded) == folded {
        folded
    } else {
        raw.to_owned()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.domain {
            Some(d) => write!(f, "{}:{}@{}", self.scheme, self.local, d),
            None => write!(f, "{}:{}", self.scheme, self.local),
        }
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

fn check_local(local: &str, scheme: Scheme) -> Result<(), AddressError> {
    if local.is_empty() {
        return Err(AddressError::InvalidLocal(String::new()));
    }
    if local.len() > MAX_LOCAL_LEN {
        return Err(AddressError::TooLong {
            part: "local",
            len: local.len(),
            max: MAX_LOCAL_LEN,
        });
    }
    let ok = match scheme {
        // Web names are shown to people and used in URLs: keep them plain (letters and
        // digits of any script, with the combining marks that scripts such as Devanagari
        // need after the first character).
        Scheme::Web => local.chars().enumerate().all(|(i, c)| {
            c.is_alphanumeric() || matches!(c, '.' | '_' | '-') || (i > 0 && is_combining_mark(c))
        }),
        // Characters that would start a URI parameter, header, resource, port or quote
        // are refused everywhere; RFC 7622 also forbids them in JID localparts.
        _ => !local.chars().any(|c| {
            matches!(
                c,
                '@' | ':'
                    | ';'
                    | '?'
                    | '#'
                    | '/'
                    | '\\'
                    | '<'
                    | '>'
                    | '"'
                    | '\''
                    | '&'
                    | ','
                    | '['
                    | ']'
                    | '('
                    | ')'
                    | '%'
            )
        }),
    };
    if ok && !local.starts_with('.') && !local.ends_with('.') {
        Ok(())
    } else {
        Err(AddressError::InvalidLocal(truncate(local, MAX_LOCAL_LEN)))
    }
}

fn check_domain(domain: &str) -> Result<String, AddressError> {
    let invalid = || AddressError::InvalidDomain(truncate(domain, 64));
    if domain.is_empty() {
        return Err(invalid());
    }
    if domain.len() > MAX_DOMAIN_LEN {
        return Err(AddressError::TooLong {
            part: "domain",
            len: domain.len(),
            max: MAX_DOMAIN_LEN,
        });
    }
    if let Some(inner) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|ip| format!("[{ip}]"))
            .map_err(|_| invalid());
    }
    let lower = domain.to_ascii_lowercase();
    let labels_ok = lower.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if labels_ok {
        Ok(lower)
    } else {
        Err(invalid())
    }
}

/// Why a name or opaque id was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// Too short or too long (in characters).
    #[error("{what} must be {min}..={max} characters long, got {len}")]
    Length {
        /// What was being validated.
        what: &'static str,
        /// Its length in characters.
        len: usize,
        /// Minimum.
        min: usize,
        /// Maximum.
        max: usize,
    },
    /// A character the rule does not allow.
    #[error("{what} contains the character {ch:?}, which is not allowed")]
    Char {
        /// What was being validated.
        what: &'static str,
        /// The first offending character.
        ch: char,
    },
    /// Leading or trailing whitespace.
    #[error("{what} must not start or end with whitespace")]
    Padding {
        /// What was being validated.
        what: &'static str,
    },
}

/// A name rule: allowed characters and length. This is the regex-free equivalent of
/// Mumble's `channelname` / `username` regexes, expressed as "word characters (Unicode
/// letters, digits, `_`, and combining marks after the first character, as in PCRE2's
/// Unicode `\w`) plus a set of extra characters". Whatever the extra characters, a name
/// never holds what [`text::check`] refuses in names (controls, bidirectional and
/// invisible characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRule {
    /// Minimum length in characters.
    pub min_len: usize,
    /// Maximum length in characters.
    pub max_len: usize,
    /// Whether `\w` (Unicode alphanumerics and `_`) is allowed.
    pub word_chars: bool,
    /// Additional allowed characters.
    pub extra: String,
}

impl NameRule {
    /// Mumble's built-in channel name rule, `[ \-=\w\#\[\]\{\}\(\)\@\|]+`, capped at 64.
    pub fn mumble_channel() -> Self {
        NameRule {
            min_len: 1,
            max_len: 64,
            word_chars: true,
            extra: " -=#[]{}()@|".to_owned(),
        }
    }

    /// Mumble's built-in user name rule, `[-=\w\[\]\{\}\(\)\@\|\.]+`, capped at 64.
    pub fn mumble_user() -> Self {
        NameRule {
            min_len: 1,
            max_len: 64,
            word_chars: true,
            extra: "-=[]{}()@|.".to_owned(),
        }
    }

    /// Check `name` against the rule.
    pub fn check(&self, what: &'static str, name: &str) -> Result<(), NameError> {
        text::check(name, TextKind::Name).map_err(|f| NameError::Char { what, ch: f.ch })?;
        let len = name.chars().count();
        if len < self.min_len || len > self.max_len {
            return Err(NameError::Length {
                what,
                len,
                min: self.min_len,
                max: self.max_len,
            });
        }
        if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
            return Err(NameError::Padding { what });
        }
        for (i, ch) in name.chars().enumerate() {
            let word = self.word_chars
                && (ch.is_alphanumeric() || ch == '_' || (i > 0 && is_combining_mark(ch)));
            if !(word || self.extra.contains(ch)) || ch.is_control() {
                return Err(NameError::Char { what, ch });
            }
        }
        Ok(())
    }
}

/// Checks an opaque id: 1..=128 chars of `[A-Za-z0-9._-]`.
fn check_opaque(what: &'static str, s: &str) -> Result<(), NameError> {
    let len = s.chars().count();
    if len == 0 || len > MAX_ID_LEN {
        return Err(NameError::Length {
            what,
            len,
            min: 1,
            max: MAX_ID_LEN,
        });
    }
    match s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(ch) => Err(NameError::Char { what, ch }),
        None => Ok(()),
    }
}

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(String);

        impl $name {
            /// Validate an id coming from outside (`[A-Za-z0-9._-]{1,128}`).
            pub fn parse(s: &str) -> Result<Self, NameError> {
                check_opaque($what, s)?;
                Ok(Self(s.to_owned()))
            }

            /// Rebuild an id read back from the journal without re-validating it: stored
            /// data was valid when written and rules may have changed since.
            pub fn from_stored(s: String) -> Self {
                Self(s)
            }

            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

opaque_id!(
    /// An account: the person behind one or more identities (a Jami account fingerprint
    /// or username, a local user name).
    AccountId,
    "account id"
);
opaque_id!(
    /// One connection of one identity to one room (a SIP dialog, an XMPP full JID, a
    /// browser tab). Gateways choose it; it must be unique within the room.
    SessionId,
    "session id"
);
opaque_id!(
    /// An invitation; also the bearer token of email invitations, so ids are derived
    /// from caller-provided randomness (see [`IdSeed`]).
    InvitationId,
    "invitation id"
);
opaque_id!(
    /// A chat message.
    MessageId,
    "message id"
);
opaque_id!(
    /// A room recording: derived from the command's id seed as invitation and message
    /// ids are (32 lowercase hex), and the name of the directory its files are written in
    /// (`<data>/recordings/<id>/`).
    RecordingId,
    "recording id"
);

/// A room (Mumble channel, VROOM room, IMC room, MUC room). Validated against the
/// server's configurable [`NameRule`] when created. A room keeps its name as written (the
/// name of its stream, what lookups match), but no two rooms have names that look alike:
/// a new room sharing one of [`RoomName::keys`] with an existing one is refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RoomName(String);

impl RoomName {
    /// Validate a room name against `rule`.
    pub fn parse(s: &str, rule: &NameRule) -> Result<Self, NameError> {
        rule.check("room name", s)?;
        Ok(RoomName(s.to_owned()))
    }

    /// Rebuild a stored room name without re-validating it (rules may have changed).
    pub fn from_stored(s: String) -> Self {
        RoomName(s)
    }

    /// Accept a name that only refers to a room (join, kick...): it need not match the
    /// current naming rule (rooms may predate it) but must be sane: 1..=256 characters,
    /// nothing [`text::check`] refuses in a line of text (controls, bidirectional
    /// controls, line separators). The marks and invisible characters that names may no
    /// longer hold are let through here, so that a room named before the rule can still
    /// be joined and destroyed.
    pub fn lookup(s: &str) -> Result<Self, NameError> {
        let len = s.chars().count();
        if len == 0 || len > 256 {
            return Err(NameError::Length {
                what: "room name",
                len,
                min: 1,
                max: 256,
            });
        }
        match text::check(s, TextKind::Line) {
            Err(f) => Err(NameError::Char {
                what: "room name",
                ch: f.ch,
            }),
            Ok(()) => Ok(RoomName(s.to_owned())),
        }
    }

    /// The keys under which the name must be unique ([`name_keys`]).
    pub fn keys(&self) -> Vec<String> {
        name_keys(&self.0)
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a display name (an account's, personal content): 1..=[`MAX_DISPLAY_NAME_LEN`]
/// characters, no leading or trailing whitespace, nothing [`text::check`] refuses in a
/// name. Spaces inside are fine ("Ana María"): display names are not user names, so
/// Mumble's user name rule does not apply to them.
pub fn check_display_name(name: &str) -> Result<(), NameError> {
    let what = "display name";
    let len = name.chars().count();
    if len == 0 || len > MAX_DISPLAY_NAME_LEN {
        return Err(NameError::Length {
            what,
            len,
            min: 1,
            max: MAX_DISPLAY_NAME_LEN,
        });
    }
    text::check(name, TextKind::Name).map_err(|f| NameError::Char { what, ch: f.ch })?;
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(NameError::Padding { what });
    }
    Ok(())
}

/// Who a rule is about: a linked account (so the rule holds on every protocol the person
/// uses) or, for identities not linked to any account, the bare address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Principal {
    /// A person known by an account.
    Account(AccountId),
    /// An identity that is not linked to an account.
    Address(Address),
}

/// Addresses travel as their canonical string (`sip:alice@example.org`) in JSON and
/// checkpoints; deserializing parses, so hostile input is refused the same way.
impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Address::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Principal {
    /// Parses the display form: `account:<id>` or an identity address.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.strip_prefix("account:") {
            Some(id) => AccountId::parse(id)
                .map(Principal::Account)
                .map_err(|e| e.to_string()),
            None => Address::parse(s)
                .map(Principal::Address)
                .map_err(|e| e.to_string()),
        }
    }
}

/// Principals travel as their display form (`account:alice` or an address).
impl Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Principal::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Account(a) => write!(f, "account:{a}"),
            Principal::Address(a) => write!(f, "{a}"),
        }
    }
}

/// Deterministic id source: the caller supplies a seed (fresh randomness, or the
/// correlation id in tests) and the core derives ids from it with a hash, so `decide`
/// stays pure and replayable while ids remain unguessable in production.
#[derive(Clone, PartialEq, Eq)]
pub struct IdSeed(String);

impl IdSeed {
    /// Wrap caller-provided seed material.
    pub fn new(seed: impl Into<String>) -> Self {
        IdSeed(seed.into())
    }

    /// Derive the `n`th id for `purpose` (e.g. "invitation"): 32 lowercase hex chars.
    pub fn derive(&self, purpose: &str, n: u32) -> String {
        let mut h = blake3::Hasher::new_derive_key("conclave-engine ids v1");
        h.update(self.0.as_bytes());
        h.update(&[0]);
        h.update(purpose.as_bytes());
        h.update(&n.to_le_bytes());
        let hex = h.finalize().to_hex();
        hex.as_str()[..32].to_owned()
    }
}

impl fmt::Debug for IdSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The seed is the secret behind bearer invitation ids: never print it.
        f.write_str("IdSeed(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalizes_addresses() {
        let a = Address::parse("SIP:Alice@Example.ORG").unwrap();
        assert_eq!(a.to_string(), "sip:Alice@example.org");
        let x = Address::parse("xmpp:Alice@Example.org").unwrap();
        assert_eq!(x.to_string(), "xmpp:alice@example.org");
        assert_eq!(Address::parse("web:bob").unwrap().to_string(), "web:bob");
        assert!(Address::parse("sip:a@[::1]").is_ok());
        assert!(Address::parse("mailto:a.b@mail.example.org").is_ok());
    }

    #[test]
    fn rejects_hostile_addresses() {
        assert_eq!(Address::parse(""), Err(AddressError::Empty));
        assert_eq!(
            Address::parse("sip:a@b\r\nVia: x"),
            Err(AddressError::ControlChar(7))
        );
        assert!(matches!(
            Address::parse(&format!("sip:{}@x.org", "a".repeat(300))),
            Err(AddressError::TooLong { .. })
        ));
        assert!(matches!(
            Address::parse(&format!("sip:{}@x.org", "a".repeat(65))),
            Err(AddressError::TooLong { part: "local", .. })
        ));
        assert_eq!(Address::parse("alice"), Err(AddressError::MissingScheme));
        assert!(matches!(
            Address::parse("http:a@b"),
            Err(AddressError::UnknownScheme(_))
        ));
        assert_eq!(Address::parse("sip:alice"), Err(AddressError::MissingAt));
        assert!(matches!(
            Address::parse("sip:a;transport=tcp@x.org"),
            Err(AddressError::InvalidLocal(_))
        ));
        assert!(matches!(
            Address::parse("xmpp:a@x.org/res"),
            Err(AddressError::InvalidDomain(_))
        ));
        assert!(matches!(
            Address::parse("sip:a@-x.org"),
            Err(AddressError::InvalidDomain(_))
        ));
        assert!(matches!(
            Address::parse("web:a/b"),
            Err(AddressError::InvalidLocal(_))
        ));
    }

    #[test]
    fn mumble_name_rules() {
        let ch = NameRule::mumble_channel();
        assert!(RoomName::parse("Lobby #1 [main]", &ch).is_ok());
        assert!(RoomName::parse("chat-000", &ch).is_ok());
        assert!(RoomName::parse("bad/name", &ch).is_err());
        assert!(RoomName::parse(" padded", &ch).is_err());
        assert!(RoomName::parse("", &ch).is_err());
        assert!(RoomName::parse(&"x".repeat(65), &ch).is_err());
        let user = NameRule::mumble_user();
        assert!(user.check("user", "alice.b").is_ok());
        assert!(user.check("user", "alice b").is_err());
        // Unicode \w: letters with their combining marks, but not a leading mark.
        assert!(RoomName::parse("बैठक", &ch).is_ok());
        assert!(RoomName::parse("\u{301}x", &ch).is_err());
        // Whatever the extra characters, never controls, bidi or invisible ones.
        let lax = NameRule {
            extra: "\u{202e}\u{200b}".into(),
            ..NameRule::mumble_channel()
        };
        assert!(lax.check("room", "a\u{202e}b").is_err());
        assert!(lax.check("room", "a\u{200b}b").is_err());
        assert!(RoomName::lookup("a\u{2066}b").is_err());
        assert!(RoomName::lookup("old\u{200b}room").is_ok());
    }

    #[test]
    fn web_names_are_compared_as_names() {
        let alice = Address::parse("web:alice").unwrap();
        // Case and compatibility forms: one identity.
        for same in ["web:ALICE", "web:Alice", "WEB:aLiCe", "web:ａｌｉｃｅ"] {
            assert_eq!(Address::parse(same).unwrap(), alice, "{same}");
        }
        assert_eq!(
            Address::parse("web:Straße").unwrap().to_string(),
            "web:strasse"
        );
        // A look-alike in another script is another identity (refused where it acts).
        assert_ne!(Address::parse("web:\u{430}lice").unwrap(), alice);
        // Scripts that need combining marks.
        assert!(Address::parse("web:राहुल").unwrap().is_canonical());
        assert!(Address::parse("web:İlker").unwrap().is_canonical());
        assert!(Address::parse("web:\u{301}a").is_err());
        // A name whose caseless form is no valid name reads as written, not canonical.
        let odd = Address::parse("web:a¼").unwrap();
        assert_eq!(odd.local(), "a¼");
        assert!(!odd.is_canonical());
        // SIP users keep their case.
        assert_eq!(
            Address::parse("sip:Alice@example.org").unwrap().local(),
            "Alice"
        );
    }

    #[test]
    fn look_alike_names_share_a_key() {
        let key = |s: &str| name_keys(s);
        let shares = |a: &str, b: &str| key(a).iter().any(|k| key(b).contains(k));
        for like in [
            "PayPal",
            "PAYPAL",
            "ｐａｙｐａｌ",
            "p\u{430}ypal",
            "paypaI",
            "p\u{430}yp\u{430}l",
            "PAYPA\u{406}",
        ] {
            assert!(shares("paypal", like), "{like}");
        }
        assert!(shares("Straße", "STRASSE"));
        assert!(shares("team  a", "Team A"));
        assert!(!shares("paypal", "paypals"));
        assert!(!shares("комната", "kitchen"));
        assert_eq!(fold_name("ＬＯＢＢＹ"), "lobby");
    }

    #[test]
    fn display_names_may_hold_spaces() {
        assert!(check_display_name("Ana María López").is_ok());
        assert!(check_display_name("山田 太郎").is_ok());
        assert!(matches!(
            check_display_name(" Ana"),
            Err(NameError::Padding { .. })
        ));
        assert!(matches!(
            check_display_name("Ana\u{202e}"),
            Err(NameError::Char { ch: '\u{202e}', .. })
        ));
        assert!(check_display_name(&"x".repeat(MAX_DISPLAY_NAME_LEN + 1)).is_err());
        assert!(check_display_name("").is_err());
    }

    #[test]
    fn ids_are_deterministic() {
        let s = IdSeed::new("abc");
        assert_eq!(s.derive("invitation", 0), s.derive("invitation", 0));
        assert_ne!(s.derive("invitation", 0), s.derive("invitation", 1));
        assert_ne!(s.derive("invitation", 0), s.derive("message", 0));
        assert!(InvitationId::parse(&s.derive("invitation", 0)).is_ok());
        assert!(AccountId::parse("a b").is_err());
    }
}
