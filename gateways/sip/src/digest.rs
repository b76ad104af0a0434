//! Digest authentication for the registrar (RFC 3261 §22, RFC 7616, RFC 8760 for the
//! SHA-256 algorithm in SIP): challenges and the check of an `Authorization` header.
//!
//! Sans-IO and pure: the caller passes the header, the request's method and URI, the
//! realm and the time, and a lookup of the stored HA1 values (the engine's
//! `State::sip_credential`); nothing here reads a clock, a socket or the engine.
//!
//! - Nonces are stateless: `<issued at><counter><MAC>` in hex, the MAC a keyed BLAKE3
//!   hash of the time, the counter and the realm under the challenger's key, so any
//!   nonce we did not issue, or issued for another realm, is refused without a table.
//!   A nonce older than its lifetime is `stale`: the registrar challenges again with
//!   `stale=true` and the phone retries without asking its user.
//! - Only `qop=auth` (RFC 7616 makes `qop` mandatory; `auth-int` is refused), with
//!   `cnonce` and `nc` required. The highest `nc` seen per nonce is kept in a bounded
//!   map so a captured `Authorization` cannot be replayed; when the map is full the
//!   oldest nonce is dropped and every nonce issued up to it becomes stale, so dropping
//!   an entry never opens a replay.
//! - Responses are compared in constant time.
//!
//! The key should be fresh at every start (random): nonces of a previous run are then
//! refused (`digest.nonce`) rather than trusted with an empty replay map.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use md5::{Digest as _, Md5};
use sha2::Sha256;
use thiserror::Error;

/// How long a nonce is good for, by default (seconds).
pub const DEFAULT_NONCE_LIFETIME_SECS: u64 = 300;
/// How many nonces' highest `nc` are remembered, by default.
pub const DEFAULT_MAX_TRACKED_NONCES: usize = 65_536;
/// Longest `Authorization` value considered (longer ones are malformed).
pub const MAX_AUTHORIZATION_LEN: usize = 8 * 1024;
/// Most parameters an `Authorization` value may carry.
const MAX_PARAMS: usize = 32;
/// How far in the future a nonce's time may be (clock steps between challenge and
/// answer); beyond that it is not one of ours.
const FUTURE_SKEW_SECS: u64 = 5;
/// Hex digits of each nonce part: time (8 bytes), counter (8 bytes), MAC (16 bytes).
const TIME_HEX: usize = 16;
const COUNTER_HEX: usize = 16;
const MAC_HEX: usize = 32;
const NONCE_HEX: usize = TIME_HEX + COUNTER_HEX + MAC_HEX;

/// A digest algorithm the registrar offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (RFC 3261's only one; still what most phones do).
    Md5,
    /// `SHA-256` (RFC 8760), offered first.
    Sha256,
}

impl Algorithm {
    /// The `algorithm=` token.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// The algorithm a token names (case-insensitive), if we offer it. The `-sess`
    /// variants are not offered.
    pub fn from_token(token: &str) -> Option<Self> {
        if token.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if token.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// `H(data)` in lowercase hex.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data)),
            Algorithm::Sha256 => hex(&Sha256::digest(data)),
        }
    }
}

/// The HA1 values stored for a user (`H(user:realm:password)`, lowercase hex), as the
/// engine keeps them (`SipCredential::ha1_md5`, `ha1_sha256`).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredHa1 {
    /// HA1 for MD5.
    pub md5: String,
    /// HA1 for SHA-256.
    pub sha256: String,
}

impl StoredHa1 {
    /// The HA1 for one algorithm.
    pub fn for_algorithm(&self, algorithm: Algorithm) -> &str {
        match algorithm {
            Algorithm::Md5 => &self.md5,
            Algorithm::Sha256 => &self.sha256,
        }
    }
}

impl std::fmt::Debug for StoredHa1 {
    // Password-equivalent: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoredHa1(..)")
    }
}

/// A successful check: who, and with which algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The `username` of the credentials (the user part of the `sip:` identity).
    pub username: String,
    /// The algorithm used.
    pub algorithm: Algorithm,
}

