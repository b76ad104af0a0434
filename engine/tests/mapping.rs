//! Every refusal and failure maps to an answer on every protocol (HTTP, SIP, XMPP,
//! Kamailio IMC), and the mapping keeps its rules.
//!
//! The lists of samples below are checked against exhaustive `match`es (`*_index`): a new
//! variant of `Rejection`, `EngineError` or `JournalError` does not compile until it has
//! an index there, and the tests fail until it has a sample here. The table in docs/api.md
//! ("Error codes across protocols") is rendered from the same samples; run with
//! `CONCLAVE_UPDATE_DOCS=1` to rewrite it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use conclave_engine::protocol::{RETRY_LATER_SECS, RETRY_SOON_SECS};
use conclave_engine::service::EngineError;
use conclave_engine::text::CharClass;
use conclave_engine::{
    journal_mapping, AccountId, ErrorClass, ErrorMapping, ImcOutcome, PasswordKind, Rejection,
    RoomName, SipStatus, XmppCondition, XmppErrorType,
};
use conclave_journal::JournalError;

fn room() -> RoomName {
    RoomName::lookup("standup").unwrap()
}

fn account() -> AccountId {
    AccountId::parse("acme").unwrap()
}

/// One value of every `Rejection` variant, in `rejection_index` order.
fn all_rejections() -> Vec<Rejection> {
    use Rejection as R;
    vec![
        R::InvalidInput {
            field: "room",
            reason: "too long".into(),
        },
        R::IdentityRequired,
        R::RoomNotFound(room()),
        R::RoomExists(room()),
        R::ParentNotFound(room()),
        R::NestingLimit { limit: 3 },
        R::CommonName(room()),
        R::NotReserved,
        R::MaxMembers {
            requested: 500,
            cap: 100,
            present: 2,
        },
        R::OwnerRequired,
        R::RoomFull { max: 10 },
        R::ServerFull { max: 100 },
        R::Locked,
        R::LobbyRequired,
        R::LobbyDisabled,
        R::PasswordRequired(PasswordKind::Room),
        R::WrongPassword(PasswordKind::Owner),
        R::NotModerator,
        R::NotOwner,
        R::NotAdmin,
        R::Outranked,
        R::ChatModerated,
        R::VisitorCannotPost,
        R::NotAllowed,
        R::NotYours,
        R::Banned {
            until: Some(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()),
        },
        R::NotInvited,
        R::NoRole,
        R::NotMember,
        R::SessionExists,
        R::SessionNotFound,
        R::NotKnocking,
        R::LastOwner,
        R::InvitationNotFound,
        R::InvitationClosed,
        R::InvitationExpired,
        R::AccountNotFound(account()),
        R::AccountExists(account()),
        R::AccountDisabled,
        R::IdentityAlreadyLinked(account()),
        R::IdentityNotLinked,
        R::NotRendezvous,
        R::BanNotFound,
        R::MessageTooLong {
            len: 5000,
            max: 4096,
        },
        R::MessageEmpty,
        R::TooManySessions { max: 16 },
        R::OutOfScope {
            gateway: "sip".into(),
            scheme: "xmpp".into(),
        },
        R::ForbiddenChar {
            field: "body",
            ch: '\u{202e}',
            class: CharClass::Bidi,
        },
        R::ConfusableName {
            field: "room",
            existing: Some("standup".into()),
        },
        R::AccountRequired,
        R::GuestsMayNotCreate,
        R::NoKnownAddress,
        R::NetworkWhileObfuscated,
        R::GatewayRefused {
            action: "sip_invite".into(),
            code: "sdp.no_common_codec".into(),
        },
        R::SubjectNotAllowed,
        R::RecordingActive,
        R::RecordingNotActive,
        R::RecordingNotFound,
        R::RecordingFileInvalid("bad hash".into()),
    ]
}

