//! Parsing and checking: what rsip parses and what we refuse on top.

use conclave_gateway_sip::wire::{self, parse_datagram, Framing, WireError};
use rsip::prelude::*;

mod common;

use common::{fixture, FIXTURES};

fn text(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap_or_default()
}

fn parse(s: &str) -> Result<Option<rsip::SipMessage>, WireError> {
    parse_datagram(s.as_bytes())
}

#[test]
fn every_fixture_parses() {
    for &name in FIXTURES {
        let bytes = fixture(name);
        assert!(!bytes.is_empty(), "{name} fixture missing");
        // When parsed, then it is a message
        let parsed = parse_datagram(&bytes);
        assert!(matches!(parsed, Ok(Some(_))), "{name}: {parsed:?}");
    }
}

#[test]
fn compact_and_folded_headers_are_expanded() {
    // Given a MESSAGE with compact names and a folded Subject
    let msg = parse(&text("message_compact")).ok().flatten();
    // Then rsip sees the long names
    let Some(rsip::SipMessage::Request(req)) = msg else {
        panic!("not a request");
    };
    assert_eq!(
        req.call_id_header().map(|c| c.value().to_string()).ok(),
        Some("compact-call-id-1".into())
    );
    assert!(req.from_header().is_ok() && req.to_header().is_ok() && req.via_header().is_ok());
    assert_eq!(req.body, b"#create room private");
    let subject = req.headers.iter().find_map(|h| match h {
        rsip::Header::Subject(s) => Some(s.value().to_string()),
        _ => None,
    });
    assert_eq!(subject.as_deref(), Some("folded across two lines"));
}

#[test]
fn keep_alives_and_empty_datagrams_are_ignored() {
    assert_eq!(parse("\r\n\r\n"), Ok(None));
    assert_eq!(parse("\r\n"), Ok(None));
    assert_eq!(parse(""), Ok(None));
}

#[test]
fn leading_crlf_before_start_line_is_skipped() {
    let msg = format!("\r\n\r\n{}", text("options"));
    assert!(matches!(parse(&msg), Ok(Some(_))));
}

#[test]
fn bad_start_line_is_refused_with_400() {
    // Given a request line with a bogus version token
    let msg = text("options").replacen("SIP/2.0\r\n", "HTTP/1.1\r\n", 1);
    // When parsed
    let err = parse(&msg).err();
    // Then it is a bad start line, answered 400
    assert_eq!(err, Some(WireError::BadStartLine));
    assert_eq!(
        err.as_ref().map(WireError::code),
        Some("sip.bad_start_line")
    );
    let answer = err.and_then(|e| wire::stateless_answer(msg.as_bytes(), &e));
    let answer = String::from_utf8(answer.unwrap_or_default()).unwrap_or_default();
    assert!(
        answer.starts_with("SIP/2.0 400 Bad Start Line\r\n"),
        "{answer}"
    );
    assert!(answer.contains("Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKopt1\r\n"));
    assert!(answer.contains("To: <sip:conclave.test>;tag=sl."));
}

#[test]
fn other_sip_version_gets_505() {
    let msg = text("options").replacen("SIP/2.0\r\n", "SIP/3.0\r\n", 1);
    let err = parse(&msg).err();
    assert_eq!(err, Some(WireError::BadVersion));
    let answer = err
        .and_then(|e| wire::stateless_answer(msg.as_bytes(), &e))
        .unwrap_or_default();
    assert!(answer.starts_with(b"SIP/2.0 505 "));
}

#[test]
fn unknown_method_gets_501() {
    let msg = text("options").replace("OPTIONS", "FOOBAR");
    let err = parse(&msg).err();
    assert_eq!(err, Some(WireError::UnknownMethod));
    let answer = err
        .and_then(|e| wire::stateless_answer(msg.as_bytes(), &e))
        .unwrap_or_default();
    assert!(answer.starts_with(b"SIP/2.0 501 Not Implemented\r\n"));
}

#[test]
fn each_missing_mandatory_header_is_named() {
    for (header, line) in [
        ("To", "To: <sip:conclave.test>\r\n"),
        ("From", "From: <sip:monitor@198.51.100.7>;tag=mon1\r\n"),
        ("Call-ID", "Call-ID: opt-1@198.51.100.7\r\n"),
        ("CSeq", "CSeq: 1 OPTIONS\r\n"),
        ("Max-Forwards", "Max-Forwards: 70\r\n"),
        (
            "Via",
            "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKopt1\r\n",
        ),
    ] {
        let msg = text("options").replace(line, "");
        let err = parse(&msg).err();
        assert_eq!(err, Some(WireError::MissingHeader(header)), "{header}");
        assert_eq!(
            err.as_ref().map(WireError::code),
            Some("sip.missing_header")
        );
    }
}

