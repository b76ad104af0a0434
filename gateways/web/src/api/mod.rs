//! Command routes: each parses its input, decides who acts, runs one engine command and
//! answers with what it did.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use conclave_engine::event::EventKind;
use conclave_engine::service::{hash_password, Outcome, Request};
use conclave_engine::{
    AccountId, Actor, Address, BanScope, Command, Credentials, InvitationId, Origin, Principal,
    Role, RoomChange, RoomName, Scheme, Secret, SessionId,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{Caller, Claim, Participant};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Ctx, PathParams};
use crate::views;
use crate::App;

mod accounts;
mod chat;
mod invitations;
mod membership;
mod moderation;
mod recordings;
mod roles;
mod rooms;
mod server;
pub use accounts::*;
pub use chat::*;
pub use invitations::*;
pub use membership::*;
pub use moderation::*;
pub use recordings::*;
pub use roles::*;
pub use rooms::*;
pub use server::*;

/// Longest accepted plaintext password: argon2 cost grows with it.
const MAX_PASSWORD_LEN: usize = 1024;

// ---------- parsing ----------

pub fn parse_room(s: &str) -> ApiResult<RoomName> {
    RoomName::lookup(s).map_err(|e| ApiError::invalid(format!("room: {e}")))
}

pub fn parse_principal(field: &str, s: &str) -> ApiResult<Principal> {
    Principal::parse(s).map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

pub fn parse_address(field: &str, s: &str) -> ApiResult<Address> {
    Address::parse(s).map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

pub fn parse_account(s: &str) -> ApiResult<AccountId> {
    AccountId::parse(s).map_err(|e| ApiError::invalid(format!("account: {e}")))
}

fn parse_session(s: Option<String>) -> ApiResult<SessionId> {
    match s {
        Some(s) => SessionId::parse(&s).map_err(|e| ApiError::invalid(format!("session: {e}"))),
        None => {
            let t = crate::auth::random_token()
                .map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
            SessionId::parse(&format!("web-{}", &t[..16]))
                .map_err(|e| ApiError::internal(e.to_string()))
        }
    }
}

fn parse_invitation(s: &str) -> ApiResult<InvitationId> {
    InvitationId::parse(s).map_err(|e| ApiError::invalid(format!("invitation: {e}")))
}

/// Roles as written in the API.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    Visitor,
    Member,
    Moderator,
    Owner,
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Self {
        match r {
            RoleName::Visitor => Role::Visitor,
            RoleName::Member => Role::Member,
            RoleName::Moderator => Role::Moderator,
            RoleName::Owner => Role::Owner,
        }
    }
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Hashes a new password off the async threads (argon2 is deliberately slow).
async fn hash(field: &str, plaintext: String) -> ApiResult<String> {
    if plaintext.is_empty() || plaintext.len() > MAX_PASSWORD_LEN {
        return Err(ApiError::invalid(format!(
            "{field}: must be 1..={MAX_PASSWORD_LEN} bytes"
        )));
    }
    tokio::task::spawn_blocking(move || hash_password(&plaintext))
        .await
        .map_err(|e| ApiError::internal(format!("hashing task: {e}")))?
        .map_err(ApiError::internal)
}

fn secret(s: Option<String>) -> Option<Secret> {
    s.map(Secret::new)
}

// ---------- who acts ----------

/// Commands inside a room: the admin, or a participant token issued for this room.
fn room_actor(ctx: &Ctx, room: &RoomName) -> ApiResult<Actor> {
    match &ctx.caller {
        Caller::Admin => Ok(Actor::Admin),
        Caller::Participant { who, .. } if &who.room == room => {
            Ok(Actor::Identity(who.identity.clone()))
        }
        Caller::Participant { who, .. } => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "auth.token_scope",
            format!("this token was issued for room {}", who.room),
        )),
        Caller::Anonymous => Err(ApiError::unauthenticated()),
    }
}

/// Commands outside rooms: the admin, or the identity behind any participant token
/// (the engine then decides whether that person may do it).
fn any_actor(ctx: &Ctx) -> ApiResult<Actor> {
    match &ctx.caller {
        Caller::Admin => Ok(Actor::Admin),
        Caller::Participant { who, .. } => Ok(Actor::Identity(who.identity.clone())),
        Caller::Anonymous => Err(ApiError::unauthenticated()),
    }
}

/// Only the admin token.
pub fn require_admin(ctx: &Ctx) -> ApiResult<()> {
    match ctx.caller {
        Caller::Admin => Ok(()),
        Caller::Anonymous => Err(ApiError::unauthenticated()),
        Caller::Participant { .. } => Err(ApiError::admin_required()),
    }
}

