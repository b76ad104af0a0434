//! Digest authentication for the registrar: known vectors, a REGISTER answered by hand,
//! and every way an answer is refused, on a virtual clock (seconds since the epoch).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use conclave_gateway_sip::digest::{
    ha1, response, Algorithm, Challenger, DigestError, StoredHa1, Verified,
};
use proptest::prelude::*;

const KEY: [u8; 32] = [7; 32];
const REALM: &str = "example.org";
const URI: &str = "sip:example.org";
const T0: u64 = 1_700_000_000;

fn alice() -> StoredHa1 {
    StoredHa1 {
        md5: ha1(Algorithm::Md5, "alice", REALM, "secret"),
        sha256: ha1(Algorithm::Sha256, "alice", REALM, "secret"),
    }
}

fn lookup(user: &str) -> Option<StoredHa1> {
    (user == "alice").then(alice)
}

/// The nonce of a challenge header value.
fn nonce_of(challenge: &str) -> String {
    let start = challenge.find("nonce=\"").unwrap() + "nonce=\"".len();
    let end = start + challenge[start..].find('"').unwrap();
    challenge[start..end].to_owned()
}

/// An `Authorization` value as a phone would send it for REGISTER.
fn answer(algorithm: Algorithm, nonce: &str, nc: u32, password: &str) -> String {
    let ha1 = ha1(algorithm, "alice", REALM, password);
    let nc = format!("{nc:08x}");
    let r = response(algorithm, &ha1, nonce, &nc, "0a4f113b", "REGISTER", URI);
    format!(
        "Digest username=\"alice\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{URI}\", \
         response=\"{r}\", algorithm={}, cnonce=\"0a4f113b\", qop=auth, nc={nc}",
        algorithm.as_str()
    )
}

fn verify(c: &mut Challenger, auth: &str, now: u64) -> Result<Verified, DigestError> {
    c.verify(auth, "REGISTER", URI, REALM, now, lookup)
}

