//! Audio calls into rooms: INVITE joins (a session per dialog), BYE leaves, re-INVITE
//! and UPDATE change the media or refresh the session timer, INFO and RFC 4733 carry
//! the keypad commands, and what the engine decides elsewhere (a mute, a kick, a ban, a
//! destroyed room) reaches the call through [`reconcile`].

use std::sync::Arc;
use std::time::Instant;

use conclave_engine::ids::{AccountId, Principal, RoomName, SessionId};
use conclave_engine::state::Gate;
use conclave_engine::{Command, Credentials};
use conclave_media::{Direction as MediaDirection, MediaEvent, G711};

use super::calls::{Call, DialogId, Inserted, Phase};
use super::facts::header_values;
use super::{auth, deliver, lock, reply, App, Facts};
use crate::imc::Target;
use crate::info::{dtmf_from_info, DtmfCommand, DtmfCommands, INFO_ACCEPT};
use crate::sdp::{self, Codec, Direction, LocalMedia, Negotiated};
use crate::session_timer::{self, Refresher, SessionTimer, TimerConfig};
use crate::transaction::{Peer, ServerKey};
use crate::wire::{self, RequestSpec};

/// The codecs offered and accepted, in our order of preference.
const CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

/// The session a call holds: one per dialog, so one person may call in twice. Always
/// a valid id (`sip-call-` and hex); `None` would be a bug, answered with 500.
pub fn call_session(call_id: &str, remote_tag: &str) -> Option<SessionId> {
    let h = blake3::hash(format!("{call_id}\u{0}{remote_tag}").as_bytes());
    SessionId::parse(&format!("sip-call-{}", &h.to_hex()[..20])).ok()
}

fn dialog_of(facts: &Facts) -> Option<DialogId> {
    Some(DialogId {
        call_id: facts.call_id.clone(),
        remote_tag: facts.from_tag.clone()?,
    })
}

fn to_media(codec: Codec) -> G711 {
    match codec {
        Codec::Pcmu => G711::Pcmu,
        Codec::Pcma => G711::Pcma,
    }
}

fn media_direction(d: Direction) -> MediaDirection {
    match d {
        Direction::SendRecv => MediaDirection::SendRecv,
        Direction::SendOnly => MediaDirection::SendOnly,
        Direction::RecvOnly => MediaDirection::RecvOnly,
        Direction::Inactive => MediaDirection::Inactive,
    }
}

/// What an INVITE asks to join.
enum Destination {
    Room(RoomName),
    Account(AccountId),
}

fn destination(app: &App, facts: &Facts) -> Option<Destination> {
    match app
        .config
        .addressing
        .target(&facts.ruri_user, &facts.ruri_host)
    {
        Target::Room(room) => Some(Destination::Room(room)),
        Target::Manager => None,
        Target::Other => {
            // A Jami-style rendezvous account: calling it joins its conference.
            let account = AccountId::parse(&facts.ruri_user).ok()?;
            let known = app
                .handle
                .engine()
                .read(|s| s.accounts.contains_key(&account));
            known.then_some(Destination::Account(account))
        }
    }
}

/// A value without its `;tag=` parameter.
fn strip_tag(value: &str) -> String {
    let cut = value.rfind('>').unwrap_or(0);
    let (head, tail) = value.split_at(cut);
    let kept: Vec<&str> = tail
        .split(';')
        .filter(|p| !p.trim().to_ascii_lowercase().starts_with("tag="))
        .collect();
    format!("{head}{}", kept.join(";"))
}