/// The compiler's list of `Rejection` variants: no catch-all, so a new variant must be
/// added here (with the next index) and to `all_rejections`.
fn rejection_index(r: &Rejection) -> usize {
    use Rejection as R;
    match r {
        R::InvalidInput { .. } => 0,
        R::IdentityRequired => 1,
        R::RoomNotFound(_) => 2,
        R::RoomExists(_) => 3,
        R::ParentNotFound(_) => 4,
        R::NestingLimit { .. } => 5,
        R::CommonName(_) => 6,
        R::NotReserved => 7,
        R::MaxMembers { .. } => 8,
        R::OwnerRequired => 9,
        R::RoomFull { .. } => 10,
        R::ServerFull { .. } => 11,
        R::Locked => 12,
        R::LobbyRequired => 13,
        R::LobbyDisabled => 14,
        R::PasswordRequired(_) => 15,
        R::WrongPassword(_) => 16,
        R::NotModerator => 17,
        R::NotOwner => 18,
        R::NotAdmin => 19,
        R::Outranked => 20,
        R::ChatModerated => 21,
        R::VisitorCannotPost => 22,
        R::NotAllowed => 23,
        R::NotYours => 24,
        R::Banned { .. } => 25,
        R::NotInvited => 26,
        R::NoRole => 27,
        R::NotMember => 28,
        R::SessionExists => 29,
        R::SessionNotFound => 30,
        R::NotKnocking => 31,
        R::LastOwner => 32,
        R::InvitationNotFound => 33,
        R::InvitationClosed => 34,
        R::InvitationExpired => 35,
        R::AccountNotFound(_) => 36,
        R::AccountExists(_) => 37,
        R::AccountDisabled => 38,
        R::IdentityAlreadyLinked(_) => 39,
        R::IdentityNotLinked => 40,
        R::NotRendezvous => 41,
        R::BanNotFound => 42,
        R::MessageTooLong { .. } => 43,
        R::MessageEmpty => 44,
        R::TooManySessions { .. } => 45,
        R::OutOfScope { .. } => 46,
        R::ForbiddenChar { .. } => 47,
        R::ConfusableName { .. } => 48,
        R::AccountRequired => 49,
        R::GuestsMayNotCreate => 50,
        R::NoKnownAddress => 51,
        R::NetworkWhileObfuscated => 52,
        R::GatewayRefused { .. } => 53,
        R::SubjectNotAllowed => 54,
        R::RecordingActive => 55,
        R::RecordingNotActive => 56,
        R::RecordingNotFound => 57,
        R::RecordingFileInvalid(_) => 58,
    }
}
const REJECTION_VARIANTS: usize = 59;

/// One value of every `JournalError` variant, in `journal_index` order.
fn all_journal_errors() -> Vec<JournalError> {
    use JournalError as J;
    vec![
        J::Conflict {
            stream: "room:standup".into(),
            expected: "3".into(),
            actual: 4,
        },
        J::HeadConflict {
            expected: 10,
            actual: 11,
        },
        J::InvalidRecord("empty stream name".into()),
        J::Corrupt {
            seq: 7,
            reason: "bad hash".into(),
        },
        J::UnsupportedFormat {
            seq: 7,
            version: 9,
            supported: 2,
        },
        J::ContentCorrupt {
            digest: "ab12".into(),
        },
        J::UnsupportedLayout {
            found: 9,
            supported: 2,
        },
        J::Truncated {
            acknowledged: 10,
            found: 5,
        },
        J::Open {
            path: "/data/journal".into(),
            reason: "locked".into(),
        },
        J::Storage("io error".into()),
        J::Poisoned("flush failed".into()),
        J::Closed,
    ]
}

/// The compiler's list of `JournalError` variants (see `rejection_index`).
fn journal_index(e: &JournalError) -> usize {
    use JournalError as J;
    match e {
        J::Conflict { .. } => 0,
        J::HeadConflict { .. } => 1,
        J::InvalidRecord(_) => 2,
        J::Corrupt { .. } => 3,
        J::UnsupportedFormat { .. } => 4,
        J::ContentCorrupt { .. } => 5,
        J::UnsupportedLayout { .. } => 6,
        J::Truncated { .. } => 7,
        J::Open { .. } => 8,
        J::Storage(_) => 9,
        J::Poisoned(_) => 10,
        J::Closed => 11,
    }
}
const JOURNAL_VARIANTS: usize = 12;

/// One value of every `EngineError` variant, in `engine_index` order. `Rejected` and
/// `Journal` wrap the other two lists, which are checked through them too.
fn all_engine_errors() -> Vec<EngineError> {
    vec![
        EngineError::Rejected {
            rejection: Rejection::Banned { until: None },
            correlation_id: "c0ffee".into(),
            recorded: vec![3],
        },
        EngineError::Journal(JournalError::Poisoned("flush failed".into())),
        EngineError::Codec {
            seq: 9,
            reason: "unknown event type".into(),
        },
        EngineError::Encode("payload".into()),
        EngineError::Checkpoint("cannot open".into()),
        EngineError::Stopped,
        EngineError::Task("panicked".into()),
        EngineError::Busy("password checks"),
    ]
}

