//! Query routes: read the committed state (durable facts only) or the audit view.

use axum::Json;
use chrono::{DateTime, Utc};
use conclave_engine::access::{Sight, Viewer};
use conclave_engine::service::audit::AuditQuery;
use conclave_engine::state::Room;
use conclave_engine::{RoomName, State};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{parse_account, parse_room, require_admin};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Ctx, PathParams, QueryParams};
use crate::views;
use crate::App;

/// What the caller may see of a room, as the engine answers it.
pub(crate) fn sight(st: &State, ctx: &Ctx, name: &RoomName, now: DateTime<Utc>) -> Option<Sight> {
    let viewer = match &ctx.caller {
        Caller::Admin => Viewer::Operator,
        Caller::Participant { who, .. } => who.viewer(),
        Caller::Anonymous => Viewer::Stranger,
    };
    st.sight(name, viewer, now)
}

/// Runs `f` on a room the caller may see at least at `need`.
fn with_room<R>(
    app: &App,
    ctx: &Ctx,
    room: &str,
    need: Sight,
    f: impl FnOnce(&State, &RoomName, &Room, Sight) -> R,
) -> ApiResult<R> {
    let name = parse_room(room)?;
    let now = app.engine.now();
    app.engine.read(|st| {
        // A private room does not exist for strangers.
        let (Some(r), Some(s)) = (st.rooms.get(&name), sight(st, ctx, &name, now)) else {
            return Err(not_found(&name));
        };
        if s < need {
            return Err(match (&ctx.caller, need) {
                (Caller::Anonymous, _) => ApiError::unauthenticated(),
                _ if s == Sight::Waiting => ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "lobby.waiting",
                    "you are waiting in the lobby; a moderator has to admit you first",
                ),
                (_, Sight::Moderator) => ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "perm.not_moderator",
                    "only moderators of this room (or the admin) may see this",
                ),
                _ => ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "auth.token_scope",
                    "this needs a token issued for this room (or the admin token)",
                ),
            });
        }
        Ok(f(st, &name, r, s))
    })
}

fn not_found(name: &RoomName) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "room.not_found",
        format!("room {name} does not exist"),
    )
}

pub async fn list_rooms(app: App, ctx: Ctx) -> ApiResult<Json<Value>> {
    let admin = matches!(ctx.caller, Caller::Admin);
    let rooms = app.engine.read(|st| {
        st.list_rooms()
            .filter(|(_, r)| admin || !r.config.private)
            .map(|(n, r)| views::room_summary(st, n, r))
            .collect::<Vec<_>>()
    });
    Ok(Json(json!({ "rooms": rooms })))
}

pub async fn get_room(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
) -> ApiResult<Json<Value>> {
    with_room(&app, &ctx, &room, Sight::Public, |st, n, r, s| {
        Json(if s >= Sight::Participant {
            views::room_detail(st, n, r)
        } else {
            views::room_summary(st, n, r)
        })
    })
}

pub async fn list_members(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
) -> ApiResult<Json<Value>> {
    with_room(&app, &ctx, &room, Sight::Participant, |_, n, r, _| {
        Json(json!({ "room": n.as_str(), "members": views::members(r) }))
    })
}

pub async fn list_roles(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
) -> ApiResult<Json<Value>> {
    with_room(&app, &ctx, &room, Sight::Participant, |_, n, r, _| {
        Json(json!({ "room": n.as_str(), "affiliations": views::affiliations(r) }))
    })
}

pub async fn list_invitations(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
) -> ApiResult<Json<Value>> {
    with_room(&app, &ctx, &room, Sight::Moderator, |_, n, r, _| {
        Json(json!({ "room": n.as_str(), "invitations": views::invitations(r) }))
    })
}

pub async fn list_room_bans(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
) -> ApiResult<Json<Value>> {
    with_room(&app, &ctx, &room, Sight::Moderator, |_, n, r, _| {
        Json(json!({ "room": n.as_str(), "bans": views::bans(r.bans.iter()) }))
    })
}

pub async fn list_room_address_bans(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let admin = matches!(ctx.caller, Caller::Admin);
    with_room(&app, &ctx, &room, Sight::Moderator, |_, n, r, _| {
        Json(json!({
            "room": n.as_str(),
            "address_bans": views::address_bans(r.address_bans.iter(), admin),
        }))
    })
}

pub async fn list_server_address_bans(app: App, ctx: Ctx) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    Ok(Json(app.engine.read(
        |st| json!({ "address_bans": views::address_bans(st.server_address_bans.iter(), true) }),
    )))
}

pub async fn list_lobby(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
) -> ApiResult<Json<Value>> {
    with_room(&app, &ctx, &room, Sight::Moderator, |_, n, r, _| {
        Json(json!({ "room": n.as_str(), "lobby": views::lobby(r) }))
    })
}

pub async fn list_server_bans(app: App, ctx: Ctx) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    Ok(Json(app.engine.read(
        |st| json!({ "bans": views::bans(st.server_bans.iter()) }),
    )))
}

pub async fn list_autobans(app: App, ctx: Ctx) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    Ok(Json(app.engine.read(
        |st| json!({ "autobans": views::autobans(&st.autobans) }),
    )))
}

pub async fn list_accounts(app: App, ctx: Ctx) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    Ok(Json(app.engine.read(|st| {
        json!({ "accounts": st.accounts.iter().map(|(id, a)| views::account(id.as_str(), a, st)).collect::<Vec<_>>() })
    })))
}

fn with_account(
    app: &App,
    ctx: &Ctx,
    account: &str,
    f: impl FnOnce(&str, &conclave_engine::state::Account, &State) -> Value,
) -> ApiResult<Json<Value>> {
    require_admin(ctx)?;
    let id = parse_account(account)?;
    app.engine.read(|st| match st.accounts.get(&id) {
        Some(a) => Ok(Json(f(id.as_str(), a, st))),
        None => Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "account.not_found",
            format!("account {id} does not exist"),
        )),
    })
}

