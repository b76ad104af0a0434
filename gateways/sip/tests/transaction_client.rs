//! Non-INVITE client transactions on a virtual clock (RFC 3261 §17.1.2).

use std::net::SocketAddr;
use std::time::Instant;

use conclave_gateway_sip::transaction::{Output, Peer, TimerConfig, TransactionLayer};
use conclave_gateway_sip::wire::{self, RequestSpec};

fn addr() -> SocketAddr {
    SocketAddr::from(([198, 51, 100, 7], 5060))
}

fn message(transport: rsip::Transport) -> rsip::Request {
    let uri = rsip::Uri::try_from("sip:bob@198.51.100.7:5060").unwrap_or_default();
    wire::request(RequestSpec {
        method: rsip::Method::Message,
        uri,
        from: "<sip:chat-lobby@conclave.test>",
        from_tag: "room1",
        to: "<sip:bob@conclave.test>",
        to_tag: None,
        call_id: "out-1@conclave.test",
        cseq: 1,
        sent_by: "127.0.0.1:5060",
        transport,
        contact: None,
        route: &[],
        body: Some(("text/plain", b"alice: hi".to_vec())),
        extra: Vec::new(),
    })
}

fn drain(layer: &mut TransactionLayer) -> Vec<Output> {
    std::iter::from_fn(|| layer.poll_output()).collect()
}

/// Steps the clock from deadline to deadline until nothing is scheduled.
fn run_timers(layer: &mut TransactionLayer, t0: Instant) -> Vec<(u128, Output)> {
    let mut seen = Vec::new();
    while let Some(at) = layer.poll_timeout() {
        layer.handle_timeout(at);
        seen.extend(drain(layer).into_iter().map(|o| ((at - t0).as_millis(), o)));
    }
    seen
}

fn response_to(req: &rsip::Request, code: u16) -> Vec<u8> {
    wire::to_bytes(&wire::response(req, code, "", Some("b0b")).into())
}

#[test]
fn the_built_request_is_well_formed() {
    let req = message(rsip::Transport::Udp);
    let bytes = wire::to_bytes(&req.clone().into());
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(
        text.starts_with("MESSAGE sip:bob@198.51.100.7:5060 SIP/2.0\r\n"),
        "{text}"
    );
    assert!(text.contains("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK"));
    assert!(text.contains("Max-Forwards: 70\r\n"));
    assert!(text.contains("From: <sip:chat-lobby@conclave.test>;tag=room1\r\n"));
    assert!(text.contains("User-Agent: Conclave\r\n"));
    assert!(text.ends_with("Content-Length: 9\r\n\r\nalice: hi"));
    // and our own parser accepts it back
    assert!(matches!(wire::parse_datagram(&bytes), Ok(Some(_))));
}

#[test]
fn a_message_over_udp_is_retransmitted_by_timer_e_and_times_out_by_timer_f() {
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let key = layer.send_request(t0, Peer::udp(addr()), message(rsip::Transport::Udp));
    assert_eq!(drain(&mut layer).len(), 1);
    let seen = run_timers(&mut layer, t0);
    let resent: Vec<u128> = seen
        .iter()
        .filter(|(_, o)| matches!(o, Output::Transmit { .. }))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(
        resent,
        [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(
        seen.last().map(|(t, o)| (*t, o.clone())),
        Some((32_000, Output::Timeout { key }))
    );
}

#[test]
fn a_message_over_tcp_is_not_retransmitted_but_still_times_out() {
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let key = layer.send_request(t0, Peer::tcp(addr(), 3), message(rsip::Transport::Tcp));
    drain(&mut layer);
    let seen = run_timers(&mut layer, t0);
    assert_eq!(seen, vec![(32_000, Output::Timeout { key })]);
}

#[test]
fn a_final_response_completes_and_its_retransmission_is_absorbed() {
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = message(rsip::Transport::Udp);
    let key = layer.send_request(t0, Peer::udp(addr()), req.clone());
    drain(&mut layer);
    // When a 100 then a 200 arrive
    assert!(layer
        .handle_datagram(t0, Peer::udp(addr()), &response_to(&req, 100))
        .is_ok());
    assert!(layer
        .handle_datagram(t0, Peer::udp(addr()), &response_to(&req, 200))
        .is_ok());
    let outs = drain(&mut layer);
    let codes: Vec<u16> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Response { key: k, response } if *k == key => Some(response.status_code.code()),
            _ => None,
        })
        .collect();
    // Then both reach the TU, the 200 once
    assert_eq!(codes, [100, 200]);
    assert!(layer
        .handle_datagram(t0, Peer::udp(addr()), &response_to(&req, 200))
        .is_ok());
    assert!(drain(&mut layer).is_empty());
    // And Timer K (T4) ends it, with no retransmission or Timeout
    assert!(run_timers(&mut layer, t0).is_empty());
    assert_eq!(layer.transaction_count(), 0);
}

#[test]
fn over_the_cap_send_request_times_out_at_once() {
    let mut layer = TransactionLayer::new(TimerConfig {
        max_transactions: 1,
        ..TimerConfig::default()
    });
    let t0 = Instant::now();
    layer.send_request(t0, Peer::udp(addr()), message(rsip::Transport::Udp));
    drain(&mut layer);
    let key = layer.send_request(t0, Peer::udp(addr()), message(rsip::Transport::Udp));
    assert_eq!(drain(&mut layer), vec![Output::Timeout { key }]);
}
