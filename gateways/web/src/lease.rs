//! Keeping web sessions alive: the web gateway renews a session's lease while its token
//! is in use (any request, an open event stream, an explicit heartbeat). Tokens survive a
//! restart (they are signed), so the web gateway's sessions do too; one whose client is
//! gone ends when its lease runs out.
//!
//! Renewals are cheap twice over: this module asks the engine at most every quarter of
//! the lease per token, and the engine journals a renewal only once half the lease is
//! spent.

use std::time::Duration;

use conclave_engine::command::Command;
use conclave_engine::service::{Engine, EngineError, Outcome, Request};
use conclave_engine::{Actor, Origin};

use crate::auth::Participant;

/// The shortest interval between two renewals asked for one token.
const MIN_RENEW_EVERY: Duration = Duration::from_secs(5);

/// How often a token's session is renewed, from the policy's lease; `None` without leases.
pub(crate) fn renew_every(engine: &Engine) -> Option<Duration> {
    let secs = engine.read(|st| st.policy.session_lease_secs);
    (secs > 0).then(|| (Duration::from_secs(u64::from(secs)) / 4).max(MIN_RENEW_EVERY))
}

fn origin() -> Origin {
    Origin {
        gateway: "web".into(),
        protocol: "http".into(),
        remote_addr: None,
    }
}

/// Renews the session `who` holds (nothing for a room creator's token without one).
pub(crate) async fn renew(
    engine: &Engine,
    who: &Participant,
) -> Option<Result<Outcome, EngineError>> {
    let session = who.session.clone()?;
    let req = Request::new(
        Command::RenewSession {
            room: who.room.clone(),
            session,
        },
        Actor::Identity(who.identity.clone()),
        origin(),
    );
    Some(engine.execute(req).await)
}

/// Renews in the background, without delaying the request that showed the token alive.
pub(crate) fn renew_soon(engine: &Engine, who: &Participant) {
    let (engine, who) = (engine.clone(), who.clone());
    tokio::spawn(async move {
        if let Some(Err(e)) = renew(&engine, &who).await {
            tracing::debug!(error = %e, room = %who.room, "session renewal refused");
        }
    });
}

/// Renews `who`'s session every [`renew_every`] until dropped: for open event streams.
pub(crate) struct Keeper(Option<tokio::task::JoinHandle<()>>);

impl Keeper {
    pub(crate) fn start(engine: &Engine, who: &Participant) -> Keeper {
        let Some(every) = renew_every(engine) else {
            return Keeper(None);
        };
        let (engine, who) = (engine.clone(), who.clone());
        Keeper(Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Some(Err(_)) = renew(&engine, &who).await {
                    return;
                }
            }
        })))
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

/// `POST /rooms/{room}/heartbeat`: keeps the token's session alive and says until when.
pub async fn heartbeat(
    app: crate::App,
    ctx: crate::extract::Ctx,
    crate::extract::PathParams(room): crate::extract::PathParams<String>,
) -> crate::error::ApiResult<axum::Json<serde_json::Value>> {
    use crate::auth::Caller;
    use crate::error::ApiError;
    let room = crate::api::parse_room(&room)?;
    let who = match &ctx.caller {
        Caller::Participant { who, .. } if who.room == room => who,
        Caller::Participant { .. } => {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "auth.token_scope",
                "this needs a token issued for this room",
            ))
        }
        Caller::Admin if !app.engine.read(|st| st.rooms.contains_key(&room)) => {
            return Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "room.not_found",
                format!("room {room} does not exist"),
            ))
        }
        Caller::Admin => {
            return Err(ApiError::invalid(
                "the admin token holds no session; heartbeats come with a participant token",
            ))
        }
        Caller::Anonymous => return Err(ApiError::unauthenticated()),
    };
    if let Some(Err(e)) = renew(&app.engine, who).await {
        return Err(ApiError::from(e).with_correlation(&ctx.correlation_id));
    }
    let lease_until = who.session.as_ref().and_then(|s| {
        app.engine.read(|st| {
            let r = st.rooms.get(&room)?;
            let holder = r.session_holder(s)?;
            r.members.get(holder)?.sessions.get(s)?.lease_until
        })
    });
    Ok(axum::Json(serde_json::json!({
        "room": room.as_str(),
        "session": who.session.as_ref().map(|s| s.as_str().to_owned()),
        "lease_until": lease_until.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    })))
}
