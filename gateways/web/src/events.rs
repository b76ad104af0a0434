//! The committed event feed over HTTP, live: Server-Sent Events and WebSocket, per room
//! for its participants, every room for the admin, resumable from a sequence number.
//!
//! A stream delivers each committed event once, in journal order, as the JSON the audit
//! view shows (plus `stream_version`); a participant's view leaves out the stored remote
//! address. A client resumes where it stopped by asking for `from` = the last `seq` it
//! received + 1 (SSE clients send `Last-Event-ID` by themselves), so nothing is lost or
//! repeated across a reconnect. What a participant receives follows the engine's
//! visibility rules at the moment of delivery: someone waiting in the lobby gets only
//! what concerns them, and a stream ends (with a last `revoked` message) as soon as the
//! right its token stands for ends, whichever gateway ended it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use conclave_engine::access::Sight;
use conclave_engine::service::{Engine, FeedEvent, FeedFilter, FeedSubscription, FeedView};
use conclave_engine::RoomName;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::api::parse_room;
use crate::auth::{Caller, Participant};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Ctx, PathParams, QueryParams};
use crate::media_plane::MediaSignal;
use crate::revocation::{self, Reach};
use crate::ws::{self, Peer};
use crate::App;

/// Most event streams open at once on the server.
pub const MAX_STREAMS: usize = 10_000;
/// Most event streams open at once with one token (tabs, reconnect overlaps).
pub const MAX_STREAMS_PER_TOKEN: usize = 8;
/// How often an idle stream proves it is alive (SSE comment, WebSocket ping).
const KEEPALIVE: Duration = Duration::from_secs(20);
/// WebSocket close code sent when the token's right has ended (private range).
const CLOSE_REVOKED: u16 = 4001;
/// WebSocket close code for a client that keeps sending over its rate (RFC 6455).
const CLOSE_POLICY: u16 = 1008;

/// Query parameters of the stream routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// First sequence number wanted; default: live events only.
    from: Option<u64>,
    /// The bearer token, for clients that cannot set headers (EventSource, WebSocket
    /// in browsers).
    access_token: Option<String>,
    /// WebSocket only: begin with a `media.config` message (the page's signalling).
    signalling: Option<bool>,
}

/// Open streams, counted globally and per token.
#[derive(Default)]
pub(crate) struct Slots {
    total: AtomicUsize,
    per_token: Mutex<HashMap<[u8; 32], usize>>,
}

/// One open stream; dropping it frees the slot.
struct Slot {
    slots: Arc<Slots>,
    key: [u8; 32],
    /// An open stream keeps its participant's session alive.
    keeper: Option<crate::lease::Keeper>,
}

impl Slots {
    fn take(self: &Arc<Self>, key: [u8; 32]) -> ApiResult<Slot> {
        let busy = |what: &str| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "stream.too_many",
                format!("too many event streams are open {what}; close one first"),
            )
        };
        let mut per = self.per_token.lock().unwrap_or_else(|p| p.into_inner());
        let n = per.entry(key).or_default();
        if *n >= MAX_STREAMS_PER_TOKEN {
            return Err(busy("with this token"));
        }
        if self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                (t < MAX_STREAMS).then_some(t + 1)
            })
            .is_err()
        {
            return Err(busy("on this server"));
        }
        *n += 1;
        Ok(Slot {
            slots: self.clone(),
            key,
            keeper: None,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.total.fetch_sub(1, Ordering::AcqRel);
        let mut per = self
            .slots
            .per_token
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per.remove(&self.key);
            }
        }
    }
}

/// What the follower of one stream hands out next.
enum Next {
    Event {
        seq: u64,
        text: Arc<str>,
    },
    /// The token's right ended: the stream's last message.
    Revoked,
    /// The engine stopped.
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Open,
    Ended,
    Told,
}