/// The compiler's list of `EngineError` variants (see `rejection_index`).
fn engine_index(e: &EngineError) -> usize {
    match e {
        EngineError::Rejected { .. } => 0,
        EngineError::Journal(_) => 1,
        EngineError::Codec { .. } => 2,
        EngineError::Encode(_) => 3,
        EngineError::Checkpoint(_) => 4,
        EngineError::Stopped => 5,
        EngineError::Task(_) => 6,
        EngineError::Busy(_) => 7,
    }
}
const ENGINE_VARIANTS: usize = 8;

/// Every code with its mapping: the rows of the docs table. Engine errors that wrap a
/// rejection or a journal error are those rows, so they are not repeated.
fn rows() -> Vec<(String, ErrorMapping)> {
    let mut rows: Vec<(String, ErrorMapping)> = all_rejections()
        .iter()
        .map(|r| (r.code().to_owned(), r.mapping()))
        .collect();
    rows.extend(
        all_engine_errors()
            .iter()
            .filter(|e| !matches!(e, EngineError::Rejected { .. } | EngineError::Journal(_)))
            .map(|e| (e.code().to_owned(), e.mapping())),
    );
    rows.extend(
        all_journal_errors()
            .iter()
            .map(|e| (e.code().to_owned(), journal_mapping(e))),
    );
    rows
}

/// RFC 6120 §8.3.3's defined conditions, spelled out independently of the enum.
const RFC6120_CONDITIONS: [&str; 22] = [
    "bad-request",
    "conflict",
    "feature-not-implemented",
    "forbidden",
    "gone",
    "internal-server-error",
    "item-not-found",
    "jid-malformed",
    "not-acceptable",
    "not-allowed",
    "not-authorized",
    "policy-violation",
    "recipient-unavailable",
    "redirect",
    "registration-required",
    "remote-server-not-found",
    "remote-server-timeout",
    "resource-constraint",
    "service-unavailable",
    "subscription-required",
    "undefined-condition",
    "unexpected-request",
];

/// The error types RFC 6120 §8.3.3 gives each condition; `service-unavailable` may also
/// be `wait` (XEP-0045's full room), `internal-server-error` `wait` for a transient
/// failure.
fn types_for(condition: XmppCondition) -> &'static [XmppErrorType] {
    use XmppCondition as X;
    use XmppErrorType as T;
    match condition {
        X::BadRequest | X::JidMalformed | X::NotAcceptable | X::Redirect => &[T::Modify],
        X::Conflict | X::Gone | X::ItemNotFound | X::NotAllowed | X::RemoteServerNotFound => {
            &[T::Cancel]
        }
        X::FeatureNotImplemented => &[T::Cancel, T::Modify],
        X::Forbidden | X::NotAuthorized | X::RegistrationRequired | X::SubscriptionRequired => {
            &[T::Auth]
        }
        X::InternalServerError | X::ServiceUnavailable => &[T::Cancel, T::Wait],
        X::PolicyViolation | X::UnexpectedRequest => &[T::Modify, T::Wait],
        X::RecipientUnavailable | X::RemoteServerTimeout | X::ResourceConstraint => &[T::Wait],
        X::UndefinedCondition => XmppErrorType::ALL,
    }
}

#[test]
fn the_samples_cover_every_variant() {
    let idx: Vec<usize> = all_rejections().iter().map(rejection_index).collect();
    assert_eq!(idx, (0..REJECTION_VARIANTS).collect::<Vec<_>>());
    let idx: Vec<usize> = all_journal_errors().iter().map(journal_index).collect();
    assert_eq!(idx, (0..JOURNAL_VARIANTS).collect::<Vec<_>>());
    let idx: Vec<usize> = all_engine_errors().iter().map(engine_index).collect();
    assert_eq!(idx, (0..ENGINE_VARIANTS).collect::<Vec<_>>());
}

