//! MESSAGE (RFC 3428) to the conference manager or a room: IMC commands and chat.

use std::sync::Arc;

use super::{auth, deliver, register, reply, App, Facts};
use crate::imc::{ImcRequest, Target};
use crate::transaction::{Peer, ServerKey};

/// Longest MESSAGE body taken (RFC 3428 §7 asks for 1300 bytes over UDP at most; TCP
/// may carry more, the engine's chat limit decides the rest).
const MAX_BODY: usize = 64 * 1024;

pub async fn handle(app: &Arc<App>, key: ServerKey, from: Peer, req: rsip::Request, facts: Facts) {
    let target = app
        .config
        .addressing
        .target(&facts.ruri_user, &facts.ruri_host);
    if matches!(target, Target::Other) {
        return app
            .outbox
            .respond(&key, reply::status(&req, 404, "Not Found (no such room)"))
            .await;
    }
    match facts.content_type.as_deref() {
        Some("text/plain") => {}
        None if req.body.is_empty() => {}
        _ => {
            let resp = reply::header(
                reply::status(&req, 415, "Unsupported Media Type"),
                "Accept",
                "text/plain",
            );
            return app.outbox.respond(&key, resp).await;
        }
    }
    if req.body.len() > MAX_BODY {
        return app
            .outbox
            .respond(&key, reply::status(&req, 413, "Request Entity Too Large"))
            .await;
    }
    let Some(body) = Facts::text(&req) else {
        return app
            .outbox
            .respond(
                &key,
                reply::status(&req, 400, "Bad Request (body is not UTF-8)"),
            )
            .await;
    };
    if !auth::authenticate(app, &key, from, &req, &facts.from).await {
        return;
    }
    let remote = Some(from.addr);
    register::renew_im_sessions(app, &facts.from, remote, false).await;
    let body = body.trim_end_matches(['\r', '\n']).to_owned();
    if body.trim().is_empty() {
        // Nothing to do; an empty MESSAGE is a keep-alive some clients send.
        return app
            .outbox
            .respond(&key, reply::status(&req, 200, "OK"))
            .await;
    }
    let answer = app
        .imc
        .handle(ImcRequest {
            sender: facts.from.clone(),
            target,
            body,
            remote,
            call_id: facts.call_id.clone(),
        })
        .await;
    let mut resp = reply::status(&req, answer.status, &reply::reason_phrase(&answer.reason));
    if let Some(secs) = answer.retry_after {
        resp = reply::header(resp, "Retry-After", secs.to_string());
    }
    app.outbox.respond(&key, resp).await;
    for n in answer.notices {
        deliver::spawn_message(app, &n.to, &n.from_uri, n.body);
    }
}