/// One stream's reading of the feed, with the viewer's rights applied to each event.
struct Follower {
    engine: Engine,
    sub: FeedSubscription,
    /// `None` for the admin's stream of every room.
    room: Option<RoomName>,
    /// `None` for the admin.
    who: Option<Participant>,
    /// What the participant may see, as of the last event that concerned them: a slow
    /// reader judges each event by the rights its holder had when it happened, not by
    /// the rights at the moment it is read.
    sight: Option<Sight>,
    /// Whether the right has ended, and whether the stream said so yet.
    end: End,
    _slot: Slot,
}

impl Follower {
    async fn next(&mut self) -> Next {
        loop {
            match self.end {
                End::Open => {}
                End::Ended => {
                    self.end = End::Told;
                    return Next::Revoked;
                }
                End::Told => return Next::Stopped,
            }
            let e = match self.sub.next().await {
                Ok(e) => e,
                Err(_) => return Next::Stopped,
            };
            let in_room = self.room.as_ref().is_none_or(|r| e.in_room(r));
            let Some(who) = &self.who else {
                if in_room {
                    return Next::Event {
                        seq: e.seq(),
                        text: e.text(FeedView::Full),
                    };
                }
                continue;
            };
            if affects(&e, who) {
                if revocation::holds(&self.engine, who) {
                    self.sight = current_sight(&self.engine, who);
                } else {
                    self.end = End::Ended;
                    // The event that ended it (a kick, a ban) is theirs to see, then
                    // the end.
                    if in_room && e.concerns(&who.identity) {
                        return Next::Event {
                            seq: e.seq(),
                            text: e.text(FeedView::Participant),
                        };
                    }
                    continue;
                }
            }
            if !in_room {
                continue;
            }
            let visible = match self.sight {
                Some(Sight::Participant | Sight::Moderator) => true,
                Some(Sight::Waiting) => e.concerns(&who.identity),
                Some(Sight::Public) | None => false,
            };
            if visible {
                return Next::Event {
                    seq: e.seq(),
                    text: e.text(FeedView::Participant),
                };
            }
        }
    }
}

/// Whether an event may change what `who` may see or end their right: it names them,
/// or it changes a whole room or an account (which name no address).
fn affects(e: &FeedEvent, who: &Participant) -> bool {
    use conclave_engine::EventKind as E;
    match revocation::reach(&e.event.kind) {
        Reach::Nowhere => false,
        Reach::Room | Reach::Everywhere => {
            matches!(
                e.event.kind,
                E::RoomDeleted { .. }
                    | E::RoomExpired { .. }
                    | E::AccountDisabled { .. }
                    | E::IdentityLinked { .. }
                    | E::IdentityUnlinked { .. }
            ) || e.concerns(&who.identity)
        }
    }
}

fn current_sight(engine: &Engine, who: &Participant) -> Option<Sight> {
    engine.read(|st| st.sight(&who.room, who.viewer(), engine.now()))
}

fn revoked_json() -> Value {
    json!({"type": "revoked", "code": "auth.token_revoked",
           "message": "this token's session has ended; the stream is closed"})
}

/// Resolves the caller from the header or, failing that, from `access_token`.
fn caller(app: &App, ctx: Ctx, q: &StreamQuery) -> ApiResult<Caller> {
    match (ctx.caller, &q.access_token) {
        (Caller::Anonymous, Some(token)) => {
            if axum::http::HeaderValue::from_str(token).is_err() {
                return Err(ApiError::invalid("access_token is not a valid token"));
            }
            let c = app.tokens.resolve(&app.auth, token)?;
            revocation::still_valid(app, c)
        }
        (c, _) => Ok(c),
    }
}

/// The first sequence to deliver: after `Last-Event-ID` when the client sent one, else
/// `from`, else only what is committed from now on.
fn start(app: &App, headers: &HeaderMap, q: &StreamQuery) -> ApiResult<u64> {
    if let Some(v) = headers.get("last-event-id") {
        let last: u64 = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| ApiError::invalid("Last-Event-ID must be a sequence number"))?;
        return Ok(last.saturating_add(1));
    }
    Ok(q.from.unwrap_or_else(|| app.engine.head() + 1).max(1))
}