pub async fn invite(app: Arc<App>, key: ServerKey, from: Peer, req: rsip::Request, facts: Facts) {
    let Some(dest) = destination(&app, &facts) else {
        return app
            .outbox
            .respond(&key, reply::status(&req, 404, "Not Found (no such room)"))
            .await;
    };
    let Some(id) = dialog_of(&facts) else {
        return app
            .outbox
            .respond(
                &key,
                reply::status(&req, 400, "Bad Request (From without tag)"),
            )
            .await;
    };
    if !auth::authenticate(&app, &key, from, &req, &facts.from).await {
        return;
    }
    let (timer, offer, media) = match check_invite(&app, &req, &facts) {
        Ok(v) => v,
        Err((response, code)) => {
            app.outbox.respond(&key, response).await;
            let room = match &dest {
                Destination::Room(r) => Some(r.clone()),
                Destination::Account(_) => None,
            };
            app.record_refusal(
                &facts.from,
                from.addr,
                &facts.call_id,
                room,
                "sip_invite",
                code,
            );
            return;
        }
    };
    let local_tag = wire::new_tag();
    let Some(session) = call_session(&id.call_id, &id.remote_tag) else {
        return app
            .outbox
            .respond(&key, reply::status(&req, 500, "Server Internal Error"))
            .await;
    };
    let call = Call {
        id: id.clone(),
        local_tag: local_tag.clone(),
        phase: Phase::Proceeding,
        cancelled: false,
        invite: Some(key.clone()),
        invite_request: Some(req.clone()),
        room: RoomName::from_stored(String::new()),
        session: session.clone(),
        who: facts.from.clone(),
        peer: from,
        remote_target: facts
            .contact
            .clone()
            .unwrap_or_else(|| facts.from.to_string()),
        route: facts.record_route.clone(),
        remote_uri: strip_tag(&facts.from_header),
        local_uri: strip_tag(&facts.to_header),
        local_cseq: 0,
        remote_cseq: facts.cseq,
        leg: None,
        media: None,
        offered_in_answer: offer.is_none(),
        expires_at: None,
        dtmf: DtmfCommands::new(),
        muted: false,
    };
    let inserted = lock(&app.calls).insert(call, app.config.max_calls_per_address);
    match inserted {
        Inserted::Yes => {}
        Inserted::Cancelled => {
            // The CANCEL came before the call was known: answer it now.
            let resp = reply::in_dialog(&req, 487, "Request Terminated", &local_tag);
            return app.outbox.respond(&key, resp).await;
        }
        Inserted::Refused => {
            let resp = reply::status(&req, 486, "Busy Here (too many calls from this address)");
            app.outbox.respond(&key, resp).await;
            app.record_refusal(
                &facts.from,
                from.addr,
                &facts.call_id,
                None,
                "sip_invite",
                "sip.too_many_calls",
            );
            return;
        }
    }
    // (The transaction layer answered 100 Trying on arrival.)
    let remote = Some(from.addr);
    let joined = match &dest {
        Destination::Room(room) => {
            let cmd = Command::Join {
                room: room.clone(),
                session: session.clone(),
                credentials: Credentials::default(),
            };
            app.execute(&facts.from, remote, &facts.call_id, cmd).await
        }
        Destination::Account(account) => {
            let cmd = Command::CallAccount {
                account: account.clone(),
                session: session.clone(),
                credentials: Credentials::default(),
            };
            app.execute(&facts.from, remote, &facts.call_id, cmd).await
        }
    };
    let room = match (&joined, &dest) {
        (Err(e), _) => {
            let cancelled = was_cancelled(&app, &id);
            lock(&app.calls).remove(&id);
            if !cancelled {
                app.outbox.respond(&key, reply::engine_error(&req, e)).await;
            }
            return;
        }
        (Ok(_), Destination::Room(room)) => room.clone(),
        (Ok(_), Destination::Account(account)) => {
            match app
                .handle
                .engine()
                .read(|s| s.accounts.get(account).and_then(|a| a.rendezvous.clone()))
            {
                Some(r) => r,
                None => {
                    lock(&app.calls).remove(&id);
                    return app
                        .outbox
                        .respond(&key, reply::status(&req, 480, "Temporarily Unavailable"))
                        .await;
                }
            }
        }
    };
    let wanted = {
        let mut calls = lock(&app.calls);
        match calls.get_mut(&id) {
            Some(c) if !c.cancelled => {
                c.room = room.clone();
                true
            }
            _ => {
                calls.remove(&id);
                false
            }
        }
    };
    if !wanted {
        // CANCELled while joining: the CANCEL handler answered 487.
        leave(&app, &facts.from, &room, &session).await;
        return;
    }
    let (neg_codec, neg) = match &offer {
        Some(text) => {
            let probe = LocalMedia {
                address: app.media_address(),
                port: 9,
                session_id: 0,
                session_version: 0,
            };
            match sdp::answer(text, &probe, &CODECS) {
                Ok((_, n)) => (n.codec, Some(n)),
                Err(e) => {
                    lock(&app.calls).remove(&id);
                    leave(&app, &facts.from, &room, &session).await;
                    return app.outbox.respond(&key, sdp_refusal(&req, &e)).await;
                }
            }
        }
        None => (Codec::Pcmu, None),
    };
    let leg = match media
        .open_leg(
            room.as_str(),
            session.as_str(),
            to_media(neg_codec),
            neg.map_or(neg_codec.static_payload_type(), |n| n.payload_type),
            neg.map_or(Some(sdp::TELEPHONE_EVENT_PT), |n| n.telephone_event),
        )
        .await
    {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "no media leg for a call");
            lock(&app.calls).remove(&id);
            leave(&app, &facts.from, &room, &session).await;
            let resp = reply::header(
                reply::status(&req, 503, "Service Unavailable"),
                "Retry-After",
                "30",
            );
            return app.outbox.respond(&key, resp).await;
        }
    };
    let local = LocalMedia {
        address: leg.local.ip(),
        port: leg.local.port(),
        session_id: session_number(),
        session_version: 1,
    };
    let body = match &offer {
        Some(text) => match sdp::answer(text, &local, &CODECS) {
            Ok((answer, n)) => {
                apply_media(&media, leg.id, &n);
                answer
            }
            Err(e) => {
                let _ = media.close_leg(leg.id);
                lock(&app.calls).remove(&id);
                leave(&app, &facts.from, &room, &session).await;
                return app.outbox.respond(&key, sdp_refusal(&req, &e)).await;
            }
        },
        None => sdp::offer(&local, &CODECS),
    };
    let muted = is_muted(&app, &room, &facts.from);
    let _ = media.set_muted(leg.id, muted);
    let now = app.now();
    let still_wanted = {
        let mut calls = lock(&app.calls);
        calls.set_leg(&id, leg.id);
        match calls.get_mut(&id) {
            Some(c) if !c.cancelled => {
                c.invite_request = None;
                c.media = Some(local);
                c.muted = muted;
                c.phase = Phase::Accepted;
                c.expires_at = timer.as_ref().and_then(|t| timer_deadline(now, t));
                true
            }
            _ => false,
        }
    };
    if !still_wanted {
        let _ = media.close_leg(leg.id);
        lock(&app.calls).remove(&id);
        leave(&app, &facts.from, &room, &session).await;
        return;
    }
    app.calls_changed.notify_one();
    let resp = answer_2xx(&app, &req, &facts, &local_tag, &from, body, timer.as_ref());
    app.outbox.respond(&key, resp).await;
}

