//! DTMF over SIP INFO and the `*6`/`*1` keypad commands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use conclave_gateway_sip::info::{
    dtmf_from_info, DtmfCommand, DtmfCommands, InfoError, INFO_ACCEPT,
};
use proptest::prelude::*;

const RELAY: &str = "application/dtmf-relay";

#[test]
fn dtmf_relay_body_gives_its_key() {
    // given the SIP INFO body phones send (Cisco, Grandstream, Linphone)
    let key = dtmf_from_info(RELAY, b"Signal=5\r\nDuration=160\r\n").unwrap();
    assert_eq!(key, Some('5'));
}

#[test]
fn dtmf_relay_accepts_spaces_lf_case_and_parameters() {
    let ct = "Application/DTMF-Relay; charset=utf-8";
    assert_eq!(
        dtmf_from_info(ct, b"signal= #\nduration = 250").unwrap(),
        Some('#')
    );
    assert_eq!(
        dtmf_from_info(RELAY, b"Duration=100\r\nSignal=*").unwrap(),
        Some('*')
    );
    assert_eq!(dtmf_from_info(RELAY, b"Signal=d").unwrap(), Some('D'));
}

#[test]
fn event_numbers_10_and_11_are_star_and_hash() {
    assert_eq!(
        dtmf_from_info(RELAY, b"Signal=10\r\nDuration=160").unwrap(),
        Some('*')
    );
    assert_eq!(
        dtmf_from_info(RELAY, b"Signal=11\r\nDuration=160").unwrap(),
        Some('#')
    );
    assert_eq!(dtmf_from_info(RELAY, b"Signal=12").unwrap(), Some('A'));
}

#[test]
fn application_dtmf_is_the_key_alone() {
    assert_eq!(dtmf_from_info("application/dtmf", b"7").unwrap(), Some('7'));
    assert_eq!(
        dtmf_from_info("application/dtmf", b" 11\r\n").unwrap(),
        Some('#')
    );
}

#[test]
fn other_content_types_are_not_dtmf() {
    // given an INFO carrying something else (the caller answers 415 with Accept)
    for ct in [
        "application/media_control+xml",
        "text/plain",
        "",
        "application/dtmfx",
    ] {
        assert_eq!(dtmf_from_info(ct, b"Signal=5").unwrap(), None, "{ct}");
    }
    assert!(INFO_ACCEPT.contains("application/dtmf-relay"));
}

#[test]
fn bad_bodies_are_typed_errors() {
    let cases: [(&[u8], &str); 7] = [
        (b"Duration=160", "info.no_signal"),
        (b"", "info.no_signal"),
        (b"Signal=", "info.no_signal"),
        (b"Signal=16", "info.bad_signal"),
        (b"Signal=55", "info.bad_signal"),
        (b"Signal=E", "info.bad_signal"),
        (b"Signal=\xff", "info.malformed"),
    ];
    for (body, code) in cases {
        let err = dtmf_from_info(RELAY, body).unwrap_err();
        assert_eq!(err.code(), code, "{body:?}");
    }
    let huge = vec![b'a'; 5000];
    assert_eq!(
        dtmf_from_info(RELAY, &huge).unwrap_err(),
        InfoError::TooLarge(5000)
    );
}

#[test]
fn rfc4733_events_map_to_keys() {
    assert_eq!(conclave_media::dtmf::digit_for_event(0), Some('0'));
    assert_eq!(conclave_media::dtmf::digit_for_event(9), Some('9'));
    assert_eq!(conclave_media::dtmf::digit_for_event(10), Some('*'));
    assert_eq!(conclave_media::dtmf::digit_for_event(15), Some('D'));
    assert_eq!(conclave_media::dtmf::digit_for_event(16), None);
}

#[test]
fn star_six_toggles_mute_and_star_one_the_hand() {
    let t0 = Instant::now();
    let mut c = DtmfCommands::new();
    assert_eq!(c.push('*', t0), None);
    assert_eq!(
        c.push('6', t0 + Duration::from_millis(500)),
        Some(DtmfCommand::ToggleMute)
    );
    assert_eq!(c.push('*', t0 + Duration::from_secs(5)), None);
    assert_eq!(
        c.push('1', t0 + Duration::from_secs(8)),
        Some(DtmfCommand::ToggleHand)
    );
}

#[test]
fn the_digit_must_come_within_three_seconds() {
    let t0 = Instant::now();
    let mut c = DtmfCommands::new();
    c.push('*', t0);
    assert_eq!(c.deadline(), Some(t0 + Duration::from_secs(3)));
    assert_eq!(c.push('6', t0 + Duration::from_millis(3001)), None);
}

#[test]
fn other_keys_reset_the_sequence() {
    let t0 = Instant::now();
    let mut c = DtmfCommands::new();
    c.push('*', t0);
    assert_eq!(c.push('5', t0), None);
    assert_eq!(c.push('6', t0), None);
    assert_eq!(c.deadline(), None);
    // a digit without a star does nothing
    assert_eq!(c.push('1', t0), None);
    // a second star restarts the window
    c.push('*', t0);
    c.push('*', t0 + Duration::from_secs(2));
    assert_eq!(
        c.push('1', t0 + Duration::from_secs(4)),
        Some(DtmfCommand::ToggleHand)
    );
    // and a command consumes the star
    assert_eq!(c.push('1', t0 + Duration::from_secs(4)), None);
}

proptest! {
    #[test]
    fn hostile_bodies_never_panic(ct in ".{0,40}", body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = dtmf_from_info(&ct, &body);
        let _ = dtmf_from_info(RELAY, &body);
        let _ = dtmf_from_info("application/dtmf", &body);
    }
}