/// Opens a follower for the room's stream (or every room's, for the admin).
fn follower(app: &App, caller: Caller, room: Option<RoomName>, from: u64) -> ApiResult<Follower> {
    let (who, key) = match caller {
        Caller::Admin => (None, [0u8; 32]),
        Caller::Participant { digest, who } => {
            let Some(room) = &room else {
                return Err(ApiError::admin_required());
            };
            if &who.room != room {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "auth.token_scope",
                    "this needs a token issued for this room (or the admin token)",
                ));
            }
            (Some(who), digest)
        }
        Caller::Anonymous => return Err(ApiError::unauthenticated()),
    };
    let sight = match &who {
        None => room
            .as_ref()
            .is_none_or(|r| app.engine.read(|st| st.rooms.contains_key(r)))
            .then_some(Sight::Moderator),
        Some(w) => current_sight(&app.engine, w),
    };
    if let (Some(room), None) = (&room, sight) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "room.not_found",
            format!("room {room} does not exist"),
        ));
    }
    let mut slot = app.streams.take(key)?;
    slot.keeper = who
        .as_ref()
        .map(|w| crate::lease::Keeper::start(&app.engine, w));
    // Every room's events are read so that a server-wide ban or a disabled account,
    // which are not room events, still ends a participant's stream.
    Ok(Follower {
        sub: app.engine.subscribe(from, FeedFilter::all()),
        engine: app.engine.clone(),
        room,
        who,
        sight,
        end: End::Open,
        _slot: slot,
    })
}

fn sse(f: Follower) -> Response {
    let stream = futures_util::stream::unfold(Some(f), |f| async move {
        let mut f = f?;
        let event = match f.next().await {
            Next::Event { seq, text } => SseEvent::default().id(seq.to_string()).data(&*text),
            Next::Revoked => {
                let last = SseEvent::default()
                    .event("revoked")
                    .data(revoked_json().to_string());
                return Some((Ok::<_, Infallible>(last), None));
            }
            Next::Stopped => return None,
        };
        Some((Ok(event), Some(f)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEPALIVE))
        .into_response()
}

/// Sends one JSON message; false when the socket is gone.
async fn send_json(socket: &mut WebSocket, v: &Value) -> bool {
    socket
        .send(Message::Text(v.to_string().into()))
        .await
        .is_ok()
}

async fn ws_session(mut socket: WebSocket, mut f: Follower, peer: Peer, hello: bool) {
    let (out_tx, mut out_rx) = mpsc::channel::<Value>(64);
    let (in_tx, in_rx) = mpsc::channel::<String>(ws::QUEUE);
    let (sig_tx, mut sig_rx) = mpsc::channel::<MediaSignal>(256);
    if hello && !send_json(&mut socket, &peer.media_config()).await {
        return;
    }
    // Ends (and disconnects the media) once `in_tx` is dropped with this function.
    tokio::spawn(ws::worker(peer, in_rx, out_tx, sig_tx));
    let mut bucket = ws::Bucket::new();
    let mut ping = tokio::time::interval(KEEPALIVE);
    ping.tick().await;
    loop {
        tokio::select! {
            next = f.next() => match next {
                Next::Event { text, .. } => {
                    if socket.send(Message::Text((&*text).into())).await.is_err() {
                        return;
                    }
                }
                Next::Revoked => {
                    let _ = socket.send(Message::Text(revoked_json().to_string().into())).await;
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: CLOSE_REVOKED,
                            reason: "auth.token_revoked".into(),
                        })))
                        .await;
                    return;
                }
                Next::Stopped => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            Some(reply) = out_rx.recv() => {
                if !send_json(&mut socket, &reply).await {
                    return;
                }
            }
            Some(signal) = sig_rx.recv() => {
                if !send_json(&mut socket, &ws::signal_json(signal)).await {
                    return;
                }
            }
            incoming = socket.recv() => {
                let refusal = match incoming {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                    Some(Ok(_)) if !bucket.take() => {
                        if bucket.strikes >= ws::MAX_STRIKES {
                            let _ = socket
                                .send(Message::Close(Some(CloseFrame {
                                    code: CLOSE_POLICY,
                                    reason: "rate.limited".into(),
                                })))
                                .await;
                            return;
                        }
                        let secs = u32::try_from(bucket.wait().as_secs() + 1).unwrap_or(u32::MAX);
                        Some(ApiError::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            "rate.limited",
                            "too many messages on this socket; slow down",
                        ).with_retry_after(secs))
                    }
                    Some(Ok(Message::Binary(_))) => Some(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "input.not_text",
                        "messages are JSON text frames",
                    )),
                    Some(Ok(Message::Text(t))) if t.len() > ws::MAX_INBOUND_BYTES => {
                        Some(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "input.too_large",
                            format!("message over {} bytes", ws::MAX_INBOUND_BYTES),
                        ))
                    }
                    Some(Ok(Message::Text(t))) => match in_tx.try_send(t.as_str().to_owned()) {
                        Ok(()) => None,
                        Err(_) => Some(ApiError::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            "ws.busy",
                            "too many messages waiting for an answer; wait for one",
                        )),
                    },
                };
                if let Some(e) = refusal {
                    if !send_json(&mut socket, &ws::error(None, None, &e)).await {
                        return;
                    }
                }
            }
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}

