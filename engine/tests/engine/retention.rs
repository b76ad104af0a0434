//! Retention and erasure: the `content_purge` fact journaled before content goes.

use crate::common::*;
use chrono::Duration;
use conclave_engine::*;

fn purge(subject: Option<Principal>, before: Option<chrono::DateTime<chrono::Utc>>) -> Command {
    Command::RecordContentPurge {
        subject,
        before,
        records: 3,
        up_to_seq: 10,
    }
}

#[test]
fn an_erasure_is_journaled_on_the_server_stream_by_an_operator() {
    let mut w = World::new();
    let ev = w
        .when(&admin(), purge(Some(who("bob")), None))
        .ok(&["content_purge"]);
    assert_eq!(ev[0].stream(), StreamId::Server);
    assert_eq!(
        ev[0].kind,
        EventKind::ContentPurged {
            subject: Some(who("bob")),
            before: None,
            records: 3,
            up_to_seq: 10,
        }
    );
    // Services (the clock, a NATS service) are operators too; evolve leaves state alone.
    let before = w.state.clone();
    let cutoff = w.now - Duration::days(31);
    w.when(
        &Actor::Service("retention".into()),
        purge(None, Some(cutoff)),
    )
    .ok(&["content_purge"]);
    assert_eq!(w.state, before);
}

#[test]
fn people_may_not_record_purges_and_the_attempt_is_audited() {
    let mut w = World::new();
    let r = w
        .when(&user("bob"), purge(Some(who("alice")), None))
        .err("perm.not_admin", &["api_action_denied"]);
    match &r.record[0].kind {
        EventKind::ActionDenied {
            action, subject, ..
        } => {
            assert_eq!(action, "record_content_purge");
            assert_eq!(subject.as_ref(), Some(&who("alice")));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn malformed_purges_are_refused_without_a_record() {
    let mut w = World::new();
    let now = w.now;
    // Neither or both of subject and cut-off.
    w.when(&admin(), purge(None, None))
        .err("input.invalid", &[]);
    w.when(&admin(), purge(Some(who("bob")), Some(now)))
        .err("input.invalid", &[]);
    // A cut-off in the future would purge what has not happened yet.
    w.when(&admin(), purge(None, Some(now + Duration::seconds(1))))
        .err("input.invalid", &[]);
    // Nothing to purge, or more records than the journal range covered.
    for (records, up_to_seq) in [(0, 10), (11, 10), (1, 0)] {
        w.when(
            &admin(),
            Command::RecordContentPurge {
                subject: Some(who("bob")),
                before: None,
                records,
                up_to_seq,
            },
        )
        .err("input.invalid", &[]);
    }
}

#[test]
fn the_command_is_never_accepted_from_json() {
    // Gateways deserialize commands (NATS); a purge that did not happen must not be
    // journaled from outside the engine's own purge.
    let json = r#"{"record_content_purge": {"subject": "sip:bob@example.org", "before": null, "records": 1, "up_to_seq": 1}}"#;
    assert!(serde_json::from_str::<Command>(json).is_err());
}

#[test]
fn log_days_scope_follows_mumble_semantics() {
    let now = t0();
    assert_eq!(PurgeScope::log_days(0, now), None);
    assert_eq!(PurgeScope::log_days(-1, now), Some(PurgeScope::Before(now)));
    assert_eq!(
        PurgeScope::log_days(7, now),
        Some(PurgeScope::Before(now - Duration::days(7)))
    );
    assert_eq!(PurgeScope::log_days(i32::MAX, now), None);
}

#[test]
fn a_person_is_named_by_every_identity_ever_linked() {
    use conclave_engine::retention::person_names;
    let links = [
        ("account:bob", "sip:bob@example.org"),
        ("account:bob", "xmpp:bob@example.org"),
        ("account:eve", "web:eve"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    let names = person_names(&links, "xmpp:bob@example.org");
    assert!(names.contains("account:bob") && names.contains("sip:bob@example.org"));
    assert!(!names.contains("web:eve"));
    assert_eq!(person_names(&links, "web:nobody").len(), 1);
}