/// A refusal before the engine is asked: the answer, and the stable code journaled for it.
type Refusal = (rsip::Response, &'static str);

/// What an INVITE brings that passed: its session timer, its offer, the media node.
type Accepted = (
    Option<SessionTimer>,
    Option<String>,
    conclave_media::MediaNode,
);

/// What an INVITE must pass before anything is joined or opened: its session interval,
/// its offer (when it has one) and a media node. A refusal is the answer and the stable
/// code journaled for it.
fn check_invite(app: &App, req: &rsip::Request, facts: &Facts) -> Result<Accepted, Refusal> {
    let timer = session_timer_of(app, req, facts)?;
    let offer = if req.body.is_empty() {
        None
    } else {
        if facts.content_type.as_deref() != Some("application/sdp") {
            let resp = reply::header(
                reply::status(req, 415, "Unsupported Media Type"),
                "Accept",
                "application/sdp",
            );
            return Err((resp, "sip.unsupported_media_type"));
        }
        let text = sdp::body_text(&req.body).map_err(|e| (sdp_refusal(req, &e), e.code()))?;
        let probe = LocalMedia {
            address: app.media_address(),
            port: 9,
            session_id: 0,
            session_version: 0,
        };
        sdp::answer(text, &probe, &CODECS).map_err(|e| (sdp_refusal(req, &e), e.code()))?;
        Some(text.to_owned())
    };
    let media = app.media.clone().ok_or_else(|| {
        let resp = reply::status(req, 488, "Not Acceptable Here (no media node)");
        (resp, "media.unavailable")
    })?;
    Ok((timer, offer, media))
}

/// Whether the call was cancelled (its entry is gone or marked).
fn was_cancelled(app: &App, id: &DialogId) -> bool {
    lock(&app.calls).get_mut(id).is_none_or(|c| c.cancelled)
}

fn session_number() -> u64 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u64::from(u32::from_le_bytes(b))
}

