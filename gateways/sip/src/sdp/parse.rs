//! RFC 4566 parsing of what an audio call needs: `v=`, `o=`, `c=`, `m=` and the
//! `a=` attributes rtpmap, ptime, rtcp and the directions. Other lines are skipped.

use std::net::IpAddr;

use super::{Direction, SdpError};

/// The largest SDP body read: a phone's offer is well under 2 KiB; this bounds the
/// work and memory a stranger can cause, a hundred m-lines included.
pub const MAX_SDP_BYTES: usize = 16 * 1024;

/// A session description, reduced to what offer/answer for audio uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: Option<Origin>,
    /// The session-level `c=`, the default for media without their own.
    pub connection: Option<Connection>,
    /// The session-level direction attribute, the default for media without their own.
    pub direction: Option<Direction>,
    pub media: Vec<MediaDescription>,
}

/// The `o=` line's identity of the session: an unchanged version in a re-INVITE means
/// the media did not change (RFC 3264 §8). Kept as text: some phones exceed u64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: String,
    pub session_version: String,
}

/// A `c=` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    Ip(IpAddr),
    /// A host name: sans-IO code cannot resolve it, so a stream that needs it fails.
    Host(String),
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `application`...
    pub media: String,
    pub port: u16,
    /// `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`...
    pub proto: String,
    /// The format list as written (payload type numbers for RTP).
    pub formats: Vec<String>,
    pub connection: Option<Connection>,
    pub rtpmaps: Vec<RtpMap>,
    pub direction: Option<Direction>,
    pub ptime: Option<u32>,
    pub rtcp: Option<Rtcp>,
}

impl MediaDescription {
    /// The `a=rtpmap` of a payload type, if any.
    pub fn rtpmap(&self, payload_type: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|r| r.payload_type == payload_type)
    }
}

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

/// `a=rtcp:<port> [IN IP4 <address>]` (RFC 3605).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtcp {
    pub port: u16,
    pub address: Option<IpAddr>,
}

/// The text of an SDP body: checks the size first, then UTF-8, so that a SIP body can
/// be handed to [`parse`] or [`super::answer`].
pub fn body_text(body: &[u8]) -> Result<&str, SdpError> {
    check_size(body.len())?;
    std::str::from_utf8(body).map_err(|_| SdpError::Malformed("SDP is not UTF-8"))
}

fn check_size(size: usize) -> Result<(), SdpError> {
    if size > MAX_SDP_BYTES {
        return Err(SdpError::TooLarge {
            size,
            limit: MAX_SDP_BYTES,
        });
    }
    Ok(())
}

/// Parses an SDP body (CRLF or LF line endings).
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    check_size(text.len())?;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty());
    match lines.next() {
        Some("v=0") => {}
        _ => return Err(SdpError::Malformed("the first line is not v=0")),
    }
    let mut sd = SessionDescription {
        origin: None,
        connection: None,
        direction: None,
        media: Vec::new(),
    };
    for line in lines {
        let (kind, value) = split_line(line)?;
        match (kind, sd.media.last_mut()) {
            (b'm', _) => sd.media.push(media_line(value)?),
            (b'o', None) if sd.origin.is_none() => sd.origin = Some(origin_line(value)?),
            (b'c', None) => sd.connection = Some(connection_line(value)?),
            (b'c', Some(m)) => m.connection = Some(connection_line(value)?),
            (b'a', None) => {
                if let Some(d) = Direction::from_attribute(value) {
                    sd.direction = Some(d);
                }
            }
            (b'a', Some(m)) => media_attribute(m, value),
            _ => {}
        }
    }
    Ok(sd)
}

