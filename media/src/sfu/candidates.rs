//! ICE candidates in and out: the announced addresses replace the bound one in ours,
//! and in loopback-only mode (tests) anything not on loopback is dropped, inline in SDP
//! or trickled.

use std::net::IpAddr;

use webrtc::peer_connection::{RTCIceCandidate, RTCIceCandidateInit};

/// Our candidate as the client should see it: once per announced address (all of
/// them, or the bound address if none). `sdpMid` is left out (the crate fills in an
/// empty mid, which browsers refuse); m-line 0 carries the whole BUNDLE group.
pub(crate) fn outgoing(candidate: &RTCIceCandidate, announce: &[IpAddr]) -> Vec<serde_json::Value> {
    let mut variants = Vec::new();
    if announce.is_empty() {
        variants.push(candidate.clone());
    } else {
        for ip in announce {
            let mut c = candidate.clone();
            c.address = ip.to_string();
            variants.push(c);
        }
    }
    variants
        .iter()
        .filter_map(|c| c.to_json().ok())
        .map(|init| {
            serde_json::json!({
                "candidate": init.candidate,
                "sdpMid": serde_json::Value::Null,
                "sdpMLineIndex": 0,
            })
        })
        .collect()
}

/// The connection address of a candidate attribute (`candidate:f 1 udp p ADDR port typ ..`).
pub(crate) fn address(candidate: &str) -> Option<IpAddr> {
    let body = candidate.strip_prefix("a=").unwrap_or(candidate);
    let body = body.strip_prefix("candidate:")?;
    body.split_whitespace().nth(4)?.parse().ok()
}

/// Whether a remote candidate may be used. An address that is not an IP (an mDNS
/// `.local` name) is refused in loopback-only mode too.
pub(crate) fn acceptable(candidate: &RTCIceCandidateInit, loopback_only: bool) -> bool {
    if !loopback_only || candidate.candidate.is_empty() {
        return true;
    }
    address(&candidate.candidate).is_some_and(|ip| ip.is_loopback())
}

/// The SDP without inline candidates we would not accept.
pub(crate) fn filter_sdp(sdp: &str, loopback_only: bool) -> String {
    if !loopback_only {
        return sdp.to_owned();
    }
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed.starts_with("a=candidate:")
            && !address(trimmed).is_some_and(|ip| ip.is_loopback())
        {
            continue;
        }
        out.push_str(line);
    }
    out
}

/// Our SDP with each inline candidate on the bound address repeated once per
/// announced address instead (none announced: unchanged).
pub(crate) fn announce_sdp(sdp: &str, bind: IpAddr, announce: &[IpAddr]) -> String {
    if announce.is_empty() {
        return sdp.to_owned();
    }
    let bound = bind.to_string();
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed.starts_with("a=candidate:") && address(trimmed) == Some(bind) {
            let ending = &line[trimmed.len()..];
            for ip in announce {
                let fields: Vec<String> = trimmed
                    .split(' ')
                    .enumerate()
                    .map(|(i, f)| {
                        if i == 4 && f == bound {
                            ip.to_string()
                        } else {
                            f.to_owned()
                        }
                    })
                    .collect();
                out.push_str(&fields.join(" "));
                out.push_str(ending);
            }
            continue;
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_connection_address() {
        let c = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host";
        assert_eq!(address(c), Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(
            address("a=candidate:1 1 udp 1 10.0.0.2 5 typ host"),
            Some(IpAddr::from([10, 0, 0, 2]))
        );
        assert_eq!(address("candidate:1 1 udp 1 abc.local 5 typ host"), None);
        assert_eq!(address("garbage"), None);
    }

    #[test]
    fn loopback_only_drops_other_inline_candidates() {
        let sdp = "v=0\r\na=candidate:1 1 udp 1 127.0.0.1 5 typ host\r\na=candidate:2 1 udp 1 192.0.2.1 5 typ host\r\na=mid:0\r\n";
        let out = filter_sdp(sdp, true);
        assert!(out.contains("127.0.0.1"));
        assert!(!out.contains("192.0.2.1"));
        assert!(out.contains("a=mid:0\r\n"));
        assert_eq!(filter_sdp(sdp, false), sdp);
    }

    #[test]
    fn announced_addresses_replace_the_bound_one() {
        let sdp = "a=mid:0\r\na=candidate:1 1 udp 1 10.0.0.2 5000 typ host\r\n";
        let bind = IpAddr::from([10, 0, 0, 2]);
        let out = announce_sdp(
            sdp,
            bind,
            &[
                IpAddr::from([192, 0, 2, 7]),
                IpAddr::from([198, 51, 100, 1]),
            ],
        );
        assert_eq!(
            out,
            "a=mid:0\r\na=candidate:1 1 udp 1 192.0.2.7 5000 typ host\r\na=candidate:1 1 udp 1 198.51.100.1 5000 typ host\r\n"
        );
        assert_eq!(announce_sdp(sdp, bind, &[]), sdp);
    }
}
