//! The client address behind trusted proxies: a table of forwarding chains, honest and
//! hostile, and a property that no header value panics or is believed from a stranger.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use axum::http::{HeaderMap, HeaderValue};
use conclave_gateway_web::proxy::{client_addr, ForwardedHeader, TrustedProxies, MAX_HOPS};
use proptest::prelude::*;

fn trusted(header: ForwardedHeader) -> TrustedProxies {
    TrustedProxies::parse(&["10.0.0.0/8", "127.0.0.1", "fd00::/8"], header).unwrap()
}

fn headers(name: &str, values: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const PROXY: &str = "127.0.0.1:40000";
const STRANGER: &str = "203.0.113.9:5555";

#[test]
fn x_forwarded_for_chains() {
    let t = trusted(ForwardedHeader::XForwardedFor);
    #[rustfmt::skip]
    let cases: &[(&str, &[&str], &str, &str)] = &[
        // (peer, X-Forwarded-For lines, expected client, why)
        (STRANGER, &["1.2.3.4"], STRANGER, "a stranger's header is ignored"),
        ("127.0.0.2:1", &["1.2.3.4"], "127.0.0.2:1", "only the listed loopback address is trusted"),
        (PROXY, &[], PROXY, "no header: the proxy itself"),
        (PROXY, &["1.2.3.4"], "1.2.3.4:0", "one hop"),
        (PROXY, &["6.6.6.6, 1.2.3.4"], "1.2.3.4:0", "what the client wrote on the left is not believed"),
        (PROXY, &["6.6.6.6", "1.2.3.4"], "1.2.3.4:0", "two header lines are one list"),
        (PROXY, &["1.2.3.4, 10.0.0.5"], "1.2.3.4:0", "trusted hops are skipped"),
        (PROXY, &["1.2.3.4,10.0.0.5 , 10.9.9.9"], "1.2.3.4:0", "spacing varies"),
        (PROXY, &["10.0.0.7, 10.0.0.5"], "10.0.0.7:0", "all trusted: the farthest"),
        (PROXY, &["garbage, 1.2.3.4"], "1.2.3.4:0", "garbage left of the client is never read"),
        (PROXY, &["1.2.3.4, garbage"], PROXY, "garbage from the proxy: the proxy"),
        (PROXY, &["1.2.3.4, garbage, 10.0.0.5"], "10.0.0.5:0", "garbage: the trusted hop that passed it on"),
        (PROXY, &["1.2.3.4, unknown"], PROXY, "unknown is not an address"),
        (PROXY, &["1.2.3.4,"], PROXY, "an empty hop is unreadable"),
        (PROXY, &[""], PROXY, "an empty header"),
        (PROXY, &["1.2.3.4:8080"], "1.2.3.4:8080", "a port is kept"),
        (PROXY, &["1.2.3.4:99999"], PROXY, "a port out of range is unreadable"),
        (PROXY, &["2001:db8::1"], "[2001:db8::1]:0", "bare IPv6"),
        (PROXY, &["[2001:db8::1]"], "[2001:db8::1]:0", "bracketed IPv6"),
        (PROXY, &["[2001:db8::1]:443"], "[2001:db8::1]:443", "bracketed IPv6 with a port"),
        (PROXY, &["::ffff:1.2.3.4"], "1.2.3.4:0", "IPv4-mapped IPv6 is IPv4"),
        (PROXY, &["1.2.3.4, fd00::1"], "1.2.3.4:0", "a trusted IPv6 network"),
        (PROXY, &["[2001:db8::1"], PROXY, "unclosed bracket"),
        (PROXY, &["1.2.3.4/8"], PROXY, "a network is not an address"),
        (PROXY, &["example.org"], PROXY, "a name is not an address"),
        (PROXY, &["01.2.3.4"], PROXY, "octal-looking IPv4 is refused"),
        ("[::ffff:127.0.0.1]:40000", &["1.2.3.4"], "1.2.3.4:0", "a mapped peer is trusted like its IPv4"),
        ("[::ffff:203.0.113.9]:5555", &[], STRANGER, "a mapped peer comes back as IPv4"),
    ];
    for (peer, lines, want, why) in cases {
        let got = client_addr(sa(peer), &headers("x-forwarded-for", lines), &t);
        assert_eq!(got, sa(want), "{why}: {peer} {lines:?}");
    }
}

#[test]
fn forwarded_chains() {
    let t = trusted(ForwardedHeader::Forwarded);
    #[rustfmt::skip]
    let cases: &[(&str, &[&str], &str, &str)] = &[
        (STRANGER, &["for=1.2.3.4"], STRANGER, "a stranger's header is ignored"),
        (PROXY, &["for=192.0.2.60;proto=http;by=203.0.113.43"], "192.0.2.60:0", "RFC 7239 example"),
        (PROXY, &["for=\"[2001:db8:cafe::17]:4711\""], "[2001:db8:cafe::17]:4711", "quoted IPv6 with port"),
        (PROXY, &["For=\"192.0.2.43\", for=198.51.100.17"], "198.51.100.17:0", "case-insensitive name, right-most"),
        (PROXY, &["for=192.0.2.43, for=10.0.0.3"], "192.0.2.43:0", "trusted hops are skipped"),
        (PROXY, &["for=192.0.2.43", "for=198.51.100.17;proto=https"], "198.51.100.17:0", "two lines are one list"),
        (PROXY, &["for=192.0.2.43:8080"], "192.0.2.43:8080", "IPv4 with a port"),
        (PROXY, &["proto=https;for=192.0.2.43"], "192.0.2.43:0", "for need not come first"),
        (PROXY, &["for=unknown"], PROXY, "unknown"),
        (PROXY, &["for=\"_hidden\""], PROXY, "obfuscated"),
        (PROXY, &["for=\"192.0.2.43:_port\""], PROXY, "obfuscated port"),
        (PROXY, &["for=1.2.3.4, for=\"_hidden\""], PROXY, "obfuscated right-most"),
        (PROXY, &["for=\"unterminated"], PROXY, "unterminated quote"),
        (PROXY, &["for=1.2.3.4, for=\"unterminated"], PROXY, "unterminated quote on the right"),
        (PROXY, &["for=\"1.2.3.4\"junk"], PROXY, "junk after a quoted value"),
        (PROXY, &["for=1.2.3.4;for=5.6.7.8"], PROXY, "two for in one element"),
        (PROXY, &["proto=https"], PROXY, "no for"),
        (PROXY, &["for="], PROXY, "empty value"),
        (PROXY, &["for=\"\\\"1.2.3.4\\\"\""], PROXY, "escaped quotes inside"),
        (PROXY, &["for=\"1.2\\.3.4\""], "1.2.3.4:0", "quoted-pair of a plain character"),
        (PROXY, &["for=6.6.6.6, bogus!!, for=1.2.3.4"], "1.2.3.4:0", "garbage left of the client"),
        (PROXY, &[";;,, ,for=1.2.3.4"], "1.2.3.4:0", "empty elements and pairs"),
        (PROXY, &["for=1.2.3.4,"], PROXY, "a trailing empty element is unreadable"),
    ];
    for (peer, lines, want, why) in cases {
        let got = client_addr(sa(peer), &headers("forwarded", lines), &t);
        assert_eq!(got, sa(want), "{why}: {peer} {lines:?}");
    }
}

#[test]
fn only_the_configured_header_is_read() {
    let xff = trusted(ForwardedHeader::XForwardedFor);
    let fwd = trusted(ForwardedHeader::Forwarded);
    let mut h = headers("x-forwarded-for", &["1.1.1.1"]);
    h.append("forwarded", HeaderValue::from_static("for=2.2.2.2"));
    assert_eq!(client_addr(sa(PROXY), &h, &xff), sa("1.1.1.1:0"));
    assert_eq!(client_addr(sa(PROXY), &h, &fwd), sa("2.2.2.2:0"));
    // No proxies configured (the default): nothing is read.
    let none = TrustedProxies::default();
    assert_eq!(client_addr(sa(PROXY), &h, &none), sa(PROXY));
}

#[test]
fn hostile_values() {
    let t = trusted(ForwardedHeader::XForwardedFor);
    // Not UTF-8 / not visible ASCII.
    let mut h = HeaderMap::new();
    h.append(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"1.2.3.4, \xff\xfe").unwrap(),
    );
    assert_eq!(client_addr(sa(PROXY), &h, &t), sa(PROXY));
    // A long chain of trusted hops stops after MAX_HOPS, at a trusted address.
    let chain = (0..10_000)
        .map(|i| format!("10.0.{}.{}", i / 256 % 256, i % 256))
        .collect::<Vec<_>>()
        .join(", ");
    let got = client_addr(sa(PROXY), &headers("x-forwarded-for", &[&chain]), &t);
    assert!(t.trusts(got.ip()), "{got}");
    let expected_hop = 10_000 - MAX_HOPS;
    assert_eq!(
        got.ip().to_string(),
        format!("10.0.{}.{}", expected_hop / 256 % 256, expected_hop % 256)
    );
    // Huge single entries and many commas.
    let big = "9".repeat(100_000);
    let commas = ",".repeat(100_000);
    for v in [
        big.as_str(),
        commas.as_str(),
        "[",
        "]",
        "[]:",
        ":::::",
        "1.2.3.4::",
    ] {
        let got = client_addr(sa(PROXY), &headers("x-forwarded-for", &[v]), &t);
        assert_eq!(got, sa(PROXY), "{v:.40}");
    }
    let fwd = trusted(ForwardedHeader::Forwarded);
    let quotes = "\"".repeat(10_001);
    let escapes = format!("for=\"{}", "\\".repeat(100_000));
    for v in [
        quotes.as_str(),
        escapes.as_str(),
        "=",
        "==",
        "for==1.2.3.4",
        "\\",
    ] {
        let got = client_addr(sa(PROXY), &headers("forwarded", &[v]), &fwd);
        assert_eq!(got, sa(PROXY), "{v:.40}");
    }
}