#[test]
fn codes_are_unique_and_listed() {
    let rejection_codes: Vec<&str> = all_rejections().iter().map(Rejection::code).collect();
    let listed: BTreeSet<&str> = Rejection::ALL_CODES.iter().copied().collect();
    assert_eq!(
        rejection_codes.iter().copied().collect::<BTreeSet<_>>(),
        listed,
        "Rejection::ALL_CODES lists exactly the variants' codes"
    );
    assert_eq!(Rejection::ALL_CODES.len(), REJECTION_VARIANTS);

    let mut seen = BTreeSet::new();
    for (code, _) in rows() {
        assert!(seen.insert(code.clone()), "{code} names two variants");
        assert!(
            code.split_once('.').is_some_and(|(area, reason)| {
                !area.is_empty()
                    && !reason.is_empty()
                    && code
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')
            }),
            "{code} is not area.reason"
        );
    }
    for e in all_engine_errors() {
        match &e {
            EngineError::Rejected { rejection, .. } => assert_eq!(e.code(), rejection.code()),
            EngineError::Journal(j) => assert_eq!(e.code(), j.code()),
            _ => assert!(e.code().starts_with("engine."), "{}", e.code()),
        }
    }
    for j in all_journal_errors() {
        assert!(j.code().starts_with("journal."), "{}", j.code());
    }
}

#[test]
fn wrapped_errors_answer_as_what_they_wrap() {
    for r in all_rejections() {
        let e = EngineError::Rejected {
            rejection: r.clone(),
            correlation_id: "c".into(),
            recorded: vec![],
        };
        assert_eq!(e.mapping(), r.mapping(), "{}", r.code());
        assert_eq!(e.http_status(), r.mapping().http);
    }
    for j in all_journal_errors() {
        let m = journal_mapping(&j);
        let e = EngineError::Journal(j);
        assert_eq!(e.mapping(), m, "{}", e.code());
    }
}

/// The rules of `conclave_engine::protocol`, for every code.
fn check_rules(code: &str, m: &ErrorMapping) {
    let sip = m.sip.code();
    assert!((400..600).contains(&m.http), "{code}: HTTP {}", m.http);
    assert!(
        (300..700).contains(&sip),
        "{code}: SIP {sip} is not a final non-2xx response"
    );
    assert!(
        RFC6120_CONDITIONS.contains(&m.xmpp.condition.as_str()),
        "{code}: {}",
        m.xmpp.condition.as_str()
    );
    assert!(
        types_for(m.xmpp.condition).contains(&m.xmpp.kind),
        "{code}: {} with type {}",
        m.xmpp.condition.as_str(),
        m.xmpp.kind.as_str()
    );
    assert_eq!(
        m.retry_after.is_some(),
        m.class == ErrorClass::Unavailable,
        "{code}: a retry hint exactly when unavailable"
    );
    match m.class {
        ErrorClass::Refused => {
            assert!(
                (400..500).contains(&m.http),
                "{code}: refused but HTTP {}",
                m.http
            );
            assert!(
                (400..500).contains(&sip) || (600..700).contains(&sip),
                "{code}: refused but SIP {sip} (a 5xx says the server is broken)"
            );
            assert_ne!(m.imc, ImcOutcome::Fail, "{code}");
            assert_ne!(
                m.xmpp.condition,
                XmppCondition::InternalServerError,
                "{code}"
            );
        }
        ErrorClass::Unavailable => {
            assert_eq!(m.http, 503, "{code}");
            assert!(sip >= 500, "{code}: unavailable but SIP {sip}");
            assert!(m.retry_after.is_some_and(|s| s > 0), "{code}");
            assert_eq!(m.xmpp.kind, XmppErrorType::Wait, "{code}");
            assert!(
                matches!(
                    m.xmpp.condition,
                    XmppCondition::ServiceUnavailable | XmppCondition::ResourceConstraint
                ),
                "{code}"
            );
        }
        ErrorClass::Internal => {
            assert_eq!(m.http, 500, "{code}");
            assert_eq!(m.sip, SipStatus::ServerInternalError, "{code}");
            assert_eq!(
                m.xmpp.condition,
                XmppCondition::InternalServerError,
                "{code}"
            );
            assert_eq!(m.imc, ImcOutcome::Fail, "{code}");
        }
    }
    if m.imc == ImcOutcome::Fail {
        assert!(sip >= 500, "{code}: IMC fail is for server-side answers");
    }
}

#[test]
fn every_mapping_keeps_the_rules() {
    for (code, m) in rows() {
        check_rules(&code, &m);
    }
}

