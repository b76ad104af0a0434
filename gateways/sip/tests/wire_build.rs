//! Building responses, serialising, ids, and TCP framing.

use conclave_gateway_sip::wire::{self, StreamFramer, WireError};
use rsip::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/sip/{name}.sip",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).unwrap_or_default()
}

fn request(name: &str) -> rsip::Request {
    match wire::parse_datagram(&fixture(name)) {
        Ok(Some(rsip::SipMessage::Request(r))) => r,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn a_response_copies_vias_in_order_and_adds_the_to_tag() {
    // Given a request with two Vias
    let text = String::from_utf8_lossy(&fixture("options")).replace(
        "Max-Forwards: 70\r\n",
        "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKproxy\r\nMax-Forwards: 70\r\n",
    );
    let Ok(Some(rsip::SipMessage::Request(req))) = wire::parse_datagram(text.as_bytes()) else {
        panic!("parse");
    };
    // When answered
    let resp = wire::response(&req, 200, "", Some("xyz"));
    let bytes = String::from_utf8(wire::to_bytes(&resp.clone().into())).unwrap_or_default();
    // Then
    assert!(bytes.starts_with("SIP/2.0 200 OK\r\n"));
    let vias: Vec<&str> = bytes.lines().filter(|l| l.starts_with("Via:")).collect();
    assert_eq!(
        vias,
        [
            "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKopt1",
            "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKproxy"
        ]
    );
    assert!(bytes.contains("To: <sip:conclave.test>;tag=xyz\r\n"));
    assert!(bytes.contains("From: <sip:monitor@198.51.100.7>;tag=mon1\r\n"));
    assert!(bytes.contains("Call-ID: opt-1@198.51.100.7\r\n"));
    assert!(bytes.contains("CSeq: 1 OPTIONS\r\n"));
    assert!(bytes.contains("Server: Conclave\r\n"));
    assert!(bytes.ends_with("Content-Length: 0\r\n\r\n"));
    assert_eq!(resp.status_code, rsip::StatusCode::OK);
}

#[test]
fn an_existing_to_tag_is_kept() {
    let req = request("bye");
    let resp = wire::response(&req, 200, "", Some("other"));
    let to = resp
        .to_header()
        .map(|t| t.value().to_string())
        .unwrap_or_default();
    assert_eq!(to, "<sip:chat-lobby@conclave.test>;tag=314159");
}

#[test]
fn a_custom_reason_and_a_body_are_serialised() {
    let req = request("message");
    let resp = wire::response_with_body(
        wire::response(&req, 404, "No Such Room", Some("t")),
        "text/plain",
        b"room?".to_vec(),
    );
    assert_eq!(resp.status_code.code(), 404);
    let bytes = String::from_utf8(wire::to_bytes(&resp.into())).unwrap_or_default();
    assert!(bytes.starts_with("SIP/2.0 404 No Such Room\r\n"));
    assert!(bytes.contains("Content-Type: text/plain\r\n"));
    assert!(bytes.ends_with("Content-Length: 5\r\n\r\nroom?"));
    assert!(matches!(
        wire::parse_datagram(bytes.as_bytes()),
        Ok(Some(_))
    ));
}

#[test]
fn ids_are_random_and_branches_carry_the_cookie() {
    let (a, b) = (wire::new_branch(), wire::new_branch());
    assert!(a.starts_with(wire::MAGIC_COOKIE) && a != b);
    assert_ne!(wire::new_tag(), wire::new_tag());
    assert!(wire::new_call_id(Some("conclave.test")).ends_with("@conclave.test"));
    assert!(wire::new_stateless_tag().starts_with(wire::STATELESS_TAG_PREFIX));
}

#[test]
fn tags_are_read_outside_the_uri() {
    assert_eq!(wire::tag_of("<sip:a@b;tag=no>;tag=yes"), Some("yes"));
    assert_eq!(wire::tag_of("<sip:a@b;tag=no>"), None);
    assert_eq!(wire::tag_of("sip:a@b;tag=x"), Some("x"));
}

#[test]
fn the_framer_splits_pipelined_and_partial_messages_and_skips_keep_alives() {
    let (a, b) = (fixture("message"), fixture("invite_sdp"));
    let mut stream = b"\r\n\r\n".to_vec();
    stream.extend_from_slice(&a);
    stream.extend_from_slice(b"\r\n\r\n");
    stream.extend_from_slice(&b);
    let mut framer = StreamFramer::new();
    let mut got = Vec::new();
    // When the bytes arrive 7 at a time
    for chunk in stream.chunks(7) {
        framer.push(chunk);
        while let Some(m) = framer.next() {
            got.push(m.map(|m| m.is_request()));
        }
    }
    // Then both messages come out whole
    assert_eq!(got, [Ok(true), Ok(true)]);
    assert_eq!(framer.buffered(), 0);
}

#[test]
fn a_stream_message_without_content_length_is_fatal_with_a_400() {
    let text = String::from_utf8_lossy(&fixture("options")).replace("Content-Length: 0\r\n", "");
    let mut framer = StreamFramer::new();
    framer.push(text.as_bytes());
    let Some(Err(rejected)) = framer.next() else {
        panic!("expected a rejection");
    };
    assert_eq!(rejected.error, WireError::ContentLength);
    assert!(rejected.fatal && framer.is_closed());
    assert!(rejected
        .answer
        .unwrap_or_default()
        .starts_with(b"SIP/2.0 400 "));
}

#[test]
fn a_bad_message_on_a_stream_is_answered_but_not_fatal() {
    let bad =
        String::from_utf8_lossy(&fixture("options")).replace("CSeq: 1 OPTIONS", "CSeq: 1 BYE");
    let mut framer = StreamFramer::new();
    framer.push(bad.as_bytes());
    framer.push(&fixture("options"));
    let first = framer.next();
    assert!(
        matches!(&first, Some(Err(r)) if r.error == WireError::CseqMismatch && !r.fatal && r.answer.is_some())
    );
    assert!(matches!(framer.next(), Some(Ok(_))));
}

#[test]
fn garbage_and_endless_headers_close_the_stream() {
    let mut framer = StreamFramer::new();
    framer.push(b"\x16\x03\x01 TLS hello");
    assert!(matches!(framer.next(), Some(Err(r)) if r.error == WireError::Garbage && r.fatal));
    let mut framer = StreamFramer::new();
    framer.push(b"OPTIONS sip:a SIP/2.0\r\n");
    for _ in 0..2000 {
        framer.push(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        if framer.is_closed() {
            break;
        }
        if let Some(Err(r)) = framer.next() {
            assert_eq!(r.error, WireError::TooLarge);
            break;
        }
    }
    assert!(framer.is_closed());
    assert!(framer.buffered() <= wire::MAX_BUFFER);
}

#[test]
fn a_keep_alive_split_between_reads_is_not_garbage() {
    let mut framer = StreamFramer::new();
    for part in [&b"\r"[..], b"\n\r", b"\n"] {
        framer.push(part);
        assert!(framer.next().is_none());
    }
    framer.push(&fixture("bye"));
    assert!(matches!(framer.next(), Some(Ok(_))));
    assert!(!framer.is_closed());
}

#[test]
fn a_slow_sender_gets_its_message_byte_by_byte() {
    // Given a message (with body) arriving one byte per read
    let msg = fixture("invite_sdp");
    let mut framer = StreamFramer::new();
    let mut got = 0;
    for b in &msg {
        framer.push(std::slice::from_ref(b));
        while let Some(m) = framer.next() {
            assert!(m.is_ok());
            got += 1;
        }
    }
    // Then it comes out once, whole
    assert_eq!(got, 1);
    assert_eq!(framer.buffered(), 0);
}