#[test]
fn response_without_max_forwards_is_fine() {
    assert!(matches!(parse(&text("resp_200")), Ok(Some(_))));
}

#[test]
fn cseq_method_mismatch_is_refused_with_400() {
    // Given an OPTIONS whose CSeq says INVITE
    let msg = text("options").replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
    // Then
    let err = parse(&msg).err();
    assert_eq!(err, Some(WireError::CseqMismatch));
    assert!(err.as_ref().is_some_and(WireError::wants_400));
    let answer = err
        .and_then(|e| wire::stateless_answer(msg.as_bytes(), &e))
        .unwrap_or_default();
    assert!(answer.starts_with(b"SIP/2.0 400 CSeq Method Mismatch\r\n"));
}

#[test]
fn content_length_past_the_end_is_refused_and_answered_400() {
    let msg = text("message").replace("Content-Length: 27", "Content-Length: 200");
    let err = parse(&msg).err();
    assert_eq!(err, Some(WireError::ContentLength));
    assert!(err.as_ref().is_some_and(WireError::wants_400));
}

#[test]
fn shorter_content_length_truncates_the_body() {
    let msg = text("message").replace("Content-Length: 27", "Content-Length: 5");
    let Ok(Some(rsip::SipMessage::Request(req))) = parse(&msg) else {
        panic!("not parsed");
    };
    assert_eq!(req.body, b"#join");
}

#[test]
fn missing_content_length_on_a_datagram_takes_the_rest() {
    let msg = text("message").replace("Content-Length: 27\r\n", "");
    let Ok(Some(rsip::SipMessage::Request(req))) = parse(&msg) else {
        panic!("not parsed");
    };
    assert_eq!(req.body, b"#join lobby, hello everyone");
    // but a stream needs it
    let err = wire::parse_message(msg.as_bytes(), Framing::Stream).err();
    assert_eq!(err, Some(WireError::ContentLength));
}

#[test]
fn via_without_branch_is_refused() {
    let msg = text("options").replace(";branch=z9hG4bKopt1", "");
    assert_eq!(parse(&msg).err(), Some(WireError::MissingBranch));
}

#[test]
fn too_large_datagram_is_dropped_silently() {
    let msg = format!("{}{}", text("message"), "x".repeat(70_000));
    let err = parse(&msg).err();
    assert_eq!(err, Some(WireError::TooLarge));
    assert_eq!(
        err.and_then(|e| wire::stateless_answer(msg.as_bytes(), &e)),
        None
    );
}

#[test]
fn header_limits_are_enforced() {
    let long = text("options").replace(
        "Accept: application/sdp",
        &format!("X-Long: {}", "a".repeat(9000)),
    );
    assert_eq!(parse(&long).err(), Some(WireError::HeaderTooLong));
    let many = text("options").replace("Accept: application/sdp\r\n", &"X-A: b\r\n".repeat(200));
    assert_eq!(parse(&many).err(), Some(WireError::TooManyHeaders));
}

#[test]
fn nul_and_non_utf8_header_bytes_are_refused_not_panicking() {
    let nul = text("options").replace("application/sdp", "app\0lication");
    assert_eq!(parse(&nul).err(), Some(WireError::BadHeader));
    let mut bytes = fixture("options");
    if let Some(pos) = bytes.windows(3).position(|w| w == b"sdp") {
        bytes[pos] = 0xff;
    }
    assert_eq!(parse_datagram(&bytes).err(), Some(WireError::BadHeader));
}

#[test]
fn responses_and_acks_are_never_answered() {
    let resp = text("resp_200").replace("CSeq: 1 MESSAGE\r\n", "");
    let err = parse(&resp).err();
    assert_eq!(err, Some(WireError::MissingHeader("CSeq")));
    assert_eq!(
        err.and_then(|e| wire::stateless_answer(resp.as_bytes(), &e)),
        None
    );
    let ack = text("ack").replace("Max-Forwards: 70\r\n", "");
    let err = parse(&ack).err();
    assert_eq!(
        err.and_then(|e| wire::stateless_answer(ack.as_bytes(), &e)),
        None
    );
}

#[test]
fn unreadable_request_is_dropped() {
    // Given a request without Call-ID (a 400 could not be matched by the client)
    let msg = text("options").replace("Call-ID: opt-1@198.51.100.7\r\n", "");
    let err = parse(&msg).err();
    // Then the error wants 400 but no answer can be built
    assert!(err.as_ref().is_some_and(WireError::wants_400));
    assert_eq!(
        err.and_then(|e| wire::stateless_answer(msg.as_bytes(), &e)),
        None
    );
}