#[test]
fn rfc_7616_example_responses() {
    // RFC 7616 §3.9.1 (HTTP, but the computation is the same).
    let (user, realm, pw) = ("Mufasa", "http-auth@example.org", "Circle of Life");
    let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    let md5 = ha1(Algorithm::Md5, user, realm, pw);
    assert_eq!(
        response(
            Algorithm::Md5,
            &md5,
            nonce,
            "00000001",
            cnonce,
            "GET",
            "/dir/index.html"
        ),
        "8ca523f5e9506fed4657c9700eebdbec"
    );
    let sha = ha1(Algorithm::Sha256, user, realm, pw);
    assert_eq!(
        response(
            Algorithm::Sha256,
            &sha,
            nonce,
            "00000001",
            cnonce,
            "GET",
            "/dir/index.html"
        ),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
    // And the engine stores the same HA1 as the gateway computes.
    assert_eq!(
        md5,
        conclave_engine::sip_digest::ha1(
            conclave_engine::sip_digest::DigestAlgorithm::Md5,
            user,
            realm,
            pw
        )
    );
}

#[test]
fn a_register_answered_by_hand_is_accepted() {
    // Given a challenge,
    let mut c = Challenger::new(KEY);
    let ch = c.challenge(REALM, T0, false);
    // then it offers SHA-256 first, then MD5, with qop=auth and one nonce.
    assert_eq!(ch.len(), 2);
    assert!(ch[0].contains("algorithm=SHA-256") && ch[1].contains("algorithm=MD5"));
    assert!(ch
        .iter()
        .all(|h| h.contains("qop=\"auth\"") && !h.contains("stale")));
    assert_eq!(nonce_of(&ch[0]), nonce_of(&ch[1]));
    let nonce = nonce_of(&ch[0]);
    // A response computed by hand: HA1 = MD5("alice:example.org:secret"), HA2 =
    // MD5("REGISTER:sip:example.org"), response = MD5(HA1:nonce:nc:cnonce:auth:HA2).
    let ha1_hand = Algorithm::Md5.hash_hex(b"alice:example.org:secret");
    let ha2_hand = Algorithm::Md5.hash_hex(b"REGISTER:sip:example.org");
    let r = Algorithm::Md5
        .hash_hex(format!("{ha1_hand}:{nonce}:00000001:abc:auth:{ha2_hand}").as_bytes());
    let auth = format!(
        "Digest username=\"alice\",realm=\"example.org\",nonce=\"{nonce}\",\
         uri=\"sip:example.org\",response=\"{r}\",cnonce=\"abc\",nc=00000001,qop=auth"
    );
    // when it comes back (no algorithm: MD5 by default),
    let ok = verify(&mut c, &auth, T0 + 1).unwrap();
    // then alice is verified with MD5.
    assert_eq!(
        ok,
        Verified {
            username: "alice".into(),
            algorithm: Algorithm::Md5
        }
    );
}

#[test]
fn sha_256_answers_are_accepted_and_counts_must_increase() {
    let mut c = Challenger::new(KEY);
    let nonce = nonce_of(&c.challenge(REALM, T0, false)[0]);
    let v = verify(&mut c, &answer(Algorithm::Sha256, &nonce, 1, "secret"), T0).unwrap();
    assert_eq!(v.algorithm, Algorithm::Sha256);
    // The next request with the same nonce and a higher count is fine,
    verify(
        &mut c,
        &answer(Algorithm::Sha256, &nonce, 2, "secret"),
        T0 + 10,
    )
    .unwrap();
    // the same count again is a replay, and so is a lower one.
    for nc in [2, 1] {
        assert_eq!(
            verify(
                &mut c,
                &answer(Algorithm::Sha256, &nonce, nc, "secret"),
                T0 + 11
            ),
            Err(DigestError::Replayed)
        );
    }
}

#[test]
fn an_expired_nonce_with_a_right_answer_is_stale() {
    let mut c = Challenger::with_limits(KEY, 300, 16);
    let nonce = nonce_of(&c.challenge(REALM, T0, false)[0]);
    let auth = answer(Algorithm::Md5, &nonce, 1, "secret");
    let err = verify(&mut c, &auth, T0 + 301).unwrap_err();
    assert_eq!(err, DigestError::Stale);
    assert!(err.is_stale());
    assert_eq!(err.code(), "digest.stale");
    // The registrar's next challenge says so.
    assert!(c.challenge(REALM, T0 + 301, true)[0].ends_with("stale=true"));
    // With a wrong password it is not stale but wrong.
    let wrong = answer(Algorithm::Md5, &nonce, 1, "guess");
    assert_eq!(
        verify(&mut c, &wrong, T0 + 301),
        Err(DigestError::WrongResponse)
    );
}

#[test]
fn wrong_password_unknown_user_realm_uri_and_forged_nonce_are_refused() {
    let mut c = Challenger::new(KEY);
    let nonce = nonce_of(&c.challenge(REALM, T0, false)[0]);
    let good = answer(Algorithm::Md5, &nonce, 1, "secret");
    let cases = [
        (
            answer(Algorithm::Md5, &nonce, 1, "guess"),
            DigestError::WrongResponse,
        ),
        (
            good.replace("username=\"alice\"", "username=\"mallory\""),
            DigestError::UnknownUser,
        ),
        (
            good.replace("realm=\"example.org\"", "realm=\"other.org\""),
            DigestError::Realm,
        ),
        (
            good.replace("uri=\"sip:example.org\"", "uri=\"sip:other.org\""),
            DigestError::Uri,
        ),
        (
            good.replace(&nonce[40..], &"0".repeat(24)),
            DigestError::Nonce,
        ),
        (good.replace("qop=auth", "qop=auth-int"), DigestError::Qop),
        (
            good.replace("algorithm=MD5", "algorithm=MD5-sess"),
            DigestError::Algorithm,
        ),
        (
            good.replace(", cnonce=\"0a4f113b\"", ""),
            DigestError::Malformed("cnonce missing"),
        ),
        (
            good.replace("nc=00000001", "nc=1"),
            DigestError::Malformed("nc is not 8 hex digits"),
        ),
        (
            format!("{good}, nc=00000002"),
            DigestError::Malformed("a parameter is given twice"),
        ),
        (String::new(), DigestError::Missing),
        (
            "Basic YWxpY2U6c2VjcmV0".into(),
            DigestError::Malformed("not Digest credentials"),
        ),
    ];
    for (auth, expected) in cases {
        assert_eq!(verify(&mut c, &auth, T0), Err(expected), "{auth}");
    }
    // None of them burnt the count: the right answer still passes.
    verify(&mut c, &good, T0).unwrap();
}

#[test]
fn a_nonce_for_another_realm_is_not_ours() {
    let mut c = Challenger::new(KEY);
    let nonce = nonce_of(&c.challenge("other.org", T0, false)[0]);
    assert_eq!(
        verify(&mut c, &answer(Algorithm::Md5, &nonce, 1, "secret"), T0),
        Err(DigestError::Nonce)
    );
    // Nor is one from a challenger with another key (a previous run).
    let old = Challenger::new([8; 32]);
    let nonce = nonce_of(&old.challenge(REALM, T0, false)[0]);
    assert_eq!(
        verify(&mut c, &answer(Algorithm::Md5, &nonce, 1, "secret"), T0),
        Err(DigestError::Nonce)
    );
}

#[test]
fn the_replay_map_stays_bounded_and_dropping_a_nonce_makes_it_stale() {
    // Given room for two nonces,
    let mut c = Challenger::with_limits(KEY, 300, 2);
    let n: Vec<String> = (0..3)
        .map(|i| nonce_of(&c.challenge(REALM, T0 + i, false)[0]))
        .collect();
    // when three are used,
    for (i, nonce) in n.iter().enumerate() {
        verify(
            &mut c,
            &answer(Algorithm::Md5, nonce, 1, "secret"),
            T0 + 3 + i as u64,
        )
        .unwrap();
    }
    // then only two are tracked, and the dropped one cannot be replayed: it is stale.
    assert_eq!(c.tracked_nonces(), 2);
    assert_eq!(
        verify(&mut c, &answer(Algorithm::Md5, &n[0], 1, "secret"), T0 + 10),
        Err(DigestError::Stale)
    );
    assert_eq!(
        verify(&mut c, &answer(Algorithm::Md5, &n[2], 1, "secret"), T0 + 10),
        Err(DigestError::Replayed)
    );
}

#[test]
fn two_challenges_in_the_same_second_get_different_nonces() {
    let c = Challenger::new(KEY);
    let a = nonce_of(&c.challenge(REALM, T0, false)[0]);
    let b = nonce_of(&c.challenge(REALM, T0, false)[0]);
    assert_ne!(a, b);
}

#[test]
fn quoted_strings_with_escapes_and_unknown_parameters_parse() {
    let mut c = Challenger::new(KEY);
    let nonce = nonce_of(&c.challenge(REALM, T0, false)[0]);
    // Escaped characters in a quoted string, an unknown parameter and odd spacing.
    let auth = answer(Algorithm::Md5, &nonce, 1, "secret")
        .replace(
            "username=\"alice\"",
            "username=\"al\\ice\" , opaque=\"x\\\"y\"",
        )
        .replacen("Digest ", "digest   ", 1);
    assert_eq!(verify(&mut c, &auth, T0).unwrap().username, "alice");
}

#[test]
fn error_codes_are_stable() {
    let codes = [
        (DigestError::Missing, "digest.missing"),
        (DigestError::Malformed("x"), "digest.malformed"),
        (DigestError::UnknownUser, "digest.unknown_user"),
        (DigestError::WrongResponse, "digest.wrong_response"),
        (DigestError::Stale, "digest.stale"),
        (DigestError::Replayed, "digest.replayed"),
        (DigestError::Realm, "digest.realm"),
        (DigestError::Algorithm, "digest.algorithm"),
        (DigestError::Uri, "digest.uri"),
        (DigestError::Qop, "digest.qop"),
        (DigestError::Nonce, "digest.nonce"),
    ];
    for (e, code) in codes {
        assert_eq!(e.code(), code);
    }
}

proptest! {
    #[test]
    fn arbitrary_authorization_values_never_panic(s in ".{0,300}") {
        let mut c = Challenger::new(KEY);
        let _ = verify(&mut c, &s, T0);
        let _ = verify(&mut c, &format!("Digest {s}"), T0);
    }

    #[test]
    fn mutated_real_answers_never_panic(cut in 0usize..400, junk in "[ -~\\\\\",=]{0,8}") {
        let mut c = Challenger::new(KEY);
        let nonce = nonce_of(&c.challenge(REALM, T0, false)[0]);
        let good = answer(Algorithm::Sha256, &nonce, 1, "secret");
        let at = good.char_indices().map(|(i, _)| i).nth(cut % good.len()).unwrap_or(0);
        let mutated = format!("{}{junk}{}", &good[..at], &good[at..]);
        let _ = verify(&mut c, &mutated, T0);
    }
}