fn apply_media(media: &conclave_media::MediaNode, leg: conclave_media::LegId, n: &Negotiated) {
    if let Some(rtp) = n.remote_rtp {
        let _ = media.set_remote(leg, rtp, n.remote_rtcp);
    }
    let _ = media.set_direction(leg, media_direction(n.remote_direction));
}

fn sdp_refusal(req: &rsip::Request, e: &sdp::SdpError) -> rsip::Response {
    let code = e.sip_status();
    let reason = if code == 488 {
        format!("Not Acceptable Here ({e})")
    } else {
        format!("Bad Request ({e})")
    };
    let resp = reply::status(req, code, &reply::reason_phrase(&reason));
    if code == 488 {
        reply::header(
            resp,
            "Warning",
            "304 conclave \"PCMU or PCMA over RTP/AVP required\"",
        )
    } else {
        resp
    }
}

/// The RFC 4028 timer of an INVITE or UPDATE, or the response refusing it.
fn session_timer_of(
    app: &App,
    req: &rsip::Request,
    facts: &Facts,
) -> Result<Option<SessionTimer>, Refusal> {
    let se = header_values(&req.headers, "Session-Expires", Some("x"));
    let min_se = header_values(&req.headers, "Min-SE", None);
    let config = TimerConfig {
        min_se: app.config.session_min_se,
        default_expires: app.config.session_expires,
    };
    let supports =
        facts.supported.iter().any(|t| t == "timer") || facts.require.iter().any(|t| t == "timer");
    session_timer::decide(
        &config,
        se.first().map(String::as_str),
        min_se.first().map(String::as_str),
        supports,
    )
    .map_err(|e| {
        let resp = match &e {
            session_timer::TimerError::TooSmall { min_se } => reply::header(
                reply::status(req, 422, "Session Interval Too Small"),
                "Min-SE",
                min_se.to_string(),
            ),
            other => reply::status(req, 400, &other.to_string()),
        };
        (resp, e.code())
    })
}

/// When a call with `timer` ends unless refreshed. The caller refreshes
/// (`refresher=uac`); a session we would have to refresh ourselves gets no deadline: the
/// gateway sends no refreshes, and RTP inactivity ends a dead call anyway.
fn timer_deadline(now: Instant, timer: &SessionTimer) -> Option<Instant> {
    (timer.refresher == Refresher::Uac).then(|| session_timer::expires_at(now, timer))
}

/// Adds the RFC 4028 headers of `timer` to a 2xx.
fn with_timer(mut resp: rsip::Response, timer: Option<&SessionTimer>) -> rsip::Response {
    if let Some(t) = timer {
        resp = reply::header(resp, "Session-Expires", t.header_value());
        if t.require_timer {
            resp = reply::header(resp, "Require", "timer");
        }
    }
    resp
}

fn answer_2xx(
    app: &App,
    req: &rsip::Request,
    facts: &Facts,
    local_tag: &str,
    from: &Peer,
    sdp_body: String,
    timer: Option<&SessionTimer>,
) -> rsip::Response {
    let mut resp = reply::in_dialog(req, 200, "OK", local_tag);
    if let Some(contact) = app.contact(&facts.ruri_user, from) {
        resp = reply::header(resp, "Contact", contact);
    }
    resp = reply::with_allow(resp);
    resp = with_timer(reply::header(resp, "Supported", super::SUPPORTED), timer);
    wire::response_with_body(resp, "application/sdp", sdp_body.into_bytes())
}

