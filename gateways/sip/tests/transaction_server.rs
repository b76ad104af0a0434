//! Server transactions on a virtual clock (RFC 3261 §17.2, RFC 6026).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use conclave_gateway_sip::transaction::{Output, Peer, ServerKey, TimerConfig, TransactionLayer};
use conclave_gateway_sip::wire;

fn peer() -> Peer {
    Peer::udp(SocketAddr::from(([192, 0, 2, 10], 5060)))
}

fn tcp_peer() -> Peer {
    Peer::tcp(SocketAddr::from(([192, 0, 2, 10], 40000)), 7)
}

fn request(method: &str, branch: &str, cseq: u32, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} sip:chat-lobby@conclave.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@conclave.test>;tag=a1\r\n\
         To: <sip:chat-lobby@conclave.test>{extra}\r\n\
         Call-ID: call-1@192.0.2.10\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn layer() -> TransactionLayer {
    TransactionLayer::new(TimerConfig::default())
}

fn drain(layer: &mut TransactionLayer) -> Vec<Output> {
    std::iter::from_fn(|| layer.poll_output()).collect()
}

fn transmits(outs: &[Output]) -> Vec<String> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Transmit { bytes, .. } => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        })
        .collect()
}

fn new_request(outs: &[Output]) -> Option<(ServerKey, rsip::Request)> {
    outs.iter().find_map(|o| match o {
        Output::Request { key, request, .. } => Some((key.clone(), request.clone())),
        _ => None,
    })
}

/// Given a layer, when a request arrives, then the TU gets it: (key, request).
fn receive(
    layer: &mut TransactionLayer,
    now: Instant,
    bytes: &[u8],
) -> (ServerKey, rsip::Request, Vec<Output>) {
    assert!(layer.handle_datagram(now, peer(), bytes).is_ok());
    let outs = drain(layer);
    let (key, req) = new_request(&outs).unwrap_or_else(|| panic!("no request in {outs:?}"));
    (key, req, outs)
}

#[test]
fn message_retransmission_is_absorbed_and_answered_with_the_same_response() {
    let mut layer = layer();
    let t0 = Instant::now();
    let msg = request("MESSAGE", "z9hG4bKm1", 1, "", "hello");
    // Given a MESSAGE the TU has not answered yet
    let (key, req, _) = receive(&mut layer, t0, &msg);
    // When it is retransmitted before the answer, then it is absorbed silently
    assert!(layer.handle_datagram(t0, peer(), &msg).is_ok());
    assert!(drain(&mut layer).is_empty());
    // When the TU answers 200 and the MESSAGE comes again
    layer.respond(t0, &key, wire::response(&req, 200, "", Some("r1")));
    let first = transmits(&drain(&mut layer));
    assert!(layer
        .handle_datagram(t0 + Duration::from_millis(500), peer(), &msg)
        .is_ok());
    let again = drain(&mut layer);
    // Then the same response is resent and the TU sees nothing new
    assert_eq!(first.len(), 1);
    assert_eq!(transmits(&again), first);
    assert!(new_request(&again).is_none());
    assert!(first
        .first()
        .is_some_and(|r| r.starts_with("SIP/2.0 200 OK\r\n") && r.contains(";tag=r1")));
}

#[test]
fn a_retransmission_flood_costs_one_resend_each_and_no_state() {
    let mut layer = layer();
    let t0 = Instant::now();
    let msg = request("MESSAGE", "z9hG4bKflood", 1, "", "x");
    let (key, req, _) = receive(&mut layer, t0, &msg);
    layer.respond(t0, &key, wire::response(&req, 202, "", Some("r1")));
    drain(&mut layer);
    for _ in 0..10_000 {
        assert!(layer.handle_datagram(t0, peer(), &msg).is_ok());
    }
    let outs = drain(&mut layer);
    assert_eq!(outs.len(), 10_000);
    assert_eq!(layer.transaction_count(), 1);
}

