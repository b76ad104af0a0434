//! The client's address behind reverse proxies we trust.
//!
//! Every handler learns the remote address from one place: [`client_addr`], called once
//! per request by the transport (`transport.rs`), which stores the answer as axum's
//! `ConnectInfo<SocketAddr>` (what rate limits and the journal's origin metadata read)
//! and the TCP peer itself as [`PeerAddr`].
//!
//! The forwarding header (`X-Forwarded-For`, or RFC 7239 `Forwarded`, whichever the
//! operator names: only one is read, since a proxy that appends to one passes the other
//! through from the client unchanged) is read only when the TCP peer is a trusted proxy.
//! The chain is then walked from the right, skipping trusted proxies; the first address
//! that is not a trusted proxy is the client. Everything to its left was written by the
//! client or by proxies we do not know, so it is never believed. An entry that cannot be
//! read (garbage, `unknown`, an obfuscated `_name`) stops the walk: the answer is then the
//! trusted proxy that handed it over. Nothing here panics on any header value.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// The TCP peer of a request (the proxy, when the client came through one); the client
/// address is axum's `ConnectInfo<SocketAddr>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Most forwarding hops read from the right: a longer chain stops at the proxy that
/// handed over the 64th.
pub const MAX_HOPS: usize = 64;

/// A configuration value that is not an address, a network or a header name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// Not `ADDRESS` or `ADDRESS/PREFIX`.
    #[error(
        "{value:?} is not an address or network (use 10.0.0.1, 10.0.0.0/8 or fd00::/8): {reason}"
    )]
    BadNetwork {
        /// What was given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Not one of the forwarding headers we read.
    #[error("{0:?} is not a forwarding header: use x-forwarded-for or forwarded")]
    BadHeader(String),
}

/// An address with a prefix length: one host (`/32`, `/128`) or a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is inside (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = ProxyError;

    fn from_str(s: &str) -> Result<Self, ProxyError> {
        let bad = |reason| ProxyError::BadNetwork {
            value: s.to_owned(),
            reason,
        };
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = addr
            .parse::<IpAddr>()
            .map_err(|_| bad("not an IP address"))?
            .to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                p.parse::<u8>().map_err(|_| bad("bad prefix length"))?
            }
            Some(_) => return Err(bad("bad prefix length")),
        };
        if prefix > max {
            return Err(bad("prefix longer than the address"));
        }
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Which forwarding header trusted proxies write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for="[2001:db8::1]:4711"`.
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name as sent.
    pub fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }
}

impl FromStr for ForwardedHeader {
    type Err = ProxyError;

    fn from_str(s: &str) -> Result<Self, ProxyError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
            "forwarded" => Ok(ForwardedHeader::Forwarded),
            _ => Err(ProxyError::BadHeader(s.to_owned())),
        }
    }
}

/// The reverse proxies whose forwarding header is believed (default: none, so the TCP
/// peer is the client).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    /// Their addresses or networks.
    pub nets: Vec<IpNet>,
    /// The header they write.
    pub header: ForwardedHeader,
}

impl TrustedProxies {
    /// Whether `ip` is one of them.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// Parses a list such as `["127.0.0.1", "10.0.0.0/8"]`.
    pub fn parse<S: AsRef<str>>(
        nets: &[S],
        header: ForwardedHeader,
    ) -> Result<TrustedProxies, ProxyError> {
        Ok(TrustedProxies {
            nets: nets
                .iter()
                .map(|s| s.as_ref().parse())
                .collect::<Result<_, _>>()?,
            header,
        })
    }
}

/// The client's address for a request that came from `peer` with `headers`.
///
/// The TCP peer unless it is a trusted proxy; then the right-most address of the
/// forwarding chain that is not a trusted proxy (port 0 when the header names none). IP
/// addresses come back in canonical form (an IPv4-mapped IPv6 peer as IPv4), so that
/// limits and the journal see one client as one address.
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> SocketAddr {
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    if !trusted.trusts(peer.ip()) {
        return peer;
    }
    let hops = match trusted.header {
        ForwardedHeader::XForwardedFor => hops(headers, trusted.header, xff_entries),
        ForwardedHeader::Forwarded => hops(headers, trusted.header, forwarded_entries),
    };
    let mut client = peer;
    for hop in hops.iter().rev().take(MAX_HOPS) {
        let Some(addr) = hop else {
            // Unreadable: the trusted hop on its right is as far as we can see.
            return client;
        };
        client = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        if !trusted.trusts(client.ip()) {
            return client;
        }
    }
    client
}

/// Every hop of every line of the header, left to right; `None` for a hop that cannot be
/// read (or a line that is not visible ASCII).
fn hops(
    headers: &HeaderMap,
    header: ForwardedHeader,
    entries: fn(&str, &mut Vec<Option<SocketAddr>>),
) -> Vec<Option<SocketAddr>> {
    let mut out = Vec::new();
    for value in headers.get_all(header.name()) {
        match value.to_str() {
            Ok(s) => entries(s, &mut out),
            Err(_) => out.push(None),
        }
    }
    out
}

/// `X-Forwarded-For`: comma-separated addresses, optionally with a port.
fn xff_entries(line: &str, out: &mut Vec<Option<SocketAddr>>) {
    out.extend(line.split(',').map(|e| node(e.trim_matches([' ', '\t']))));
}

/// One node: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:80`. Anything else (names, `unknown`, `_obfuscated`, ports that are not
/// numbers) is unreadable.
fn node(s: &str) -> Option<SocketAddr> {
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa);
    }
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<Ipv6Addr>()
        .ok()
        .map(|ip| SocketAddr::new(IpAddr::V6(ip), 0))
}