fn is_muted(app: &App, room: &RoomName, who: &conclave_engine::ids::Address) -> bool {
    app.handle.engine().read(|s| {
        let p = s.principal_of(who);
        s.list_members(room)
            .and_then(|m| m.get(&p))
            .is_some_and(|m| m.audio != Gate::Open)
    })
}

async fn leave(
    app: &App,
    who: &conclave_engine::ids::Address,
    room: &RoomName,
    session: &SessionId,
) {
    if room.as_str().is_empty() {
        return;
    }
    let cmd = Command::Leave {
        room: room.clone(),
        session: session.clone(),
    };
    if let Err(e) = app.execute(who, None, "", cmd).await {
        tracing::debug!(error = %e, "leave after a call refused (already gone)");
    }
}

pub async fn ack(app: &App, req: rsip::Request) {
    let Ok(facts) = Facts::read(&req) else {
        return;
    };
    let Some(id) = dialog_of(&facts) else {
        return;
    };
    let mut calls = lock(&app.calls);
    let Some(call) = calls.get_mut(&id) else {
        return;
    };
    if facts.to_tag.as_deref() != Some(call.local_tag.as_str()) {
        return;
    }
    call.phase = Phase::Confirmed;
    if call.offered_in_answer && !req.body.is_empty() {
        call.offered_in_answer = false;
        let answer = sdp::body_text(&req.body).ok().map(str::to_owned);
        if let (Some(text), Some(local), Some(leg), Some(media)) =
            (answer, call.media, call.leg, app.media.as_ref())
        {
            match sdp::accept_answer(&text, &local) {
                Ok(n) => apply_media(media, leg, &n),
                Err(e) => tracing::info!(code = e.code(), "unusable SDP answer in an ACK"),
            }
        }
    }
}

/// A CANCEL matched the INVITE: answer it 487 now; the INVITE's handler sees the mark
/// at its next step and undoes what it did (the join, the leg). A call answered already
/// is not cancelled (RFC 3261 §9.2: the CANCEL has no effect; the caller sends BYE).
pub async fn cancelled(app: &App, invite: ServerKey) {
    let pending = {
        let mut calls = lock(&app.calls);
        let id = calls.by_invite(&invite);
        match id {
            Some(id) => match calls.get_mut(&id) {
                Some(c) if c.phase == Phase::Proceeding => {
                    c.cancelled = true;
                    c.invite_request.take().map(|r| (r, c.local_tag.clone()))
                }
                _ => None,
            },
            None => {
                // The INVITE's handler has not registered its call yet (it is still
                // authenticating or checking the offer): it answers 487 when it does.
                calls.cancel_early(invite.clone());
                None
            }
        }
    };
    if let Some((req, tag)) = pending {
        let resp = reply::in_dialog(&req, 487, "Request Terminated", &tag);
        app.outbox.respond(&invite, resp).await;
    }
}

pub async fn ack_timeout(app: &Arc<App>, invite: ServerKey) {
    let id = lock(&app.calls).by_invite(&invite);
    if let Some(id) = id {
        end_call(app, &id, true, true).await;
    }
}

pub async fn bye(app: &Arc<App>, key: ServerKey, req: rsip::Request, facts: Facts) {
    let Some(id) = dialog_or_481(app, &key, &req, &facts).await else {
        return;
    };
    let tag = facts.to_tag.clone().unwrap_or_default();
    app.outbox
        .respond(&key, reply::in_dialog(&req, 200, "OK", &tag))
        .await;
    end_call(app, &id, false, true).await;
}

/// [`in_dialog`], or `481 Call/Transaction Does Not Exist` answered.
async fn dialog_or_481(
    app: &App,
    key: &ServerKey,
    req: &rsip::Request,
    facts: &Facts,
) -> Option<DialogId> {
    let id = in_dialog(app, facts);
    if id.is_none() {
        app.outbox
            .respond(
                key,
                reply::status(req, 481, "Call/Transaction Does Not Exist"),
            )
            .await;
    }
    id
}

