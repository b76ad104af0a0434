//! The JSON view of events, shared by every surface that shows them (REST, NATS,
//! reports), so they all say the same thing in the same words.

use chrono::SecondsFormat;
use serde_json::{json, Value};

use crate::event::{Event, EventKind};
use crate::sip_digest::ALGORITHMS;

/// `{"type", "at", "actor", "stream", "data"}`: `type` is the stable event type name,
/// `at` is RFC 3339 UTC with microseconds, `data` the event's own fields.
///
/// Password hashes are never shown (a stolen argon2 hash can be attacked offline): a
/// field that holds one reads `"[redacted]"` when set and `null` when cleared, so the
/// view still says that a password was set, changed or removed. SIP digest HA1 values
/// (password-equivalent) are not even redacted: `sip_credential_set` reads
/// `{account, address, realm, algorithms: ["MD5", "SHA-256"]}`. An email invitation's
/// bearer secret is never in an event, nor is its digest shown: `send_invitation` says
/// `bearer: true` where the journal keeps one.
pub fn event_json(e: &Event) -> Value {
    let mut data = serde_json::to_value(&e.kind)
        .unwrap_or_else(|err| json!({ "unrepresentable": err.to_string() }));
    redact_password_hashes(&mut data);
    if let (EventKind::SipCredentialSet { .. }, Value::Object(map)) = (&e.kind, &mut data) {
        // The HA1 values are never serialized; say which ones the credential holds.
        let algorithms = ALGORITHMS.iter().map(|a| a.as_str()).collect::<Vec<_>>();
        map.insert("algorithms".to_owned(), json!(algorithms));
    }
    if let (EventKind::InvitationIssued { secret_digest, .. }, Value::Object(map)) =
        (&e.kind, &mut data)
    {
        // Neither the secret nor its digest is shown: only whether there is one.
        map.insert("bearer".to_owned(), json!(secret_digest.is_some()));
    }
    json!({
        "type": e.type_name(),
        "at": e.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "actor": e.actor.to_string(),
        "stream": e.stream().to_string(),
        "data": data,
    })
}

/// Fields of events that hold an argon2 PHC string: the room's access password (in a
/// room's configuration, and as a room change), the owner password of a reserved room,
/// the server password (as a policy change).
const PASSWORD_HASH_FIELDS: [&str; 4] = [
    "access_password_hash",
    "owner_password_hash",
    "access_password",
    "server_password",
];

/// Replaces every password hash in `v` by `"[redacted]"` (a cleared one stays `null`).
fn redact_password_hashes(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, field) in map.iter_mut() {
                if PASSWORD_HASH_FIELDS.contains(&k.as_str()) && field.is_string() {
                    *field = Value::from("[redacted]");
                } else {
                    redact_password_hashes(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_password_hashes),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::event_json;
    use crate::testing::{sample_events, SampleParams, SAMPLE_HA1_MD5, SAMPLE_HA1_SHA256};

    #[test]
    fn no_view_of_any_event_shows_a_password_hash() {
        for e in sample_events(&SampleParams::default()) {
            let text = event_json(&e).to_string();
            // The sample hashes are `fake$...`.
            assert!(!text.contains("fake$"), "{text}");
        }
    }

    #[test]
    fn no_view_of_a_sip_credential_shows_its_ha1_values() {
        // Given the sample sip_credential_set, when it is shown as JSON,
        let view = sample_events(&SampleParams::default())
            .into_iter()
            .find(|e| e.type_name() == "sip_credential_set")
            .map(|e| event_json(&e))
            .unwrap();
        // then neither hash appears, and the view says which algorithms it holds.
        let text = view.to_string();
        assert!(!text.contains(SAMPLE_HA1_MD5), "{text}");
        assert!(!text.contains(SAMPLE_HA1_SHA256), "{text}");
        assert_eq!(
            view["data"],
            serde_json::json!({"account": "alice", "address": "sip:alice@example.org",
                               "realm": "example.org", "algorithms": ["MD5", "SHA-256"]})
        );
    }

    #[test]
    fn a_subject_change_reads_as_its_fields() {
        // Given the samples of room_subject (set by a person, cleared by the operator),
        let views: Vec<_> = sample_events(&SampleParams::default())
            .into_iter()
            .filter(|e| e.type_name() == "room_subject")
            .map(|e| event_json(&e))
            .collect();
        // then each shows the room, the subject and who set it, null when nobody did.
        assert_eq!(
            views[0]["data"],
            serde_json::json!({"room": "standup", "subject": "hello",
                               "by": "sip:alice@example.org", "address": "sip:alice@example.org"})
        );
        assert_eq!(views[0]["stream"], "room:standup");
        assert_eq!(
            views[1]["data"],
            serde_json::json!({"room": "standup", "subject": null, "by": null, "address": null})
        );
    }

    #[test]
    fn the_new_room_changes_read_by_name() {
        let data: Vec<_> = sample_events(&SampleParams::default())
            .into_iter()
            .filter(|e| e.type_name() == "room_modify")
            .map(|e| event_json(&e)["data"]["change"].clone())
            .collect();
        for expected in [
            serde_json::json!({"name": "hello"}),
            serde_json::json!({"description": null}),
            serde_json::json!({"members_change_subject": true}),
            serde_json::json!({"persistent": true}),
            serde_json::json!({"public_addresses": false}),
        ] {
            assert!(data.contains(&expected), "{expected} in {data:?}");
        }
    }

    #[test]
    fn a_set_password_reads_redacted() {
        let set = sample_events(&SampleParams::default())
            .into_iter()
            .find(|e| e.type_name() == "room_reserve")
            .map(|e| event_json(&e))
            .unwrap();
        assert_eq!(set["data"]["owner_password_hash"], "[redacted]");
    }
}