/// `<letter>=<value>`, with no control character anywhere (a stray CR or NUL must not
/// reach an answer we write back).
fn split_line(line: &str) -> Result<(u8, &str), SdpError> {
    if line.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(SdpError::Malformed("control character in a line"));
    }
    match line.as_bytes() {
        [kind, b'=', ..] if kind.is_ascii_lowercase() => Ok((*kind, line.get(2..).unwrap_or(""))),
        _ => Err(SdpError::Malformed("a line is not <type>=<value>")),
    }
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`.
fn origin_line(value: &str) -> Result<Origin, SdpError> {
    let t: Vec<&str> = value.split_ascii_whitespace().collect();
    match t.as_slice() {
        [username, id, version, _, _, _] => Ok(Origin {
            username: (*username).to_owned(),
            session_id: (*id).to_owned(),
            session_version: (*version).to_owned(),
        }),
        _ => Err(SdpError::Malformed("o= does not have six fields")),
    }
}

/// `c=IN IP4 <address>[/ttl[/count]]` or `c=IN IP6 <address>`.
fn connection_line(value: &str) -> Result<Connection, SdpError> {
    let t: Vec<&str> = value.split_ascii_whitespace().collect();
    let [net, family, address] = t.as_slice() else {
        return Err(SdpError::Malformed("c= does not have three fields"));
    };
    if *net != "IN" {
        return Err(SdpError::Malformed("c= network type is not IN"));
    }
    let address = address.split('/').next().unwrap_or("");
    match address.parse::<IpAddr>() {
        Ok(ip @ IpAddr::V4(_)) if *family == "IP4" => Ok(Connection::Ip(ip)),
        Ok(ip @ IpAddr::V6(_)) if *family == "IP6" => Ok(Connection::Ip(ip)),
        Ok(_) => Err(SdpError::Malformed("c= address does not match its type")),
        Err(_) if (*family == "IP4" || *family == "IP6") && !address.is_empty() => {
            Ok(Connection::Host(address.to_owned()))
        }
        Err(_) => Err(SdpError::Malformed("c= address type is not IP4 or IP6")),
    }
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...`.
fn media_line(value: &str) -> Result<MediaDescription, SdpError> {
    let mut t = value.split_ascii_whitespace();
    let (Some(media), Some(port), Some(proto)) = (t.next(), t.next(), t.next()) else {
        return Err(SdpError::Malformed("m= has fewer than four fields"));
    };
    let formats: Vec<String> = t.map(str::to_owned).collect();
    if formats.is_empty() {
        return Err(SdpError::Malformed("m= has no format"));
    }
    let port = port
        .split('/')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or(SdpError::Malformed(
            "m= port is not a number from 0 to 65535",
        ))?;
    Ok(MediaDescription {
        media: media.to_owned(),
        port,
        proto: proto.to_owned(),
        formats,
        connection: None,
        rtpmaps: Vec::new(),
        direction: None,
        ptime: None,
        rtcp: None,
    })
}

/// A media-level attribute; ones we cannot read are ignored like unknown ones (a bad
/// rtpmap only means that payload type maps to nothing we speak).
fn media_attribute(m: &mut MediaDescription, value: &str) {
    if let Some(d) = Direction::from_attribute(value) {
        m.direction = Some(d);
        return;
    }
    let Some((name, v)) = value.split_once(':') else {
        return;
    };
    match name {
        "rtpmap" => {
            if let Some(r) = rtpmap(v) {
                // the first mapping of a payload type wins
                if m.rtpmap(r.payload_type).is_none() {
                    m.rtpmaps.push(r);
                }
            }
        }
        "ptime" => {
            m.ptime = v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|p| (1..=1000).contains(p));
        }
        "rtcp" => m.rtcp = rtcp(v),
        _ => {}
    }
}

fn rtpmap(v: &str) -> Option<RtpMap> {
    let (pt, rest) = v.trim().split_once(|c: char| c.is_ascii_whitespace())?;
    let payload_type = pt.parse::<u8>().ok().filter(|pt| *pt <= 127)?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next()?.to_owned();
    let clock_rate = parts.next()?.parse::<u32>().ok()?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse::<u16>().ok()?),
        None => None,
    };
    Some(RtpMap {
        payload_type,
        encoding,
        clock_rate,
        channels,
    })
}

fn rtcp(v: &str) -> Option<Rtcp> {
    let mut t = v.split_ascii_whitespace();
    let port = t.next()?.parse::<u16>().ok().filter(|p| *p != 0)?;
    let address = match (t.next(), t.next(), t.next()) {
        (Some("IN"), Some("IP4" | "IP6"), Some(a)) => a.parse::<IpAddr>().ok(),
        _ => None,
    };
    Some(Rtcp { port, address })
}