/// Why an `Authorization` value was refused. Every variant but [`DigestError::Stale`]
/// is answered with a fresh challenge (401) as RFC 3261 §22.2 says; `Stale` with a
/// challenge carrying `stale=true`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DigestError {
    /// No credentials were given.
    #[error("no credentials")]
    Missing,
    /// The value does not parse, or lacks a required parameter.
    #[error("malformed credentials: {0}")]
    Malformed(&'static str),
    /// No credentials are stored for this username.
    #[error("unknown user")]
    UnknownUser,
    /// The response does not match the stored credentials (a wrong password).
    #[error("wrong response")]
    WrongResponse,
    /// The nonce was ours but has expired (or aged out of the replay map).
    #[error("stale nonce")]
    Stale,
    /// This nonce count was already used with this nonce.
    #[error("replayed nonce count")]
    Replayed,
    /// The credentials are for another realm.
    #[error("wrong realm")]
    Realm,
    /// An algorithm we do not offer (`-sess` variants included).
    #[error("unsupported algorithm")]
    Algorithm,
    /// The `uri` parameter is not the request's URI.
    #[error("uri does not match the request")]
    Uri,
    /// A `qop` other than `auth`, or none.
    #[error("unsupported qop")]
    Qop,
    /// The nonce is not one we issued (forged, from another realm or another run).
    #[error("unknown nonce")]
    Nonce,
}

impl DigestError {
    /// Stable code, for logs, metrics and the journal.
    pub fn code(&self) -> &'static str {
        match self {
            DigestError::Missing => "digest.missing",
            DigestError::Malformed(_) => "digest.malformed",
            DigestError::UnknownUser => "digest.unknown_user",
            DigestError::WrongResponse => "digest.wrong_response",
            DigestError::Stale => "digest.stale",
            DigestError::Replayed => "digest.replayed",
            DigestError::Realm => "digest.realm",
            DigestError::Algorithm => "digest.algorithm",
            DigestError::Uri => "digest.uri",
            DigestError::Qop => "digest.qop",
            DigestError::Nonce => "digest.nonce",
        }
    }

    /// Whether the registrar's new challenge should say `stale=true`.
    pub fn is_stale(&self) -> bool {
        matches!(self, DigestError::Stale)
    }
}

/// Issues challenges and checks answers for one registrar.
pub struct Challenger {
    key: [u8; 32],
    lifetime_secs: u64,
    max_tracked: usize,
    /// Makes every nonce unique, even two in the same second.
    counter: AtomicU64,
    /// Highest `nc` accepted per nonce. Keys start with the nonce's time in fixed-width
    /// hex, so the map is ordered oldest first.
    seen: BTreeMap<String, u32>,
    /// Nonces issued at or before this time are stale (their entries were dropped).
    floor: Option<u64>,
}

impl std::fmt::Debug for Challenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenger")
            .field("lifetime_secs", &self.lifetime_secs)
            .field("tracked", &self.seen.len())
            .finish_non_exhaustive()
    }
}

impl Challenger {
    /// A challenger with a secret key (random at each start), the default nonce
    /// lifetime and replay map size.
    pub fn new(key: [u8; 32]) -> Self {
        Self::with_limits(key, DEFAULT_NONCE_LIFETIME_SECS, DEFAULT_MAX_TRACKED_NONCES)
    }

    /// A challenger with a given nonce lifetime (seconds) and replay map size (at
    /// least 1).
    pub fn with_limits(key: [u8; 32], lifetime_secs: u64, max_tracked: usize) -> Self {
        Challenger {
            key,
            lifetime_secs,
            max_tracked: max_tracked.max(1),
            counter: AtomicU64::new(0),
            seen: BTreeMap::new(),
            floor: None,
        }
    }

    /// `WWW-Authenticate` header values for a 401: SHA-256 first, then MD5 (RFC 8760
    /// §2.4), sharing one fresh nonce; `stale=true` when the previous nonce had only
    /// expired.
    pub fn challenge(&self, realm: &str, now_unix: u64, stale: bool) -> Vec<String> {
        self.challenge_with(realm, now_unix, stale, &[Algorithm::Sha256, Algorithm::Md5])
    }