/// The call a request inside a dialog belongs to: Call-ID, From tag and our To tag.
fn in_dialog(app: &App, facts: &Facts) -> Option<DialogId> {
    let id = dialog_of(facts)?;
    let mut calls = lock(&app.calls);
    let call = calls.get_mut(&id)?;
    if facts.to_tag.as_deref() != Some(call.local_tag.as_str()) {
        return None;
    }
    if facts.cseq > call.remote_cseq {
        call.remote_cseq = facts.cseq;
    }
    Some(id)
}

pub async fn reinvite(app: &Arc<App>, key: ServerKey, req: rsip::Request, facts: Facts) {
    let Some(id) = dialog_or_481(app, &key, &req, &facts).await else {
        return;
    };
    let timer = match session_timer_of(app, &req, &facts) {
        Ok(t) => t,
        Err((resp, _)) => return app.outbox.respond(&key, resp).await,
    };
    // The call's media, with the session version moved on; or the status to refuse with.
    let found: Result<_, (u16, &str)> = {
        let mut calls = lock(&app.calls);
        match calls.get_mut(&id) {
            None => Err((481, "Call/Transaction Does Not Exist")),
            Some(call) => match call.media {
                // Still answering the INVITE: RFC 3261 §14.2.
                None => Err((491, "Request Pending")),
                Some(mut local) => {
                    local.session_version += 1;
                    call.media = Some(local);
                    call.expires_at = timer.as_ref().and_then(|t| timer_deadline(app.now(), t));
                    Ok((local, call.leg))
                }
            },
        }
    };
    let (local, leg) = match found {
        Ok(v) => v,
        Err((code, reason)) => {
            return app
                .outbox
                .respond(&key, reply::status(&req, code, reason))
                .await
        }
    };
    app.calls_changed.notify_one();
    let body = if req.body.is_empty() {
        if let Some(c) = lock(&app.calls).get_mut(&id) {
            c.offered_in_answer = true;
        }
        sdp::offer(&local, &CODECS)
    } else {
        let text = match sdp::body_text(&req.body) {
            Ok(t) => t.to_owned(),
            Err(e) => return app.outbox.respond(&key, sdp_refusal(&req, &e)).await,
        };
        match sdp::answer(&text, &local, &CODECS) {
            Ok((answer, n)) => {
                if let (Some(leg), Some(media)) = (leg, app.media.as_ref()) {
                    apply_media(media, leg, &n);
                }
                answer
            }
            // A refused re-offer leaves the session as it was (RFC 3261 §14.2).
            Err(e) => return app.outbox.respond(&key, sdp_refusal(&req, &e)).await,
        }
    };
    let tag = facts.to_tag.clone().unwrap_or_default();
    let from = lock(&app.calls).get_mut(&id).map(|c| c.peer);
    let Some(from) = from else {
        return;
    };
    let resp = answer_2xx(app, &req, &facts, &tag, &from, body, timer.as_ref());
    app.outbox.respond(&key, resp).await;
}

/// UPDATE (RFC 3311) without a body: a session refresh (RFC 4028).
pub async fn update(app: &Arc<App>, key: ServerKey, req: rsip::Request, facts: Facts) {
    let Some(id) = dialog_or_481(app, &key, &req, &facts).await else {
        return;
    };
    if !req.body.is_empty() {
        return app
            .outbox
            .respond(
                &key,
                reply::status(
                    &req,
                    488,
                    "Not Acceptable Here (offers in UPDATE are not taken; use re-INVITE)",
                ),
            )
            .await;
    }
    let timer = match session_timer_of(app, &req, &facts) {
        Ok(t) => t,
        Err((resp, _)) => return app.outbox.respond(&key, resp).await,
    };
    if let Some(c) = lock(&app.calls).get_mut(&id) {
        c.expires_at = timer.as_ref().and_then(|t| timer_deadline(app.now(), t));
    }
    app.calls_changed.notify_one();
    let tag = facts.to_tag.clone().unwrap_or_default();
    let resp = with_timer(reply::in_dialog(&req, 200, "OK", &tag), timer.as_ref());
    app.outbox.respond(&key, resp).await;
}

