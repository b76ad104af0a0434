//! Commands over NATS: request/reply on `<prefix>.cmd.<command>`.
//!
//! The body is the JSON object of the command's fields (what follows the command name
//! in [`Command`]'s JSON form); the credential travels in the `Conclave-Token` header so
//! that the body stays exactly the command. The actor is `service:<credential name>`,
//! or the identity named by `Conclave-Act-As` when the credential allows acting as
//! identities (then the engine applies that person's rights, not the operator's).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_nats::{Client, HeaderMap, Subscriber};
use conclave_engine::service::{Engine, EngineError, Outcome, Request};
use conclave_engine::{Actor, Address, Command, Origin};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::envelope::headers;
use crate::error::RequestError;
use crate::status::Shared;
use crate::Settings;

/// A configured service credential, with its token kept only as a digest.
#[derive(Clone)]
pub(crate) struct Credential {
    pub name: String,
    pub digest: blake3::Hash,
    pub may_act_as: bool,
}

/// Header values longer than this are refused (ids are short; this bounds log lines).
const MAX_ID_LEN: usize = 128;

/// A header's value, matching the name case-insensitively.
fn header<'a>(h: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    h?.iter()
        .find(|(k, _)| AsRef::<str>::as_ref(*k).eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first())
        .map(|v| v.as_str())
}

fn short_id(h: Option<&HeaderMap>, name: &'static str) -> Result<Option<String>, RequestError> {
    match header(h, name) {
        None => Ok(None),
        Some(v) if v.is_empty() || v.len() > MAX_ID_LEN || v.chars().any(char::is_control) => {
            Err(RequestError::BadHeader {
                name,
                reason: format!("must be 1 to {MAX_ID_LEN} printable characters"),
            })
        }
        Some(v) => Ok(Some(v.to_owned())),
    }
}

/// Turns a NATS request into an engine request, checking the credential first. Pure, so
/// hostile input is tested without a server.
pub(crate) fn parse_request(
    settings: &Settings,
    subject: &str,
    h: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<Request, RequestError> {
    let token = header(h, headers::TOKEN).ok_or(RequestError::Unauthorized)?;
    let digest = blake3::hash(token.as_bytes());
    // blake3::Hash compares in constant time; every credential is compared.
    let mut found = None;
    for c in &settings.credentials {
        if c.digest == digest {
            found = Some(c);
        }
    }
    let cred = found.ok_or(RequestError::Unauthorized)?;

    let name = subject
        .strip_prefix(settings.prefix.as_str())
        .and_then(|s| s.strip_prefix(".cmd."))
        .unwrap_or_default();
    let plausible = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if !plausible {
        return Err(RequestError::UnknownCommand(
            name.chars().take(64).collect(),
        ));
    }
    let fields: Value = if payload.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(payload)
            .map_err(|e| RequestError::BadRequest(format!("the body is not JSON: {e}")))?
    };
    if !fields.is_object() {
        return Err(RequestError::BadRequest(
            "the body must be a JSON object of the command's fields".into(),
        ));
    }
    let command: Command = serde_json::from_value(json!({ name: fields })).map_err(|e| {
        let msg = e.to_string();
        if msg.starts_with("unknown variant") {
            RequestError::UnknownCommand(name.to_owned())
        } else {
            RequestError::BadRequest(msg)
        }
    })?;

    let actor = match header(h, headers::ACT_AS) {
        None => Actor::Service(cred.name.clone()),
        Some(_) if !cred.may_act_as => return Err(RequestError::ActAsForbidden),
        Some(who) => Actor::Identity(Address::parse(who).map_err(|e| RequestError::BadHeader {
            name: headers::ACT_AS,
            reason: e.to_string(),
        })?),
    };
    Ok(Request {
        command,
        origin: Origin {
            gateway: "nats".into(),
            protocol: "nats".into(),
            remote_addr: None,
        },
        correlation_id: short_id(h, headers::CORRELATION_ID)?,
        causation_id: short_id(h, headers::CAUSATION_ID)?,
        // A service acting as a person: journal which service authorized it.
        authorized_by: matches!(actor, Actor::Identity(_))
            .then(|| format!("service:{}", cred.name)),
        actor,
        // Services act for people of any scheme by the operator's policy (their
        // credential's `act_as` rule), not by a protocol of their own.
        scope: None,
    })
}