#[test]
fn refusals_are_client_errors_except_a_full_server() {
    for r in all_rejections() {
        let m = r.mapping();
        if matches!(r, Rejection::ServerFull { .. }) {
            // Nothing is wrong with the request: it succeeds once people leave.
            assert_eq!(m.class, ErrorClass::Unavailable);
            assert_eq!(m.retry_after, Some(RETRY_LATER_SECS));
        } else {
            assert_eq!(m.class, ErrorClass::Refused, "{}", r.code());
        }
        if r.is_permission() {
            assert_eq!((m.http, m.sip.code()), (403, 403), "{}", r.code());
        }
    }
}

#[test]
fn server_side_failures_are_5xx() {
    use ErrorClass::{Internal, Unavailable};
    let expected = [
        ("engine.codec", Internal),
        ("engine.encode", Internal),
        ("engine.checkpoint", Internal),
        ("engine.stopped", Unavailable),
        ("engine.task", Internal),
        ("engine.busy", Unavailable),
        ("journal.conflict", Unavailable),
        ("journal.head_conflict", Unavailable),
        ("journal.invalid_record", Internal),
        ("journal.corrupt", Internal),
        ("journal.unsupported_format", Internal),
        ("journal.content_corrupt", Internal),
        ("journal.unsupported_layout", Internal),
        ("journal.truncated", Internal),
        ("journal.open_failed", Internal),
        ("journal.storage", Internal),
        ("journal.poisoned", Unavailable),
        // Closed under the engine: shutting down, as `engine.stopped`.
        ("journal.closed", Unavailable),
    ];
    let rows = rows();
    let server_side: Vec<_> = rows
        .iter()
        .filter(|(code, _)| code.starts_with("engine.") || code.starts_with("journal."))
        .collect();
    assert_eq!(server_side.len(), expected.len());
    for (code, m) in server_side {
        let want = expected
            .iter()
            .find(|(c, _)| c == code)
            .map(|(_, class)| *class);
        assert_eq!(Some(m.class), want, "{code}");
        assert!(m.http >= 500 && m.sip.code() >= 500, "{code}");
    }
}

#[test]
fn unavailable_answers_say_when_to_retry() {
    let cases = [
        (
            EngineError::Journal(JournalError::HeadConflict {
                expected: 1,
                actual: 2,
            }),
            RETRY_SOON_SECS,
            XmppCondition::ResourceConstraint,
        ),
        (
            EngineError::Journal(JournalError::Poisoned("x".into())),
            RETRY_LATER_SECS,
            XmppCondition::ServiceUnavailable,
        ),
        (
            EngineError::Stopped,
            RETRY_LATER_SECS,
            XmppCondition::ServiceUnavailable,
        ),
    ];
    for (e, secs, condition) in cases {
        let m = e.mapping();
        assert_eq!(m.http, 503, "{}", e.code());
        assert_eq!(m.sip, SipStatus::ServiceUnavailable, "{}", e.code());
        assert_eq!(m.retry_after, Some(secs), "{}", e.code());
        assert_eq!(
            (m.xmpp.condition, m.xmpp.kind),
            (condition, XmppErrorType::Wait)
        );
        assert_eq!(m.imc, ImcOutcome::Fail);
    }
    let m = EngineError::Task("panicked".into()).mapping();
    assert_eq!((m.http, m.sip.code()), (500, 500));
    assert_eq!(m.xmpp.condition.as_str(), "internal-server-error");
}

