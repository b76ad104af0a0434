//! NATS subjects for events and commands, and the escaping that makes any stream name a
//! single subject token.
//!
//! Event subjects have a fixed shape so that wildcards work on every position:
//! `<prefix>.events.<kind>.<name>.<event_type>`, where the journal stream `room:lobby`
//! gives kind `room` and name `lobby`, and a stream without a colon (`server`) has an
//! empty name. Room names may hold dots, spaces, `*`, `>` or any Unicode, none of which
//! may appear in a subject token, so every token is escaped:
//!
//! - bytes in `[A-Za-z0-9_-]` stay as they are;
//! - every other byte of the UTF-8 form becomes `%XX` (upper-case hex);
//! - the empty string becomes `~` (which escaping never produces otherwise).
//!
//! The mapping is injective and reversible ([`decode_token`]), so two rooms never share
//! a subject and a consumer can recover the exact name.

use std::fmt::Write as _;

/// Escapes one subject token (see the module documentation).
pub fn encode_token(raw: &str) -> String {
    if raw.is_empty() {
        return "~".to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Why a token is not the output of [`encode_token`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an escaped subject token: {0}")]
pub struct BadToken(pub String);

/// Reverses [`encode_token`].
pub fn decode_token(token: &str) -> Result<String, BadToken> {
    if token == "~" {
        return Ok(String::new());
    }
    let bad = || BadToken(token.to_owned());
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = token.get(i + 1..i + 3).ok_or_else(bad)?;
            let v = u8::from_str_radix(hex, 16).map_err(|_| bad())?;
            // Only the canonical form decodes, so that decoding stays injective.
            if v.is_ascii_alphanumeric() || v == b'_' || v == b'-' || hex != format!("{v:02X}") {
                return Err(bad());
            }
            out.push(v);
            i += 3;
        } else if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b);
            i += 1;
        } else {
            return Err(bad());
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Splits a journal stream id into its kind and name (`room:a:b` → `room`, `a:b`).
pub fn split_stream(stream: &str) -> (&str, &str) {
    stream.split_once(':').unwrap_or((stream, ""))
}

/// The subject an event of `stream` with type `event_type` is published on.
pub fn event_subject(prefix: &str, stream: &str, event_type: &str) -> String {
    let (kind, name) = split_stream(stream);
    format!(
        "{prefix}.events.{}.{}.{}",
        encode_token(kind),
        encode_token(name),
        encode_token(event_type)
    )
}

/// The subject filter matching every event (what the JetStream stream captures).
pub fn events_filter(prefix: &str) -> String {
    format!("{prefix}.events.>")
}

/// The subject filter matching every event of one room.
pub fn room_filter(prefix: &str, room: &str) -> String {
    format!("{prefix}.events.room.{}.*", encode_token(room))
}

/// The subject a command is requested on.
pub fn command_subject(prefix: &str, command: &str) -> String {
    format!("{prefix}.cmd.{command}")
}

/// Whether a configured prefix is usable: one or more plain tokens.
pub fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_names_stay_readable() {
        assert_eq!(encode_token("lobby"), "lobby");
        assert_eq!(encode_token("team_1-a"), "team_1-a");
        assert_eq!(
            event_subject("conclave", "room:lobby", "room_create"),
            "conclave.events.room.lobby.room_create"
        );
    }

    #[test]
    fn hostile_names_become_one_token() {
        assert_eq!(encode_token("a.b"), "a%2Eb");
        assert_eq!(encode_token("*"), "%2A");
        assert_eq!(encode_token(">"), "%3E");
        assert_eq!(encode_token("my room"), "my%20room");
        assert_eq!(encode_token("%"), "%25");
        assert_eq!(encode_token("~"), "%7E");
        assert_eq!(encode_token("é"), "%C3%A9");
        assert_eq!(encode_token(""), "~");
        assert_eq!(
            event_subject("conclave", "server", "policy_change"),
            "conclave.events.server.~.policy_change"
        );
        assert_eq!(
            event_subject("conclave", "room:a.b:c", "x"),
            "conclave.events.room.a%2Eb%3Ac.x"
        );
    }

    #[test]
    fn non_canonical_tokens_are_refused() {
        for t in [
            "", "%", "%4", "%zz", "%41", "%2e", "a.b", "a b", "%C3", "~~", "%7",
        ] {
            assert!(decode_token(t).is_err(), "{t:?} decoded");
        }
    }

    proptest! {
        #[test]
        fn escaping_round_trips_and_is_a_single_token(s in any::<String>()) {
            let t = encode_token(&s);
            prop_assert!(!t.is_empty());
            prop_assert!(t.bytes().all(|b| b.is_ascii_graphic() && b != b'.' && b != b'*' && b != b'>'));
            prop_assert_eq!(decode_token(&t).unwrap(), s);
        }

        #[test]
        fn decoding_never_panics(s in "[%~A-Fa-z0-9.]{0,12}") {
            let _ = decode_token(&s);
        }
    }
}