/// The reply to an accepted command.
pub(crate) fn outcome_json(command: &str, o: &Outcome) -> Value {
    json!({
        "ok": true,
        "command": command,
        "correlation_id": o.correlation_id,
        "head": o.head,
        "seqs": o.events.iter().map(|a| a.seq).collect::<Vec<_>>(),
        "events": o.events.iter().map(|a| json!({
            "seq": a.seq,
            "stream": a.stream,
            "type": a.event.type_name(),
        })).collect::<Vec<_>>(),
    })
}

/// The reply to a refused command: `{"ok": false, "error": {"code", "message"}}`, plus
/// what the engine journaled anyway (denials are recorded). When the engine cannot take
/// the command now (stopping, resynchronizing, server full: the protocol mapping's
/// `unavailable` class), `error.retry_after` says after how many seconds to retry.
pub(crate) fn engine_error_json(e: &EngineError) -> Value {
    let mut v = json!({
        "ok": false,
        "error": {"code": e.code(), "message": e.to_string()},
    });
    if let Some(secs) = e.mapping().retry_after {
        v["error"]["retry_after"] = json!(secs);
    }
    if let EngineError::Rejected {
        correlation_id,
        recorded,
        ..
    } = e
    {
        v["correlation_id"] = json!(correlation_id);
        v["recorded"] = json!(recorded);
    }
    v
}

pub(crate) fn request_error_json(e: &RequestError) -> Value {
    json!({"ok": false, "error": {"code": e.code(), "message": e.to_string()}})
}

/// Executes one request and returns the reply body and whether it was accepted.
async fn handle(
    engine: &Engine,
    settings: &Settings,
    subject: &str,
    h: Option<&HeaderMap>,
    payload: &[u8],
) -> (Value, bool) {
    let req = match parse_request(settings, subject, h, payload) {
        Ok(r) => r,
        Err(e) => return (request_error_json(&e), false),
    };
    let name = req.command.name();
    match engine.execute(req).await {
        Ok(o) => (outcome_json(name, &o), true),
        Err(e) => (engine_error_json(&e), false),
    }
}

pub(crate) struct Responder {
    pub client: Client,
    pub engine: Engine,
    pub settings: Arc<Settings>,
    pub shared: Arc<Shared>,
    pub stop: watch::Receiver<bool>,
}

impl Responder {
    pub async fn run(mut self, mut sub: Subscriber) {
        let limit = Arc::new(Semaphore::new(self.settings.max_concurrent_commands));
        loop {
            let msg = tokio::select! {
                m = sub.next() => m,
                _ = self.stop.changed() => None,
            };
            let Some(msg) = msg else { break };
            let Some(reply) = msg.reply.clone() else {
                tracing::debug!(subject = %msg.subject, "command without a reply subject ignored");
                continue;
            };
            self.shared.commands.fetch_add(1, Ordering::Relaxed);
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                self.shared
                    .commands_rejected
                    .fetch_add(1, Ordering::Relaxed);
                let body = request_error_json(&RequestError::Overloaded);
                let _ = self.client.publish(reply, body.to_string().into()).await;
                continue;
            };
            let (client, engine, settings, shared) = (
                self.client.clone(),
                self.engine.clone(),
                self.settings.clone(),
                self.shared.clone(),
            );
            tokio::spawn(async move {
                let (body, ok) = handle(
                    &engine,
                    &settings,
                    msg.subject.as_str(),
                    msg.headers.as_ref(),
                    &msg.payload,
                )
                .await;
                if !ok {
                    shared.commands_rejected.fetch_add(1, Ordering::Relaxed);
                }
                if let Err(e) = client.publish(reply, body.to_string().into()).await {
                    tracing::warn!(error = %e, "cannot send a command reply");
                }
                drop(permit);
            });
        }
        let _ = sub.unsubscribe().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NatsConfig;

