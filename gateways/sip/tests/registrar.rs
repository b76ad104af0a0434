//! The registrar's bindings: given bindings, when a REGISTER or time passes, then what
//! is bound and what ended.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::{Duration, Instant};

use conclave_engine::ids::Address;
use conclave_gateway_sip::registrar::{
    ContactRequest, RegisterError, RegisterRequest, Registrar, RegistrarLimits,
};

fn limits() -> RegistrarLimits {
    RegistrarLimits {
        min_expires: 60,
        max_expires: 3600,
        default_expires: 3600,
        max_contacts_per_aor: 2,
        max_bindings: 3,
    }
}

fn aor(user: &str) -> Address {
    Address::parse(&format!("sip:{user}@example.org")).unwrap()
}

fn req(contact: &str, expires: Option<u32>, cseq: u32) -> RegisterRequest {
    RegisterRequest {
        wildcard: false,
        contacts: vec![ContactRequest {
            uri: contact.into(),
            expires,
        }],
        expires: None,
        call_id: "c1".into(),
        cseq,
    }
}

#[test]
fn a_first_register_starts_a_binding_with_the_granted_expiry() {
    let mut r = Registrar::new(limits());
    let now = Instant::now();
    let got = r
        .register(
            now,
            &aor("alice"),
            &req("sip:alice@10.0.0.1", Some(7200), 1),
            1u8,
        )
        .unwrap();
    assert!(got.started);
    assert_eq!(got.contacts, vec![("sip:alice@10.0.0.1".to_string(), 3600)]);
    assert_eq!(r.poll_timeout(), Some(now + Duration::from_secs(3600)));
}

#[test]
fn a_too_brief_interval_is_refused_and_changes_nothing() {
    let mut r = Registrar::new(limits());
    let err = r
        .register(
            Instant::now(),
            &aor("alice"),
            &req("sip:a@h", Some(30), 1),
            1u8,
        )
        .unwrap_err();
    assert_eq!(err, RegisterError::IntervalTooBrief { min: 60 });
    assert!(r.is_empty());
}

#[test]
fn a_refresh_moves_the_expiry_and_expires_zero_ends_the_registration() {
    let mut r = Registrar::new(limits());
    let t0 = Instant::now();
    let a = aor("alice");
    r.register(t0, &a, &req("sip:a@h", Some(60), 1), 1u8)
        .unwrap();
    let t1 = t0 + Duration::from_secs(50);
    let again = r
        .register(t1, &a, &req("sip:a@h", Some(60), 2), 1u8)
        .unwrap();
    assert!(!again.started);
    assert_eq!(r.poll_timeout(), Some(t1 + Duration::from_secs(60)));
    let gone = r
        .register(t1, &a, &req("sip:a@h", Some(0), 3), 1u8)
        .unwrap();
    assert!(gone.ended);
    assert!(r.is_empty());
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn an_old_cseq_of_the_same_call_id_is_refused() {
    let mut r = Registrar::new(limits());
    let t0 = Instant::now();
    let a = aor("alice");
    r.register(t0, &a, &req("sip:a@h", Some(60), 5), 1u8)
        .unwrap();
    let err = r
        .register(t0, &a, &req("sip:a@h", Some(0), 5), 1u8)
        .unwrap_err();
    assert_eq!(err, RegisterError::OutOfOrder);
    assert!(r.is_registered(t0, &a));
}

#[test]
fn time_passing_expires_bindings_and_names_the_addresses_that_ended() {
    let mut r = Registrar::new(limits());
    let t0 = Instant::now();
    r.register(t0, &aor("alice"), &req("sip:a@h", Some(60), 1), 1u8)
        .unwrap();
    r.register(t0, &aor("bob"), &req("sip:b@h", Some(120), 1), 1u8)
        .unwrap();
    assert!(r.expire(t0 + Duration::from_secs(59)).is_empty());
    assert_eq!(r.expire(t0 + Duration::from_secs(60)), vec![aor("alice")]);
    assert_eq!(r.len(), 1);
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(120)));
}

#[test]
fn contacts_per_address_and_bindings_in_all_are_bounded() {
    let mut r = Registrar::new(limits());
    let t0 = Instant::now();
    let a = aor("alice");
    r.register(t0, &a, &req("sip:a1@h", Some(60), 1), 1u8)
        .unwrap();
    r.register(t0, &a, &req("sip:a2@h", Some(60), 2), 1u8)
        .unwrap();
    let err = r
        .register(t0, &a, &req("sip:a3@h", Some(60), 3), 1u8)
        .unwrap_err();
    assert_eq!(err, RegisterError::TooManyContacts);
    r.register(t0, &aor("bob"), &req("sip:b@h", Some(60), 1), 1u8)
        .unwrap();
    let err = r
        .register(t0, &aor("carol"), &req("sip:c@h", Some(60), 1), 1u8)
        .unwrap_err();
    assert_eq!(err, RegisterError::Full);
}

#[test]
fn a_wildcard_needs_expires_zero_and_removes_every_contact() {
    let mut r = Registrar::new(limits());
    let t0 = Instant::now();
    let a = aor("alice");
    r.register(t0, &a, &req("sip:a1@h", Some(60), 1), 1u8)
        .unwrap();
    let mut star = RegisterRequest {
        wildcard: true,
        contacts: vec![],
        expires: Some(60),
        call_id: "c2".into(),
        cseq: 1,
    };
    assert_eq!(
        r.register(t0, &a, &star, 1u8).unwrap_err(),
        RegisterError::BadWildcard
    );
    star.expires = Some(0);
    assert!(r.register(t0, &a, &star, 1u8).unwrap().ended);
    assert!(r.is_empty());
}