/// Whether `ip` is written in `value` as an address (alone, with a port, bracketed,
/// quoted or escaped).
fn mentioned(value: &str, ip: std::net::IpAddr) -> bool {
    value
        .replace('\\', "")
        .split(|c: char| ",;\"= \t[]".contains(c))
        .any(|tok| {
            tok.parse::<std::net::IpAddr>().map(|i| i.to_canonical()) == Ok(ip)
                || tok.parse::<SocketAddr>().map(|s| s.ip().to_canonical()) == Ok(ip)
                || tok
                    .rsplit_once(':')
                    .and_then(|(h, _)| h.parse::<std::net::IpAddr>().ok())
                    .map(|i| i.to_canonical())
                    == Some(ip)
        })
}

/// Header values built from pieces that parsers trip on.
fn hostile() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("1.2.3.4".to_owned()),
        Just("10.0.0.1".to_owned()),
        Just("127.0.0.1".to_owned()),
        Just("2001:db8::1".to_owned()),
        Just("::ffff:5.6.7.8".to_owned()),
        Just("fd00::7".to_owned()),
        Just("unknown".to_owned()),
        Just("_hidden".to_owned()),
        Just("for=".to_owned()),
        Just("For=".to_owned()),
        Just("proto=https".to_owned()),
        Just(":443".to_owned()),
        Just(":_p".to_owned()),
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just(";".to_owned()),
        Just(" ".to_owned()),
        "[ -~]{0,8}",
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn no_header_value_panics_or_fools_us(
        value in prop_oneof![hostile(), "[ -~]{0,200}"],
        trusted_peer in any::<bool>(),
        forwarded in any::<bool>(),
    ) {
        let header = if forwarded { ForwardedHeader::Forwarded } else { ForwardedHeader::XForwardedFor };
        let t = trusted(header);
        let peer = if trusted_peer { sa(PROXY) } else { sa(STRANGER) };
        let got = client_addr(peer, &headers(header.name(), &[&value]), &t);
        if !trusted_peer {
            prop_assert_eq!(got, peer);
        } else if got != peer {
            // Whatever was believed is written in the header.
            prop_assert!(mentioned(&value, got.ip()), "{} from {:?}", got, value);
        }
    }
    #[test]
    fn chains_of_addresses_pick_the_rightmost_stranger(
        hops in proptest::collection::vec((any::<bool>(), any::<u8>()), 1..20),
    ) {
        // true: a trusted proxy in 10/8; false: a stranger in 198.51.100/24.
        let t = trusted(ForwardedHeader::XForwardedFor);
        let addrs: Vec<String> = hops.iter().map(|(proxy, n)| {
            if *proxy { format!("10.1.1.{n}") } else { format!("198.51.100.{n}") }
        }).collect();
        let got = client_addr(sa(PROXY), &headers("x-forwarded-for", &[&addrs.join(", ")]), &t);
        let want = hops.iter().zip(&addrs).rev().find(|((proxy, _), _)| !proxy)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| addrs[0].clone());
        prop_assert_eq!(got.ip().to_string(), want);
        prop_assert_eq!(got.port(), 0);
    }
}