    fn settings(may_act_as: bool) -> Settings {
        let mut c = NatsConfig::new("nats://127.0.0.1:4222", "/tmp/x");
        c.credentials = vec![crate::ServiceCredential {
            name: "bot".into(),
            token: "s3cret-s3cret-s3cret".into(),
            may_act_as,
        }];
        Settings::from_config(&c).unwrap()
    }

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, *v);
        }
        m
    }

    #[test]
    fn a_good_request_becomes_a_service_command() {
        let s = settings(false);
        let hm = h(&[
            ("conclave-token", "s3cret-s3cret-s3cret"),
            ("Conclave-Correlation-Id", "c-1"),
        ]);
        let r = parse_request(
            &s,
            "conclave.cmd.create_room",
            Some(&hm),
            br#"{"room":"lobby","private":false}"#,
        )
        .unwrap();
        assert_eq!(r.command.name(), "create_room");
        assert_eq!(r.actor, Actor::Service("bot".into()));
        assert_eq!(r.origin.gateway, "nats");
        assert_eq!(r.origin.protocol, "nats");
        assert_eq!(r.correlation_id.as_deref(), Some("c-1"));
    }

    #[test]
    fn hostile_requests_get_typed_errors() {
        let s = settings(false);
        let ok = h(&[("Conclave-Token", "s3cret-s3cret-s3cret")]);
        let code = |subject: &str, hm: Option<&HeaderMap>, body: &[u8]| {
            parse_request(&s, subject, hm, body).unwrap_err().code()
        };
        assert_eq!(code("conclave.cmd.kick", None, b"{}"), "nats.unauthorized");
        let wrong = h(&[("Conclave-Token", "nope")]);
        assert_eq!(
            code("conclave.cmd.kick", Some(&wrong), b"{}"),
            "nats.unauthorized"
        );
        assert_eq!(
            code("conclave.cmd.nope", Some(&ok), b"{}"),
            "nats.unknown_command"
        );
        assert_eq!(
            code("conclave.cmd.Kick", Some(&ok), b"{}"),
            "nats.unknown_command"
        );
        assert_eq!(
            code("conclave.cmd.a.b", Some(&ok), b"{}"),
            "nats.unknown_command"
        );
        assert_eq!(
            code("conclave.cmd.", Some(&ok), b"{}"),
            "nats.unknown_command"
        );
        assert_eq!(
            code("conclave.cmd.kick", Some(&ok), b"\xff{"),
            "nats.bad_request"
        );
        assert_eq!(
            code("conclave.cmd.kick", Some(&ok), b"[1]"),
            "nats.bad_request"
        );
        assert_eq!(
            code("conclave.cmd.kick", Some(&ok), b"{}"),
            "nats.bad_request"
        );
        assert_eq!(
            code(
                "conclave.cmd.create_room",
                Some(&ok),
                br#"{"room":"a","private":false,"x":1}"#
            ),
            "nats.bad_request"
        );
        let act = h(&[
            ("Conclave-Token", "s3cret-s3cret-s3cret"),
            ("Conclave-Act-As", "sip:a@b"),
        ]);
        assert_eq!(
            code("conclave.cmd.raise_hand", Some(&act), br#"{"room":"a"}"#),
            "nats.act_as_forbidden"
        );
        let long = "x".repeat(500);
        let bad_id = h(&[
            ("Conclave-Token", "s3cret-s3cret-s3cret"),
            ("Conclave-Correlation-Id", &long),
        ]);
        assert_eq!(
            code("conclave.cmd.raise_hand", Some(&bad_id), br#"{"room":"a"}"#),
            "nats.bad_header"
        );
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(
            code("conclave.cmd.kick", Some(&ok), deep.as_bytes()),
            "nats.bad_request"
        );
    }

    #[test]
    fn acting_as_an_identity_needs_the_right_and_a_valid_address() {
        let s = settings(true);
        let act = h(&[
            ("Conclave-Token", "s3cret-s3cret-s3cret"),
            ("Conclave-Act-As", "xmpp:alice@example.org"),
        ]);
        let r = parse_request(
            &s,
            "conclave.cmd.raise_hand",
            Some(&act),
            br#"{"room":"a"}"#,
        )
        .unwrap();
        assert!(matches!(r.actor, Actor::Identity(_)));
        let bad = h(&[
            ("Conclave-Token", "s3cret-s3cret-s3cret"),
            ("Conclave-Act-As", "not an address"),
        ]);
        let e = parse_request(
            &s,
            "conclave.cmd.raise_hand",
            Some(&bad),
            br#"{"room":"a"}"#,
        )
        .unwrap_err();
        assert_eq!(e.code(), "nats.bad_header");
    }

    #[test]
    fn engine_errors_carry_a_retry_hint_when_unavailable() {
        let v = engine_error_json(&EngineError::Stopped);
        assert_eq!(v["error"]["code"], "engine.stopped");
        assert_eq!(v["error"]["retry_after"], 30);
        let v = engine_error_json(&EngineError::Rejected {
            rejection: conclave_engine::Rejection::NotModerator,
            correlation_id: "c".into(),
            recorded: vec![4],
        });
        assert_eq!(v["error"]["code"], "perm.not_moderator");
        assert!(v["error"].get("retry_after").is_none());
        assert_eq!(v["recorded"], json!([4]));
    }
}