/// INFO with a DTMF body (application/dtmf-relay or application/dtmf).
pub async fn info(app: &Arc<App>, key: ServerKey, req: rsip::Request, facts: Facts) {
    let Some(id) = dialog_or_481(app, &key, &req, &facts).await else {
        return;
    };
    let tag = facts.to_tag.clone().unwrap_or_default();
    let ct = facts.content_type.clone().unwrap_or_default();
    match dtmf_from_info(&ct, &req.body) {
        Ok(Some(key_pressed)) => {
            app.outbox
                .respond(&key, reply::in_dialog(&req, 200, "OK", &tag))
                .await;
            keypad(app, &id, key_pressed).await;
        }
        Ok(None) if req.body.is_empty() => {
            // An empty INFO is a keep-alive (RFC 6086 §4.2).
            app.outbox
                .respond(&key, reply::in_dialog(&req, 200, "OK", &tag))
                .await;
        }
        Ok(None) => {
            let resp = reply::header(
                reply::in_dialog(&req, 415, "Unsupported Media Type", &tag),
                "Accept",
                INFO_ACCEPT,
            );
            app.outbox.respond(&key, resp).await;
        }
        Err(e) => {
            app.outbox
                .respond(&key, reply::in_dialog(&req, 400, &e.to_string(), &tag))
                .await;
        }
    }
}

/// A key pressed in a call (INFO or RFC 4733): `*6` toggles one's mute, `*1` one's hand.
async fn keypad(app: &Arc<App>, id: &DialogId, key: char) {
    let (command, who, room) = {
        let mut calls = lock(&app.calls);
        let Some(call) = calls.get_mut(id) else {
            return;
        };
        (
            call.dtmf.push(key, Instant::now()),
            call.who.clone(),
            call.room.clone(),
        )
    };
    let Some(command) = command else {
        return;
    };
    let (muted, hand) = app.handle.engine().read(|s| {
        let p = s.principal_of(&who);
        s.list_members(&room)
            .and_then(|m| m.get(&p))
            .map_or((false, false), |m| (m.audio != Gate::Open, m.hand_raised))
    });
    let me: Principal = app.handle.engine().read(|s| s.principal_of(&who));
    let cmd = match command {
        DtmfCommand::ToggleMute if muted => Command::UnmuteAudio {
            room: room.clone(),
            subject: me,
        },
        DtmfCommand::ToggleMute => Command::MuteAudio {
            room: room.clone(),
            subject: me,
        },
        DtmfCommand::ToggleHand if hand => Command::LowerHand {
            room: room.clone(),
            subject: None,
        },
        DtmfCommand::ToggleHand => Command::RaiseHand { room: room.clone() },
    };
    if let Err(e) = app.execute(&who, None, "", cmd).await {
        // A moderator's mute cannot be lifted from the keypad; say so in the room.
        tracing::info!(identity = %who, error = %e, "keypad command refused");
        let room_uri = app.config.addressing.room_uri(&room);
        deliver::spawn_message(app, &who, &room_uri, format!("*** {e}"));
    }
}

/// Ends a call: forgets it, closes its leg, sends BYE when `by_us`, and leaves its
/// session when `leave_room` (not when the engine ended it already).
pub async fn end_call(app: &Arc<App>, id: &DialogId, by_us: bool, leave_room: bool) {
    let Some(mut call) = lock(&app.calls).remove(id) else {
        return;
    };
    if let (Some(leg), Some(media)) = (call.leg, app.media.as_ref()) {
        let _ = media.close_leg(leg);
    }
    if by_us {
        app.metrics
            .calls_ended_by_server
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        send_bye(app, &mut call).await;
    }
    if leave_room {
        leave(app, &call.who, &call.room, &call.session).await;
    }
}