    /// [`Challenger::challenge`] offering `algorithms` in that order (one header each,
    /// one shared nonce): a UA that reads only the first challenge (SIPp 3.6, old
    /// phones) needs the one it speaks first.
    pub fn challenge_with(
        &self,
        realm: &str,
        now_unix: u64,
        stale: bool,
        algorithms: &[Algorithm],
    ) -> Vec<String> {
        let counter = self.counter.fetch_add(1, Ordering::Relaxed);
        let nonce = self.nonce(realm, now_unix, counter);
        let stale = if stale { ", stale=true" } else { "" };
        algorithms
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{stale}",
                    quote(realm),
                    a.as_str()
                )
            })
            .collect()
    }

    /// Checks an `Authorization` value of a request with `method` and `request_uri`
    /// (as on its start line) against `realm`, at `now_unix`. `lookup` gives the HA1
    /// values stored for a username, if any. On success the nonce count is recorded,
    /// so the same value is refused next time (`digest.replayed`).
    pub fn verify(
        &mut self,
        authorization: &str,
        method: &str,
        request_uri: &str,
        realm: &str,
        now_unix: u64,
        lookup: impl Fn(&str) -> Option<StoredHa1>,
    ) -> Result<Verified, DigestError> {
        self.verify_with(
            authorization,
            method,
            |uri| uri.eq_ignore_ascii_case(request_uri),
            realm,
            now_unix,
            lookup,
        )
    }

    /// [`Challenger::verify`] with the caller deciding which digest `uri` values are
    /// equivalent to the request's (RFC 3261 §22.4 asks for equivalence, not equality:
    /// SIPp, for one, signs a REGISTER with `sip:<server address>:<port>`).
    pub fn verify_with(
        &mut self,
        authorization: &str,
        method: &str,
        uri_ok: impl Fn(&str) -> bool,
        realm: &str,
        now_unix: u64,
        lookup: impl Fn(&str) -> Option<StoredHa1>,
    ) -> Result<Verified, DigestError> {
        let params = Params::parse(authorization)?;
        let username = params.required("username")?;
        let their_realm = params.required("realm")?;
        let nonce = params.required("nonce")?;
        let uri = params.required("uri")?;
        let their_response = params.required("response")?;
        if params
            .get("userhash")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Err(DigestError::Malformed("userhash was not offered"));
        }
        let algorithm = match params.get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::from_token(a).ok_or(DigestError::Algorithm)?,
        };
        match params.get("qop") {
            Some(q) if q.eq_ignore_ascii_case("auth") => {}
            _ => return Err(DigestError::Qop),
        }
        let cnonce = params.required("cnonce")?;
        let nc_text = params.required("nc")?;
        let nc = parse_nc(nc_text)?;
        if their_realm != realm {
            return Err(DigestError::Realm);
        }
        if !uri_ok(uri) {
            return Err(DigestError::Uri);
        }
        let issued = self.check_nonce(nonce, realm, now_unix)?;
        let stored = lookup(username).ok_or(DigestError::UnknownUser)?;
        let expected = response(
            algorithm,
            stored.for_algorithm(algorithm),
            nonce,
            nc_text,
            cnonce,
            method,
            uri,
        );
        if !constant_time_eq(
            expected.as_bytes(),
            their_response.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(DigestError::WrongResponse);
        }
        // Stale only once the response is right for it (RFC 7616 §3.3): the phone then
        // retries with the new nonce without asking its user again.
        if now_unix.saturating_sub(issued) > self.lifetime_secs
            || self.floor.is_some_and(|f| issued <= f)
        {
            return Err(DigestError::Stale);
        }
        self.record_nc(nonce, nc, now_unix)?;
        Ok(Verified {
            username: username.to_owned(),
            algorithm,
        })
    }

    /// How many nonces the replay map holds (bounded by the limit given at creation).
    pub fn tracked_nonces(&self) -> usize {
        self.seen.len()
    }

    fn mac(&self, realm: &str, issued: u64, counter: u64) -> [u8; 16] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(b"conclave sip nonce v1\0");
        h.update(&issued.to_be_bytes());
        h.update(&counter.to_be_bytes());
        h.update(realm.as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
        out
    }

    fn nonce(&self, realm: &str, issued: u64, counter: u64) -> String {
        format!(
            "{issued:016x}{counter:016x}{}",
            hex(&self.mac(realm, issued, counter))
        )
    }

    /// Ours and for this realm (not from the future): the time it was issued at.
    fn check_nonce(&self, nonce: &str, realm: &str, now: u64) -> Result<u64, DigestError> {
        let (issued, counter, mac) = split_nonce(nonce).ok_or(DigestError::Nonce)?;
        let expected = hex(&self.mac(realm, issued, counter));
        if !constant_time_eq(expected.as_bytes(), mac.to_ascii_lowercase().as_bytes()) {
            return Err(DigestError::Nonce);
        }
        if issued > now.saturating_add(FUTURE_SKEW_SECS) {
            return Err(DigestError::Nonce);
        }
        Ok(issued)
    }

    /// Records `nc` for `nonce` if it is higher than any seen, keeping the map bounded.
    fn record_nc(&mut self, nonce: &str, nc: u32, now: u64) -> Result<(), DigestError> {
        if let Some(highest) = self.seen.get_mut(nonce) {
            if nc <= *highest {
                return Err(DigestError::Replayed);
            }
            *highest = nc;
            return Ok(());
        }
        // Expired nonces need no entry: they are refused as stale anyway.
        while let Some(entry) = self.seen.first_entry() {
            let expired = split_nonce(entry.key())
                .is_none_or(|(issued, _, _)| now.saturating_sub(issued) > self.lifetime_secs);
            if !expired {
                break;
            }
            entry.remove();
        }
        while self.seen.len() >= self.max_tracked {
            let Some((oldest, _)) = self.seen.pop_first() else {
                break;
            };
            if let Some((issued, _, _)) = split_nonce(&oldest) {
                self.floor = Some(self.floor.map_or(issued, |f| f.max(issued)));
            }
        }
        // The floor may have just passed this nonce's own time.
        if let Some((issued, _, _)) = split_nonce(nonce) {
            if self.floor.is_some_and(|f| issued <= f) {
                return Err(DigestError::Stale);
            }
        }
        self.seen.insert(nonce.to_owned(), nc);
        Ok(())
    }
}

