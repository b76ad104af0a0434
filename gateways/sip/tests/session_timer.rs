//! RFC 4028 session timers on the UAS side.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use conclave_gateway_sip::session_timer::{
    decide, expires_at, parse_min_se, parse_session_expires, refresh_at, Refresher, SessionExpires,
    SessionTimer, TimerConfig, TimerError,
};
use proptest::prelude::*;

fn cfg() -> TimerConfig {
    TimerConfig::default()
}

fn timer(expires: u32, refresher: Refresher) -> SessionTimer {
    SessionTimer {
        expires,
        refresher,
        require_timer: true,
    }
}

#[test]
fn rfc4028_session_expires_examples_parse() {
    // RFC 4028 §4: "Session-Expires: 4000;refresher=uac" and "x: 480"
    assert_eq!(
        parse_session_expires("4000;refresher=uac").unwrap(),
        SessionExpires {
            delta: 4000,
            refresher: Some(Refresher::Uac)
        }
    );
    assert_eq!(
        parse_session_expires("480").unwrap(),
        SessionExpires {
            delta: 480,
            refresher: None
        }
    );
}

#[test]
fn session_expires_tolerates_spaces_case_and_other_params() {
    let se = parse_session_expires(" 1800 ; Refresher = UAS ; foo=bar;flag").unwrap();
    assert_eq!(
        se,
        SessionExpires {
            delta: 1800,
            refresher: Some(Refresher::Uas)
        }
    );
    // an unknown refresher value is a generic parameter
    assert_eq!(
        parse_session_expires("1800;refresher=xyz")
            .unwrap()
            .refresher,
        None
    );
}

#[test]
fn rfc4028_min_se_example_parses() {
    // RFC 4028 §5: "Min-SE: 3600"
    assert_eq!(parse_min_se("3600").unwrap(), 3600);
    assert_eq!(parse_min_se("3600;lr").unwrap(), 3600);
}

#[test]
fn hostile_values_are_malformed_or_saturated() {
    for bad in [
        "",
        " ",
        "abc",
        "-1",
        "+5",
        "1800,900",
        "18 00",
        ";refresher=uac",
        "1e3",
    ] {
        assert_eq!(
            parse_session_expires(bad).unwrap_err(),
            TimerError::Malformed("Session-Expires"),
            "{bad:?}"
        );
        assert!(parse_min_se(bad).is_err(), "{bad:?}");
    }
    assert!(parse_session_expires(&"9".repeat(300)).is_err());
    // delta-seconds past 2^32-1 count as 2^32-1 (RFC 3261 §25)
    assert_eq!(
        parse_session_expires("99999999999999999999").unwrap().delta,
        u32::MAX
    );
}

#[test]
fn uac_asking_for_1800_gets_1800_refreshed_by_itself() {
    let t = decide(&cfg(), Some("1800"), None, true).unwrap().unwrap();
    assert_eq!(
        t,
        SessionTimer {
            expires: 1800,
            refresher: Refresher::Uac,
            require_timer: true
        }
    );
    assert_eq!(t.header_value(), "1800;refresher=uac");
}

#[test]
fn a_longer_interval_is_lowered_to_our_default_but_never_raised() {
    let t = decide(&cfg(), Some("4000;refresher=uac"), None, true)
        .unwrap()
        .unwrap();
    assert_eq!(t.expires, 1800);
    let t = decide(&cfg(), Some("600"), None, true).unwrap().unwrap();
    assert_eq!(t.expires, 600);
}

#[test]
fn the_interval_is_not_lowered_under_the_requests_min_se() {
    // RFC 4028 §9: the UAS MAY reduce, but not under the request's Min-SE
    let t = decide(&cfg(), Some("4000"), Some("3600"), true)
        .unwrap()
        .unwrap();
    assert_eq!(t.expires, 3600);
}

#[test]
fn too_small_an_interval_gets_422_with_our_min_se() {
    let err = decide(&cfg(), Some("60"), None, true).unwrap_err();
    assert_eq!(err, TimerError::TooSmall { min_se: 90 });
    assert_eq!((err.code(), err.sip_status()), ("timer.too_small", 422));
    let strict = TimerConfig {
        min_se: 120,
        default_expires: 1800,
    };
    assert_eq!(
        decide(&strict, Some("100"), None, true).unwrap_err(),
        TimerError::TooSmall { min_se: 120 }
    );
    // and under the request's own Min-SE
    assert_eq!(
        decide(&cfg(), Some("1000"), Some("1200"), true).unwrap_err(),
        TimerError::TooSmall { min_se: 1200 }
    );
}