type Upgrade = Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>;

fn upgrade(ws: Upgrade, f: Follower, peer: Peer, hello: bool) -> ApiResult<Response> {
    let ws = ws.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "input.not_websocket",
            format!("this route speaks WebSocket: {e}"),
        )
    })?;
    Ok(ws
        .max_message_size(ws::MAX_FRAME_BYTES)
        .max_frame_size(ws::MAX_FRAME_BYTES)
        .on_upgrade(move |socket| ws_session(socket, f, peer, hello)))
}

/// `GET /rooms/{room}/events`: the room's committed events as Server-Sent Events.
pub async fn room_sse(
    app: App,
    ctx: Ctx,
    headers: HeaderMap,
    PathParams(room): PathParams<String>,
    QueryParams(q): QueryParams<StreamQuery>,
) -> ApiResult<Response> {
    let room = parse_room(&room)?;
    let from = start(&app, &headers, &q)?;
    let caller = caller(&app, ctx, &q)?;
    Ok(sse(follower(&app, caller, Some(room), from)?))
}

/// `GET /events`: every room's committed events (admin).
pub async fn all_sse(
    app: App,
    ctx: Ctx,
    headers: HeaderMap,
    QueryParams(q): QueryParams<StreamQuery>,
) -> ApiResult<Response> {
    let from = start(&app, &headers, &q)?;
    let caller = caller(&app, ctx, &q)?;
    Ok(sse(follower(&app, caller, None, from)?))
}

/// `GET /rooms/{room}/ws`: the room's committed events over a WebSocket.
pub async fn room_ws(
    app: App,
    ctx: Ctx,
    headers: HeaderMap,
    PathParams(room): PathParams<String>,
    QueryParams(q): QueryParams<StreamQuery>,
    ws: Upgrade,
) -> ApiResult<Response> {
    let room = parse_room(&room)?;
    let from = start(&app, &headers, &q)?;
    let (remote, credential) = (ctx.remote, ctx.credential.clone());
    let caller = caller(&app, ctx, &q)?;
    let peer = Peer {
        app: app.clone(),
        caller: caller.clone(),
        credential,
        remote,
        room: Some(room.clone()),
    };
    let hello = q.signalling.unwrap_or(false);
    upgrade(ws, follower(&app, caller, Some(room), from)?, peer, hello)
}

/// `GET /ws`: every room's committed events over a WebSocket (admin).
pub async fn all_ws(
    app: App,
    ctx: Ctx,
    headers: HeaderMap,
    QueryParams(q): QueryParams<StreamQuery>,
    ws: Upgrade,
) -> ApiResult<Response> {
    let from = start(&app, &headers, &q)?;
    let (remote, credential) = (ctx.remote, ctx.credential.clone());
    let caller = caller(&app, ctx, &q)?;
    let peer = Peer {
        app: app.clone(),
        caller: caller.clone(),
        credential,
        remote,
        room: None,
    };
    upgrade(ws, follower(&app, caller, None, from)?, peer, false)
}