/// The `response` of `qop=auth` (RFC 7616 §3.4.1): `KD(HA1, nonce:nc:cnonce:auth:HA2)`
/// with `HA2 = H(method:uri)`, in lowercase hex. What a client computes; the registrar
/// compares it with what the client sent.
pub fn response(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = algorithm.hash_hex(format!("{method}:{uri}").as_bytes());
    algorithm.hash_hex(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}").as_bytes())
}

/// `H(username:realm:password)` in lowercase hex (RFC 7616 §3.4.2), as the engine's
/// `sip_digest::ha1` stores it; for tests and tools.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hash_hex(format!("{username}:{realm}:{password}").as_bytes())
}

/// `(issued, counter, mac hex)` of a nonce of our shape.
fn split_nonce(nonce: &str) -> Option<(u64, u64, &str)> {
    if nonce.len() != NONCE_HEX || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let issued = u64::from_str_radix(nonce.get(..TIME_HEX)?, 16).ok()?;
    let counter = u64::from_str_radix(nonce.get(TIME_HEX..TIME_HEX + COUNTER_HEX)?, 16).ok()?;
    Some((issued, counter, nonce.get(TIME_HEX + COUNTER_HEX..)?))
}

/// `nc` is exactly 8 hex digits (RFC 7616 §3.4).
fn parse_nc(nc: &str) -> Result<u32, DigestError> {
    if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DigestError::Malformed("nc is not 8 hex digits"));
    }
    u32::from_str_radix(nc, 16).map_err(|_| DigestError::Malformed("nc is not 8 hex digits"))
}

/// Equal, in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A value inside a quoted string: `"` and `\` escaped.
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
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

/// The parameters of a `Digest` credentials value, names lowercased, values unquoted.
#[derive(Debug)]
struct Params {
    list: Vec<(String, String)>,
}