pub async fn get_account(
    app: App,
    ctx: Ctx,
    PathParams(account): PathParams<String>,
) -> ApiResult<Json<Value>> {
    with_account(&app, &ctx, &account, views::account)
}

pub async fn list_contacts(
    app: App,
    ctx: Ctx,
    PathParams(account): PathParams<String>,
) -> ApiResult<Json<Value>> {
    with_account(&app, &ctx, &account, |id, a, _| {
        json!({
            "account": id,
            "contacts_restricted": a.contacts_restricted,
            "allowed_contacts": a.allowed_contacts.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
    })
}

pub async fn list_moderators(
    app: App,
    ctx: Ctx,
    PathParams(account): PathParams<String>,
) -> ApiResult<Json<Value>> {
    with_account(
        &app,
        &ctx,
        &account,
        |id, a, _| json!({ "account": id, "moderators": a.moderators.iter().map(ToString::to_string).collect::<Vec<_>>() }),
    )
}

pub async fn list_account_bans(
    app: App,
    ctx: Ctx,
    PathParams(account): PathParams<String>,
) -> ApiResult<Json<Value>> {
    with_account(
        &app,
        &ctx,
        &account,
        |id, a, _| json!({ "account": id, "bans": views::bans(a.bans.iter()) }),
    )
}

pub async fn get_policy(app: App, ctx: Ctx) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    Ok(Json(app.engine.read(|st| views::policy(&st.policy))))
}

/// The media plane's statistics per room and participant (as Jitsi's colibri stats).
pub async fn debug_media(app: App, ctx: Ctx) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    Ok(Json(app.media.debug()))
}

pub async fn me(ctx: Ctx) -> ApiResult<Json<Value>> {
    match &ctx.caller {
        Caller::Admin => Ok(Json(json!({ "admin": true }))),
        Caller::Participant { who, .. } => Ok(Json(json!({
            "admin": false,
            "identity": who.identity.to_string(),
            "room": who.room.as_str(),
            "session": who.session.as_ref().map(|s| s.as_str()),
            "issued_at": views::time(who.issued_at),
        }))),
        Caller::Anonymous => Err(ApiError::unauthenticated()),
    }
}

/// Audit query parameters (all optional).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    room: Option<String>,
    actor: Option<String>,
    subject: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// Largest page of audit entries.
const MAX_AUDIT_LIMIT: usize = 10_000;

pub async fn audit(
    app: App,
    ctx: Ctx,
    QueryParams(q): QueryParams<Audit>,
) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    let limit = q.limit.unwrap_or(1000);
    if limit == 0 || limit > MAX_AUDIT_LIMIT {
        return Err(ApiError::invalid(format!(
            "limit: must be 1..={MAX_AUDIT_LIMIT}"
        )));
    }
    for (field, v) in [
        ("room", &q.room),
        ("actor", &q.actor),
        ("subject", &q.subject),
        ("type", &q.event_type),
    ] {
        if v.as_ref().is_some_and(|s| s.is_empty() || s.len() > 512) {
            return Err(ApiError::invalid(format!("{field}: must be 1..=512 bytes")));
        }
    }
    let query = AuditQuery {
        room: q.room,
        actor: q.actor,
        subject: q.subject,
        event_type: q.event_type,
        from: q.from,
        to: q.to,
        after_seq: q.after.unwrap_or(0),
        limit,
    };
    let engine = app.engine.clone();
    let entries = tokio::task::spawn_blocking(move || engine.audit(&query))
        .await
        .map_err(|e| ApiError::internal(format!("audit task: {e}")))?
        .map_err(|e| ApiError::from(e).with_correlation(&ctx.correlation_id))?;
    let next_after = entries.last().map(|e| e.seq);
    let complete = entries.len() < limit;
    Ok(Json(json!({
        "entries": entries,
        "next_after": next_after,
        "complete": complete,
    })))
}

/// Most chat messages one page of `GET /rooms/{room}/messages` returns.
const MAX_MESSAGES_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Messages {
    after: Option<u64>,
    limit: Option<usize>,
}

/// `GET /rooms/{room}/messages`: the room's chat, oldest first, paged by sequence.
pub async fn list_messages(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    QueryParams(q): QueryParams<Messages>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_MESSAGES_LIMIT {
        return Err(ApiError::invalid(format!(
            "limit: must be 1..={MAX_MESSAGES_LIMIT}"
        )));
    }
    let name = with_room(&app, &ctx, &room, Sight::Participant, |_, n, _, _| {
        n.clone()
    })?;
    let query = AuditQuery {
        room: Some(name.as_str().to_owned()),
        event_type: Some("chat_message".into()),
        after_seq: q.after.unwrap_or(0),
        limit,
        ..AuditQuery::default()
    };
    let engine = app.engine.clone();
    let entries = tokio::task::spawn_blocking(move || engine.audit(&query))
        .await
        .map_err(|e| ApiError::internal(format!("messages task: {e}")))?
        .map_err(|e| ApiError::from(e).with_correlation(&ctx.correlation_id))?;
    let next_after = entries.last().map(|e| e.seq);
    let messages: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let d = &e.event["data"];
            json!({
                "seq": e.seq,
                "at": e.at,
                "message": d["message"],
                "from": d["from"],
                "address": d["address"],
                "body": d["body"],
                "html_stripped": d["html_stripped"],
            })
        })
        .collect();
    Ok(Json(json!({
        "room": name.as_str(),
        "messages": messages,
        "next_after": next_after,
    })))
}