#[test]
fn a_configured_minimum_under_90_counts_as_90() {
    let lax = TimerConfig {
        min_se: 30,
        default_expires: 1800,
    };
    assert_eq!(
        decide(&lax, Some("60"), None, true).unwrap_err(),
        TimerError::TooSmall { min_se: 90 }
    );
    assert_eq!(
        decide(&lax, Some("90"), None, true)
            .unwrap()
            .unwrap()
            .expires,
        90
    );
}

#[test]
fn a_supporting_uac_that_asked_nothing_gets_our_default() {
    let t = decide(&cfg(), None, None, true).unwrap().unwrap();
    assert_eq!(
        t,
        SessionTimer {
            expires: 1800,
            refresher: Refresher::Uac,
            require_timer: true
        }
    );
    let t = decide(&cfg(), None, Some("3600"), true).unwrap().unwrap();
    assert_eq!(t.expires, 3600);
}

#[test]
fn a_uac_without_timer_support_that_asked_nothing_gets_no_timer() {
    assert_eq!(decide(&cfg(), None, None, false).unwrap(), None);
}

#[test]
fn a_proxy_inserted_interval_without_uac_support_makes_us_the_refresher() {
    let t = decide(&cfg(), Some("1800"), Some("90"), false)
        .unwrap()
        .unwrap();
    assert_eq!(
        t,
        SessionTimer {
            expires: 1800,
            refresher: Refresher::Uas,
            require_timer: false
        }
    );
}

#[test]
fn the_requested_refresher_is_kept_and_uac_requires_timer() {
    let t = decide(&cfg(), Some("1800;refresher=uas"), None, true)
        .unwrap()
        .unwrap();
    assert_eq!((t.refresher, t.require_timer), (Refresher::Uas, true));
    let t = decide(&cfg(), Some("1800;refresher=uac"), None, false)
        .unwrap()
        .unwrap();
    assert_eq!((t.refresher, t.require_timer), (Refresher::Uac, true));
}

#[test]
fn malformed_headers_are_400() {
    let err = decide(&cfg(), Some("soon"), None, true).unwrap_err();
    assert_eq!((err.code(), err.sip_status()), ("timer.malformed", 400));
    assert_eq!(
        decide(&cfg(), Some("1800"), Some("x"), true).unwrap_err(),
        TimerError::Malformed("Min-SE")
    );
}

#[test]
fn when_the_uac_refreshes_we_bye_before_the_interval_ends() {
    // RFC 4028 §10: interval minus min(32 s, interval / 3)
    let now = Instant::now();
    assert_eq!(
        expires_at(now, &timer(1800, Refresher::Uac)),
        now + Duration::from_secs(1768)
    );
    assert_eq!(
        expires_at(now, &timer(90, Refresher::Uac)),
        now + Duration::from_secs(60)
    );
    assert_eq!(refresh_at(now, &timer(1800, Refresher::Uac)), None);
}

#[test]
fn when_we_refresh_we_do_it_at_half_and_expire_at_the_interval() {
    let now = Instant::now();
    let t = timer(1800, Refresher::Uas);
    assert_eq!(refresh_at(now, &t), Some(now + Duration::from_secs(900)));
    assert_eq!(expires_at(now, &t), now + Duration::from_secs(1800));
}

#[test]
fn the_longest_interval_does_not_overflow_the_clock() {
    let now = Instant::now();
    assert!(expires_at(now, &timer(u32::MAX, Refresher::Uac)) > now);
}

proptest! {
    #[test]
    fn hostile_header_values_never_panic(se in ".{0,64}", min in ".{0,64}", sup in any::<bool>()) {
        let _ = decide(&cfg(), Some(&se), Some(&min), sup);
        if let Ok(Some(t)) = decide(&cfg(), Some(&se), None, sup) {
            prop_assert!(t.expires >= 90);
            let _ = expires_at(Instant::now(), &t);
        }
    }
}