impl Params {
    /// Parses `Digest name=value, name="quoted \"value\"", ...` (RFC 7235 §2.1, RFC 3261
    /// §25.1). Bounded: the value's length and the number of parameters are capped;
    /// a parameter given twice is malformed (which one would count?); unknown ones
    /// are kept and ignored.
    fn parse(value: &str) -> Result<Params, DigestError> {
        let value = value.trim_matches([' ', '\t']);
        if value.is_empty() {
            return Err(DigestError::Missing);
        }
        if value.len() > MAX_AUTHORIZATION_LEN {
            return Err(DigestError::Malformed("credentials too long"));
        }
        let scheme_end = value.find([' ', '\t']).unwrap_or(value.len());
        let (scheme, rest) = value.split_at(scheme_end);
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::Malformed("not Digest credentials"));
        }
        let mut list: Vec<(String, String)> = Vec::new();
        let mut chars = rest.char_indices().peekable();
        loop {
            // Separators: whitespace and commas (empty list elements are allowed).
            while chars
                .peek()
                .is_some_and(|&(_, c)| c == ',' || c == ' ' || c == '\t')
            {
                chars.next();
            }
            let Some(&(start, _)) = chars.peek() else {
                break;
            };
            let mut end = start;
            while let Some(&(i, c)) = chars.peek() {
                if is_token_char(c) {
                    end = i + c.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let name = rest
                .get(start..end)
                .filter(|n| !n.is_empty())
                .ok_or(DigestError::Malformed("expected a parameter name"))?
                .to_ascii_lowercase();
            skip_blanks(&mut chars);
            if chars.next().map(|(_, c)| c) != Some('=') {
                return Err(DigestError::Malformed(
                    "expected '=' after a parameter name",
                ));
            }
            skip_blanks(&mut chars);
            let value = match chars.peek() {
                Some(&(_, '"')) => {
                    chars.next();
                    let mut v = String::new();
                    loop {
                        match chars.next() {
                            None => {
                                return Err(DigestError::Malformed("unterminated quoted string"))
                            }
                            Some((_, '"')) => break,
                            Some((_, '\\')) => match chars.next() {
                                Some((_, c)) => v.push(c),
                                None => {
                                    return Err(DigestError::Malformed(
                                        "unterminated quoted string",
                                    ))
                                }
                            },
                            Some((_, c)) if c.is_control() && c != '\t' => {
                                return Err(DigestError::Malformed(
                                    "control character in a quoted string",
                                ))
                            }
                            Some((_, c)) => v.push(c),
                        }
                    }
                    v
                }
                _ => {
                    let mut v = String::new();
                    while let Some(&(_, c)) = chars.peek() {
                        if is_token_char(c) {
                            v.push(c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    if v.is_empty() {
                        return Err(DigestError::Malformed("expected a parameter value"));
                    }
                    v
                }
            };
            skip_blanks(&mut chars);
            match chars.next() {
                None | Some((_, ',')) => {}
                Some(_) => return Err(DigestError::Malformed("expected ',' between parameters")),
            }
            if list.iter().any(|(n, _)| *n == name) {
                return Err(DigestError::Malformed("a parameter is given twice"));
            }
            if list.len() == MAX_PARAMS {
                return Err(DigestError::Malformed("too many parameters"));
            }
            list.push((name, value));
        }
        Ok(Params { list })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &'static str) -> Result<&str, DigestError> {
        self.get(name).ok_or(DigestError::Malformed(match name {
            "username" => "username missing",
            "realm" => "realm missing",
            "nonce" => "nonce missing",
            "uri" => "uri missing",
            "response" => "response missing",
            "cnonce" => "cnonce missing",
            "nc" => "nc missing",
            _ => "a required parameter is missing",
        }))
    }
}

fn skip_blanks(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) {
    while chars.peek().is_some_and(|&(_, c)| c == ' ' || c == '\t') {
        chars.next();
    }
}

/// RFC 3261 §25.1 `token` characters (plus `:`, `/`, `@` and `;`, which appear in
/// unquoted URIs some phones send).
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.' | '!' | '%' | '*' | '_' | '+' | '`' | '\'' | '~' | ':' | '/' | '@' | ';'
        )
}