/// RFC 7239 `Forwarded`: comma-separated elements of `;`-separated `name=value` pairs,
/// values tokens or quoted strings; the hop is the element's `for`. An element without
/// a readable `for` is unreadable; so is everything after an unterminated quote.
fn forwarded_entries(line: &str, out: &mut Vec<Option<SocketAddr>>) {
    let mut element: Option<Option<SocketAddr>> = None;
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        let Some((pair, after)) = forwarded_pair(rest) else {
            out.push(None);
            return;
        };
        if let Some((name, value)) = pair {
            if name.eq_ignore_ascii_case("for") {
                // A second `for` in one element is malformed.
                element = Some(match element {
                    None => value.as_deref().and_then(forwarded_node),
                    Some(_) => None,
                });
            }
        }
        rest = after.trim_start_matches([' ', '\t']);
        match rest.as_bytes().first() {
            Some(b';') => rest = &rest[1..],
            Some(b',') => {
                out.push(element.take().flatten());
                rest = &rest[1..];
            }
            None => {
                out.push(element.take().flatten());
                return;
            }
            Some(_) => {
                out.push(None);
                return;
            }
        }
    }
}

/// One `name=value` at the start of `s`: `Some((pair, rest))`, where `pair` is `None` for
/// an empty pair and `value` is `None` when it is not a valid token or quoted string;
/// `None` when `s` cannot be read further (an unterminated quote).
#[allow(clippy::type_complexity)]
fn forwarded_pair(s: &str) -> Option<(Option<(&str, Option<String>)>, &str)> {
    let name_end = s.find(['=', ';', ',']).unwrap_or(s.len());
    let name = s[..name_end].trim_matches([' ', '\t']);
    if !s[name_end..].starts_with('=') {
        // `name` alone, or nothing between separators.
        let pair = (!name.is_empty()).then_some((name, None));
        return Some((pair, &s[name_end..]));
    }
    let v = &s[name_end + 1..];
    if let Some(quoted) = v.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Some((Some((name, Some(value))), &quoted[i + 1..])),
                '\\' => value.push(chars.next()?.1),
                c => value.push(c),
            }
        }
        None
    } else {
        let end = v.find([';', ',', ' ', '\t']).unwrap_or(v.len());
        let token = &v[..end];
        let valid = !token.is_empty() && token.bytes().all(is_tchar);
        Some((Some((name, valid.then(|| token.to_owned()))), &v[end..]))
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:[]".contains(&b)
}

/// A `for` value: `192.0.2.60`, `192.0.2.60:4711`, `"[2001:db8:cafe::17]"`,
/// `"[2001:db8:cafe::17]:4711"`. A bare IPv6 address (not allowed by the RFC) is read
/// too; `unknown`, obfuscated names and obfuscated ports are not.
fn forwarded_node(v: &str) -> Option<SocketAddr> {
    if let Ok(ip) = v.parse::<Ipv4Addr>() {
        return Some(SocketAddr::new(IpAddr::V4(ip), 0));
    }
    node(v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn networks() {
        let n: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.1".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!("::/0"
            .parse::<IpNet>()
            .unwrap()
            .contains("::1".parse().unwrap()));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "x",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "1/2/3",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }
}