async fn send_bye(app: &Arc<App>, call: &mut Call) {
    let Ok(uri) = rsip::Uri::try_from(call.remote_target.as_str()) else {
        return;
    };
    let Some(sent_by) = app.sent_by(call.peer.transport) else {
        return;
    };
    call.local_cseq += 1;
    let request = wire::request(RequestSpec {
        method: rsip::Method::Bye,
        uri,
        from: &call.local_uri,
        from_tag: &call.local_tag,
        to: &call.remote_uri,
        to_tag: Some(&call.id.remote_tag),
        call_id: &call.id.call_id,
        cseq: call.local_cseq,
        sent_by: &sent_by,
        transport: deliver::rsip_transport(call.peer.transport),
        contact: None,
        route: &call.route,
        body: None,
        extra: Vec::new(),
    });
    let peer = call.peer;
    let outbox = app.outbox.clone();
    tokio::spawn(async move {
        let _ = outbox.request(peer, request).await;
    });
}

/// Brings the room's calls in line with the committed state: a session that is gone
/// (kicked, banned, room destroyed, lease ended) gets a BYE; a mute from any gateway is
/// applied to the leg, whatever the phone does.
pub async fn reconcile(app: &Arc<App>, room: &RoomName) {
    let ids = lock(&app.calls).in_room(room);
    for id in ids {
        let (who, session, leg, was_muted, phase) = {
            let mut calls = lock(&app.calls);
            let Some(c) = calls.get_mut(&id) else {
                continue;
            };
            (c.who.clone(), c.session.clone(), c.leg, c.muted, c.phase)
        };
        if phase == Phase::Proceeding {
            continue;
        }
        let (present, muted) = app.handle.engine().read(|s| {
            let p = s.principal_of(&who);
            match s.list_members(room).and_then(|m| m.get(&p)) {
                Some(m) => (m.sessions.contains_key(&session), m.audio != Gate::Open),
                None => (false, false),
            }
        });
        if !present {
            end_call(app, &id, true, false).await;
            continue;
        }
        if muted != was_muted {
            if let (Some(leg), Some(media)) = (leg, app.media.as_ref()) {
                let _ = media.set_muted(leg, muted);
            }
            if let Some(c) = lock(&app.calls).get_mut(&id) {
                c.muted = muted;
            }
        }
    }
}

/// Follows the media node's events (keypad digits, silent legs) for the server's life.
pub async fn media_events(app: Arc<App>) {
    let Some(media) = app.media.clone() else {
        return;
    };
    let mut events = media.events();
    while let Some(ev) = events.recv().await {
        match ev {
            MediaEvent::Dtmf { leg, digit } => {
                let id = lock(&app.calls).by_leg(leg);
                if let Some(id) = id {
                    keypad(&app, &id, digit).await;
                }
            }
            MediaEvent::RtpTimeout { leg } => {
                let id = lock(&app.calls).by_leg(leg);
                if let Some(id) = id {
                    tracing::info!(call_id = %id.call_id, "no RTP from the caller; ending the call");
                    end_call(&app, &id, true, true).await;
                }
            }
        }
    }
}

/// Ends calls whose session timer ran out (RFC 4028 §10), sleeping until the next one.
pub async fn timer_loop(app: Arc<App>) {
    loop {
        let next = lock(&app.calls).next_deadline();
        if !super::sleep_until_due(next, &app.calls_changed).await {
            continue;
        }
        let due = lock(&app.calls).expired(app.now());
        for id in due {
            tracing::info!(call_id = %id.call_id, "session timer expired; ending the call");
            end_call(&app, &id, true, true).await;
        }
    }
}

impl App {
    /// The address the media node announces (for probing offers before a leg exists).
    pub fn media_address(&self) -> std::net::IpAddr {
        self.media
            .as_ref()
            .map(|m| m.announce())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    }

    /// Our Contact for a dialog with `peer`: the room's user at our address on the
    /// peer's transport.
    pub fn contact(&self, user: &str, peer: &Peer) -> Option<String> {
        let sent_by = self.sent_by(peer.transport)?;
        let transport = match peer.transport {
            crate::transaction::Transport::Udp => "udp",
            crate::transaction::Transport::Tcp => "tcp",
        };
        if user.is_empty() {
            Some(format!("<sip:{sent_by};transport={transport}>"))
        } else {
            Some(format!("<sip:{user}@{sent_by};transport={transport}>"))
        }
    }
}
