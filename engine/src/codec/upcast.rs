//! Upcasters: byte-to-byte transforms from version *n* to *n + 1* of one type, so only
//! the current version of each type needs a decoder. `peer_kick` is the worked example:
//! v1 had no reason, v2 added one.

use std::borrow::Cow;

use super::stored::{v1, v2};
use super::{de, ser, CodecError};

/// Transforms a payload of `(type, version)` into the next version's bytes.
pub type Upcaster = fn(&[u8]) -> Result<Vec<u8>, CodecError>;

/// The upcaster chain: `(event_type, from_version, upcaster to from_version + 1)`.
pub const UPCASTERS: &[(&str, u16, Upcaster)] = &[
    ("peer_kick", 1, kicked_v1_to_v2),
    ("autoban", 1, autoban_v1_to_v2),
];

/// Brings `payload` of `name` from `version` up to `current`, one step at a time.
pub(super) fn to_current<'a>(
    name: &str,
    mut version: u16,
    current: u16,
    payload: &'a [u8],
) -> Result<Cow<'a, [u8]>, CodecError> {
    let mut bytes = Cow::Borrowed(payload);
    while version < current {
        let (_, _, up) = UPCASTERS
            .iter()
            .find(|(t, v, _)| *t == name && *v == version)
            .ok_or_else(|| CodecError::UnknownVersion {
                event_type: name.to_owned(),
                version,
            })?;
        bytes = Cow::Owned(up(&bytes)?);
        version += 1;
    }
    Ok(bytes)
}

/// `autoban` v1 → v2: every v1 autoban ended the live sessions it matched.
fn autoban_v1_to_v2(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
    let (env, old): (v1::Envelope, v1::AutobanApplied) = de("autoban", 1, bytes)?;
    let new = v2::AutobanApplied {
        key: old.key,
        attempts: old.attempts,
        until: old.until,
        ends_sessions: true,
    };
    ser("autoban", &(env, new))
}

/// `peer_kick` v1 → v2: the reason did not exist, so it is `None`.
fn kicked_v1_to_v2(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
    let (env, old): (v1::Envelope, v1::Kicked) = de("peer_kick", 1, bytes)?;
    let new = v2::Kicked {
        room: old.room,
        subject: old.subject,
        reason: None,
    };
    ser("peer_kick", &(env, new))
}