#[test]
fn known_cases_map_as_the_protocols_expect() {
    use Rejection as R;
    // (refusal, HTTP, SIP, XMPP condition, XMPP type, IMC)
    let cases: Vec<(Rejection, u16, u16, &str, &str, ImcOutcome)> = vec![
        (
            R::Banned { until: None },
            403,
            403,
            "forbidden",
            "auth",
            ImcOutcome::Notice,
        ),
        (
            R::RoomNotFound(room()),
            404,
            404,
            "item-not-found",
            "cancel",
            ImcOutcome::Refuse,
        ),
        (
            R::WrongPassword(PasswordKind::Room),
            401,
            403,
            "not-authorized",
            "auth",
            ImcOutcome::Notice,
        ),
        (
            R::PasswordRequired(PasswordKind::Server),
            401,
            403,
            "not-authorized",
            "auth",
            ImcOutcome::Notice,
        ),
        (
            R::RoomFull { max: 3 },
            409,
            486,
            "service-unavailable",
            "wait",
            ImcOutcome::Notice,
        ),
        (
            R::ServerFull { max: 3 },
            503,
            600,
            "service-unavailable",
            "wait",
            ImcOutcome::Notice,
        ),
        (
            R::NotInvited,
            403,
            403,
            "registration-required",
            "auth",
            ImcOutcome::Notice,
        ),
        (
            R::SessionExists,
            409,
            403,
            "conflict",
            "cancel",
            ImcOutcome::Notice,
        ),
        (
            R::Locked,
            403,
            403,
            "item-not-found",
            "cancel",
            ImcOutcome::Notice,
        ),
        (
            R::LobbyRequired,
            403,
            480,
            "registration-required",
            "auth",
            ImcOutcome::Notice,
        ),
        (
            R::Outranked,
            403,
            403,
            "not-allowed",
            "cancel",
            ImcOutcome::Notice,
        ),
        (
            R::LastOwner,
            409,
            403,
            "conflict",
            "cancel",
            ImcOutcome::Notice,
        ),
        (
            R::SubjectNotAllowed,
            403,
            403,
            "forbidden",
            "auth",
            ImcOutcome::Notice,
        ),
        (
            R::VisitorCannotPost,
            403,
            403,
            "forbidden",
            "auth",
            ImcOutcome::Refuse,
        ),
        (
            R::NotMember,
            404,
            403,
            "not-acceptable",
            "modify",
            ImcOutcome::Refuse,
        ),
        (
            R::MessageTooLong { len: 9, max: 8 },
            413,
            413,
            "not-acceptable",
            "modify",
            ImcOutcome::Refuse,
        ),
        (
            R::InvitationExpired,
            410,
            410,
            "gone",
            "cancel",
            ImcOutcome::Notice,
        ),
        (
            R::SessionNotFound,
            404,
            481,
            "item-not-found",
            "cancel",
            ImcOutcome::Notice,
        ),
        (
            R::InvalidInput {
                field: "room",
                reason: "empty".into(),
            },
            400,
            488,
            "bad-request",
            "modify",
            ImcOutcome::Notice,
        ),
    ];
    for (r, http, sip, condition, kind, imc) in cases {
        let m = r.mapping();
        assert_eq!(
            (
                m.http,
                m.sip.code(),
                m.xmpp.condition.as_str(),
                m.xmpp.kind.as_str(),
                m.imc
            ),
            (http, sip, condition, kind, imc),
            "{}",
            r.code()
        );
    }
}

#[test]
fn enumerations_are_complete_and_distinct() {
    let names: Vec<&str> = XmppCondition::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(names, RFC6120_CONDITIONS);
    let types: Vec<&str> = XmppErrorType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(types, ["auth", "cancel", "continue", "modify", "wait"]);
    let codes: BTreeSet<u16> = SipStatus::ALL.iter().map(|s| s.code()).collect();
    assert_eq!(codes.len(), SipStatus::ALL.len());
    for s in SipStatus::ALL {
        assert!((300..700).contains(&s.code()) && !s.reason().is_empty());
    }
    for (_, m) in rows() {
        assert!(SipStatus::ALL.contains(&m.sip));
    }
}

// ---- the docs table ----

const BEGIN: &str = "<!-- error-codes:begin -->";
const END: &str = "<!-- error-codes:end -->";

fn render_table() -> String {
    let mut out = String::from(
        "| code | class | HTTP | SIP | XMPP condition / type | IMC | Retry-After (s) |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for (code, m) in rows() {
        out.push_str(&format!(
            "| `{code}` | {} | {} | {} {} | `{}` / {} | {} | {} |\n",
            m.class.as_str(),
            m.http,
            m.sip.code(),
            m.sip.reason(),
            m.xmpp.condition.as_str(),
            m.xmpp.kind.as_str(),
            m.imc.as_str(),
            m.retry_after.map(|s| s.to_string()).unwrap_or_default(),
        ));
    }
    out
}

#[test]
fn docs_table_matches_the_mapping() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/api.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find(BEGIN).expect("begin marker in docs/api.md") + BEGIN.len();
    let end = doc.find(END).expect("end marker in docs/api.md");
    assert!(start <= end, "markers out of order in docs/api.md");
    let table = render_table();
    let current = doc[start..end].trim_start_matches('\n');
    if current == table {
        return;
    }
    if std::env::var_os("CONCLAVE_UPDATE_DOCS").is_some() {
        let updated = format!("{}\n{table}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!(
        "docs/api.md's error code table is out of date; rerun with CONCLAVE_UPDATE_DOCS=1.\n\
         expected:\n{table}"
    );
}