/// Entering (create, join, knock, call, answer an invitation): the identity comes from
/// a participant token, from the admin acting for anyone (`as`), or from an anonymous
/// guest claiming a `web:` name nobody holds.
async fn entrant(
    app: &App,
    ctx: &Ctx,
    as_: Option<&str>,
    guest_key: Option<&str>,
) -> ApiResult<(Actor, Claim, Option<String>)> {
    let entering = entering(app, ctx, as_, guest_key).await?;
    if let Actor::Identity(a) = &entering.0 {
        crate::limits::entry_as(app, ctx, a)?;
    }
    Ok(entering)
}

/// Who enters (see [`entrant`]), before the identity's rate limit.
async fn entering(
    app: &App,
    ctx: &Ctx,
    as_: Option<&str>,
    guest_key: Option<&str>,
) -> ApiResult<(Actor, Claim, Option<String>)> {
    let claimed = as_.map(|a| parse_address("as", a)).transpose()?;
    match (&ctx.caller, claimed) {
        (Caller::Admin, Some(a)) => Ok((Actor::Identity(a), app.tokens.no_claim(), None)),
        (Caller::Admin, None) => Ok((Actor::Admin, app.tokens.no_claim(), None)),
        (Caller::Participant { who, .. }, claimed) => {
            if claimed.is_some_and(|a| a != who.identity) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "auth.identity_mismatch",
                    "`as` differs from the identity of the bearer token",
                ));
            }
            Ok((
                Actor::Identity(who.identity.clone()),
                app.tokens.no_claim(),
                None,
            ))
        }
        (Caller::Anonymous, None) => Err(ApiError::invalid(
            "as: required without a token (a guest name such as \"web:alice\")",
        )),
        (Caller::Anonymous, Some(a)) => {
            if a.scheme() != Scheme::Web {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "auth.scheme_forbidden",
                    "guests may only claim web: identities; sip:, xmpp: and mailto: need the admin token or their own gateway",
                ));
            }
            if app.engine.read(|s| s.identities.contains_key(&a)) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "auth.identity_protected",
                    format!("{a} is linked to an account and cannot be claimed as a guest"),
                ));
            }
            // In use by a live token: 409. Otherwise a name with standing stays its
            // first holder's (see guest.rs).
            let claim = app.tokens.claim(&a)?;
            if app.engine.read(|s| crate::guest::has_standing(s, &a))
                && !app.guests.verify(&a, guest_key)
            {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "auth.guest_key_required",
                    format!("{a} already has a role or a place in a room: present its guest_key (given with its first token) or pick another name"),
                ));
            }
            let key = app.guests.key_for(&a);
            Ok((Actor::Identity(a), claim, Some(key)))
        }
    }
}

// ---------- running commands ----------

pub async fn run(app: &App, ctx: &Ctx, actor: Actor, command: Command) -> ApiResult<Outcome> {
    let req = Request {
        command,
        origin: Origin {
            gateway: "web".into(),
            protocol: ctx.protocol.into(),
            remote_addr: ctx.remote.map(|r| r.to_string()),
        },
        correlation_id: Some(ctx.correlation_id.clone()),
        causation_id: None,
        // The admin acting as a person (`as`), or through an operator credential:
        // journal who really authorized it.
        authorized_by: match &ctx.credential {
            Some(c) => Some(c.authority()),
            None => (matches!(ctx.caller, Caller::Admin) && actor != Actor::Admin)
                .then(|| "admin".to_owned()),
        },
        actor,
        // Unscoped: the web gateway lets anonymous guests claim only web: names
        // (`entrant`), and any other identity comes with the admin's authority or a
        // token issued under it.
        scope: None,
    };
    let outcome = app
        .engine
        .execute(req)
        .await
        .map_err(|e| ApiError::from(e).with_correlation(&ctx.correlation_id))?;
    for a in &outcome.events {
        if let EventKind::RoomDeleted { room, .. } = &a.event.kind {
            app.tokens.forget_room(room);
        }
    }
    Ok(outcome)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

async fn simple(app: &App, ctx: &Ctx, actor: Actor, command: Command) -> ApiResult<Response> {
    let o = run(app, ctx, actor, command).await?;
    Ok(answer(StatusCode::OK, views::outcome(&o)))
}

/// Runs a command in `room` as the room's actor.
async fn in_room(
    app: &App,
    ctx: &Ctx,
    room: &str,
    f: impl FnOnce(RoomName) -> Command,
) -> ApiResult<Response> {
    let room = parse_room(room)?;
    let actor = room_actor(ctx, &room)?;
    simple(app, ctx, actor, f(room)).await
}

fn issue(
    app: &App,
    identity: &Address,
    room: &RoomName,
    session: Option<SessionId>,
    claim: Claim,
) -> ApiResult<String> {
    let now = Utc::now();
    app.tokens.issue(
        Participant {
            identity: identity.clone(),
            room: room.clone(),
            session,
            issued_at: now,
            expires_at: now + crate::token::TOKEN_TTL,
        },
        claim,
    )
}