#[test]
fn invite_non_2xx_final_is_retransmitted_by_timer_g_until_the_ack() {
    let mut layer = layer();
    let t0 = Instant::now();
    let invite = request("INVITE", "z9hG4bKi1", 1, "", "");
    // Given an INVITE (the layer sends 100 Trying itself)
    let (key, req, outs) = receive(&mut layer, t0, &invite);
    assert!(transmits(&outs)
        .iter()
        .any(|t| t.starts_with("SIP/2.0 100 Trying")));
    // When the TU answers 486
    layer.respond(t0, &key, wire::response(&req, 486, "", Some("r1")));
    assert_eq!(transmits(&drain(&mut layer)).len(), 1);
    // Then it is retransmitted at T1, then 2*T1 later (Timer G)
    layer.handle_timeout(t0 + Duration::from_millis(499));
    assert!(drain(&mut layer).is_empty());
    layer.handle_timeout(t0 + Duration::from_millis(500));
    assert!(transmits(&drain(&mut layer))
        .iter()
        .all(|t| t.starts_with("SIP/2.0 486 Busy Here")));
    assert_eq!(layer.poll_timeout(), Some(t0 + Duration::from_millis(1500)));
    layer.handle_timeout(t0 + Duration::from_millis(1500));
    assert_eq!(transmits(&drain(&mut layer)).len(), 1);
    // A retransmitted INVITE gets the final again
    assert!(layer
        .handle_datagram(t0 + Duration::from_millis(1600), peer(), &invite)
        .is_ok());
    assert_eq!(transmits(&drain(&mut layer)).len(), 1);
    // When the ACK (same branch) arrives
    let ack = request("ACK", "z9hG4bKi1", 1, ";tag=r1", "");
    assert!(layer
        .handle_datagram(t0 + Duration::from_secs(2), peer(), &ack)
        .is_ok());
    // Then it is absorbed, retransmissions stop, and Timer I (T4) ends the transaction
    assert!(drain(&mut layer).is_empty());
    layer.handle_timeout(t0 + Duration::from_millis(3500));
    assert!(drain(&mut layer).is_empty());
    assert_eq!(layer.transaction_count(), 1);
    layer.handle_timeout(t0 + Duration::from_secs(7));
    assert_eq!(layer.transaction_count(), 0);
}

#[test]
fn over_tcp_a_non_2xx_final_is_not_retransmitted() {
    let mut layer = layer();
    let t0 = Instant::now();
    let msg = wire::parse_datagram(&request("INVITE", "z9hG4bKt1", 1, "", ""));
    let Ok(Some(msg)) = msg else {
        panic!("fixture")
    };
    layer.handle_message(t0, tcp_peer(), msg);
    let (key, req) = new_request(&drain(&mut layer)).unwrap_or_else(|| panic!("no request"));
    layer.respond(t0, &key, wire::response(&req, 404, "", Some("r1")));
    drain(&mut layer);
    layer.handle_timeout(t0 + Duration::from_secs(10));
    assert!(transmits(&drain(&mut layer)).is_empty());
}

#[test]
fn the_ack_of_a_2xx_goes_to_the_tu_and_stops_retransmission() {
    let mut layer = layer();
    let t0 = Instant::now();
    let (key, req, _) = receive(&mut layer, t0, &request("INVITE", "z9hG4bKi2", 5, "", ""));
    layer.respond(t0, &key, wire::response(&req, 200, "", Some("r2")));
    drain(&mut layer);
    // When the ACK (a new branch: a transaction of its own) arrives
    let ack = request("ACK", "z9hG4bKack2", 5, ";tag=r2", "");
    assert!(layer
        .handle_datagram(t0 + Duration::from_millis(100), peer(), &ack)
        .is_ok());
    let outs = drain(&mut layer);
    // Then the TU gets it
    assert!(
        matches!(outs.as_slice(), [Output::Ack { request, .. }] if request.method == rsip::Method::Ack)
    );
    // And the 2xx is not retransmitted any more, nor does AckTimeout come
    layer.handle_timeout(t0 + Duration::from_secs(40));
    assert!(drain(&mut layer).is_empty());
    assert_eq!(layer.transaction_count(), 0);
}

#[test]
fn a_2xx_is_retransmitted_until_ack_timeout_after_64_t1() {
    let mut layer = layer();
    let t0 = Instant::now();
    let (key, req, _) = receive(&mut layer, t0, &request("INVITE", "z9hG4bKi3", 1, "", ""));
    layer.respond(t0, &key, wire::response(&req, 200, "", Some("r3")));
    drain(&mut layer);
    // When nobody ACKs, step from deadline to deadline
    let mut sent_at = Vec::new();
    let mut timeout = None;
    while let Some(at) = layer.poll_timeout() {
        layer.handle_timeout(at);
        for out in drain(&mut layer) {
            match out {
                Output::Transmit { .. } => sent_at.push(at - t0),
                Output::AckTimeout { invite } => timeout = Some((at - t0, invite)),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    // Then retransmissions at T1 doubling to T2, and AckTimeout at 64*T1
    let ms: Vec<u128> = sent_at.iter().map(Duration::as_millis).collect();
    assert_eq!(
        ms,
        [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(timeout, Some((Duration::from_secs(32), key)));
    assert_eq!(layer.transaction_count(), 0);
}

#[test]
fn a_matched_cancel_gets_200_and_the_tu_hears_cancelled() {
    let mut layer = layer();
    let t0 = Instant::now();
    let (key, req, _) = receive(&mut layer, t0, &request("INVITE", "z9hG4bKi4", 1, "", ""));
    // When a CANCEL with the INVITE's branch arrives
    let cancel = request("CANCEL", "z9hG4bKi4", 1, "", "");
    assert!(layer.handle_datagram(t0, peer(), &cancel).is_ok());
    let outs = drain(&mut layer);
    // Then the layer answers it 200 and tells the TU
    assert!(transmits(&outs)
        .iter()
        .any(|t| t.starts_with("SIP/2.0 200 OK") && t.contains("CSeq: 1 CANCEL")));
    assert!(outs.contains(&Output::Cancelled {
        invite: key.clone()
    }));
    // And the TU's 487 goes out
    layer.respond(t0, &key, wire::response(&req, 487, "", Some("r4")));
    assert!(transmits(&drain(&mut layer))
        .iter()
        .any(|t| t.starts_with("SIP/2.0 487 Request Terminated")));
    // A retransmitted CANCEL gets the 200 again, without a second Cancelled
    assert!(layer.handle_datagram(t0, peer(), &cancel).is_ok());
    let outs = drain(&mut layer);
    assert_eq!(transmits(&outs).len(), 1);
    assert!(!outs.iter().any(|o| matches!(o, Output::Cancelled { .. })));
}

#[test]
fn an_unmatched_cancel_gets_481() {
    let mut layer = layer();
    let cancel = request("CANCEL", "z9hG4bKnone", 1, "", "");
    assert!(layer
        .handle_datagram(Instant::now(), peer(), &cancel)
        .is_ok());
    let outs = drain(&mut layer);
    assert_eq!(outs.len(), 1);
    assert!(transmits(&outs)
        .iter()
        .all(|t| t.starts_with("SIP/2.0 481 Call/Transaction Does Not Exist")));
    assert_eq!(layer.transaction_count(), 0);
}

#[test]
fn a_cseq_mismatch_gets_400_and_nothing_reaches_the_tu() {
    let mut layer = layer();
    let bad = String::from_utf8_lossy(&request("MESSAGE", "z9hG4bKc1", 1, "", "x"))
        .replace("CSeq: 1 MESSAGE", "CSeq: 1 INVITE");
    let err = layer
        .handle_datagram(Instant::now(), peer(), bad.as_bytes())
        .err();
    assert_eq!(err.map(|e| e.code()), Some("sip.cseq_mismatch"));
    let outs = drain(&mut layer);
    assert_eq!(transmits(&outs).len(), 1);
    assert!(transmits(&outs)
        .iter()
        .all(|t| t.starts_with("SIP/2.0 400 CSeq Method Mismatch")));
}

#[test]
fn content_length_past_the_end_gets_400_for_requests_and_drop_for_responses() {
    let mut layer = layer();
    let bad = String::from_utf8_lossy(&request("MESSAGE", "z9hG4bKc2", 1, "", "x"))
        .replace("Content-Length: 1", "Content-Length: 100");
    let err = layer
        .handle_datagram(Instant::now(), peer(), bad.as_bytes())
        .err();
    assert_eq!(err.map(|e| e.code()), Some("sip.content_length"));
    assert!(transmits(&drain(&mut layer))
        .iter()
        .all(|t| t.starts_with("SIP/2.0 400 Bad Content-Length")));
    let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 50\r\n\r\n";
    assert!(layer
        .handle_datagram(Instant::now(), peer(), resp.as_bytes())
        .is_err());
    assert!(drain(&mut layer).is_empty());
}

#[test]
fn beyond_the_cap_new_requests_get_503_and_are_not_stored() {
    let mut layer = TransactionLayer::new(TimerConfig {
        max_transactions: 2,
        ..TimerConfig::default()
    });
    let t0 = Instant::now();
    receive(
        &mut layer,
        t0,
        &request("MESSAGE", "z9hG4bKcap1", 1, "", "x"),
    );
    receive(
        &mut layer,
        t0,
        &request("MESSAGE", "z9hG4bKcap2", 2, "", "x"),
    );
    // When a third arrives
    assert!(layer
        .handle_datagram(t0, peer(), &request("MESSAGE", "z9hG4bKcap3", 3, "", "x"))
        .is_ok());
    let outs = drain(&mut layer);
    // Then a stateless 503 with Retry-After, no TU request, no state
    assert!(new_request(&outs).is_none());
    let t = transmits(&outs);
    assert!(
        t.iter()
            .all(|t| t.starts_with("SIP/2.0 503 Service Unavailable")
                && t.contains("Retry-After: 32"))
    );
    assert_eq!(t.len(), 1);
    assert_eq!(layer.transaction_count(), 2);
}

#[test]
fn max_forwards_zero_gets_483_except_options() {
    let mut layer = layer();
    let t0 = Instant::now();
    let zero = |m: &str, b: &str| {
        String::from_utf8_lossy(&request(m, b, 1, "", ""))
            .replace("Max-Forwards: 70", "Max-Forwards: 0")
    };
    assert!(layer
        .handle_datagram(t0, peer(), zero("MESSAGE", "z9hG4bKmf1").as_bytes())
        .is_ok());
    let outs = drain(&mut layer);
    assert!(new_request(&outs).is_none());
    assert!(transmits(&outs)
        .iter()
        .all(|t| t.starts_with("SIP/2.0 483 Too Many Hops")));
    // OPTIONS is for the TU (§11)
    assert!(layer
        .handle_datagram(t0, peer(), zero("OPTIONS", "z9hG4bKmf2").as_bytes())
        .is_ok());
    assert!(new_request(&drain(&mut layer)).is_some());
}

#[test]
fn an_unanswered_non_invite_ends_after_64_t1() {
    let mut layer = layer();
    let t0 = Instant::now();
    receive(&mut layer, t0, &request("MESSAGE", "z9hG4bKq", 1, "", "x"));
    assert_eq!(layer.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    layer.handle_timeout(t0 + Duration::from_secs(32));
    assert_eq!(layer.transaction_count(), 0);
}

#[test]
fn poll_timeout_is_always_the_earliest_deadline() {
    let mut layer = layer();
    let t0 = Instant::now();
    assert_eq!(layer.poll_timeout(), None);
    // Given a MESSAGE answered at t0 (Timer J: t0+32s) and an INVITE answered 486 at t0+1s
    let (k1, r1, _) = receive(&mut layer, t0, &request("MESSAGE", "z9hG4bKp1", 1, "", "x"));
    layer.respond(t0, &k1, wire::response(&r1, 200, "", Some("a")));
    assert_eq!(layer.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    let t1 = t0 + Duration::from_secs(1);
    let (k2, r2, _) = receive(&mut layer, t1, &request("INVITE", "z9hG4bKp2", 2, "", ""));
    // The INVITE's guard is later than J
    assert_eq!(layer.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    layer.respond(t1, &k2, wire::response(&r2, 486, "", Some("b")));
    // Then Timer G (t1 + 500ms) is the earliest
    assert_eq!(layer.poll_timeout(), Some(t1 + Duration::from_millis(500)));
    layer.handle_timeout(t1 + Duration::from_millis(500));
    assert_eq!(layer.poll_timeout(), Some(t1 + Duration::from_millis(1500)));
    // After the ACK, Timer I (T4) from then, still before J
    let ack = request("ACK", "z9hG4bKp2", 2, ";tag=b", "");
    let t2 = t1 + Duration::from_secs(1);
    assert!(layer.handle_datagram(t2, peer(), &ack).is_ok());
    assert_eq!(layer.poll_timeout(), Some(t2 + Duration::from_secs(5)));
    layer.handle_timeout(t2 + Duration::from_secs(5));
    assert_eq!(layer.poll_timeout(), Some(t0 + Duration::from_secs(32)));
}

/// `cargo test --release -p conclave-gateway-sip --test transaction_server -- --ignored --nocapture`
#[test]
#[ignore = "throughput figure, run in release"]
fn throughput_of_message_parse_dispatch_respond() {
    let mut layer = TransactionLayer::new(TimerConfig {
        max_transactions: 100_000,
        ..TimerConfig::default()
    });
    let n = 200_000u32;
    let msgs: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            request(
                "MESSAGE",
                &format!("z9hG4bKbench{i}"),
                i + 1,
                "",
                "hello room",
            )
        })
        .collect();
    let t0 = Instant::now();
    let started = std::time::Instant::now();
    let mut sent = 0usize;
    for (i, m) in msgs.iter().enumerate() {
        let now = t0 + Duration::from_micros(i as u64 * 10);
        let _ = layer.handle_datagram(now, peer(), m);
        while let Some(out) = layer.poll_output() {
            match out {
                Output::Request { key, request, .. } => {
                    layer.respond(now, &key, wire::response(&request, 200, "", Some("t")))
                }
                Output::Transmit { bytes, .. } => sent += bytes.len(),
                _ => {}
            }
        }
        layer.handle_timeout(now);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "MESSAGE parse+dispatch+200: {n} in {secs:.2}s = {:.0}/s ({sent} bytes out)",
        f64::from(n) / secs
    );
}
