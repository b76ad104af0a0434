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
            protocol: "http".into(),
            remote_addr: ctx.remote.map(|r| r.to_string()),
        },
        correlation_id: Some(ctx.correlation_id.clone()),
        causation_id: None,
        // The admin token acting as a person (`as`): journal who really authorized it.
        authorized_by: (matches!(ctx.caller, Caller::Admin) && actor != Actor::Admin)
            .then(|| "admin".to_owned()),
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

// ---------- rooms ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRoom {
    room: String,
    #[serde(rename = "as")]
    as_: Option<String>,
    guest_key: Option<String>,
    parent: Option<String>,
    #[serde(default)]
    private: bool,
    owner: Option<String>,
    max_members: Option<u32>,
    welcome_text: Option<String>,
    password: Option<String>,
}

pub async fn create_room(app: App, ctx: Ctx, Body(b): Body<CreateRoom>) -> ApiResult<Response> {
    let room = parse_room(&b.room)?;
    let parent = b.parent.as_deref().map(parse_room).transpose()?;
    let owner = b
        .owner
        .as_deref()
        .map(|o| parse_principal("owner", o))
        .transpose()?;
    let access_password_hash = match b.password {
        Some(p) => Some(hash("password", p).await?),
        None => None,
    };
    let (actor, claim, guest_key) =
        entrant(&app, &ctx, b.as_.as_deref(), b.guest_key.as_deref()).await?;
    let cmd = Command::CreateRoom {
        room: room.clone(),
        parent,
        private: b.private,
        owner,
        max_members: b.max_members,
        welcome_text: b.welcome_text,
        access_password_hash,
    };
    let o = run(&app, &ctx, actor.clone(), cmd).await?;
    let owner = app.engine.read(|s| {
        s.rooms.get(&room).map(|r| {
            r.affiliations
                .iter()
                .filter(|(_, ro)| **ro == Role::Owner)
                .map(|(p, _)| p.to_string())
                .collect::<Vec<_>>()
        })
    });
    let mut extra = json!({ "room": room.as_str(), "owners": owner });
    if let Actor::Identity(a) = &actor {
        let token = issue(&app, a, &room, None, claim)?;
        extra = json!({
            "room": room.as_str(), "owners": owner, "identity": a.to_string(),
            "token": token, "token_type": "Bearer", "guest_key": guest_key,
        });
    }
    Ok(answer(
        StatusCode::CREATED,
        views::with(views::outcome(&o), extra),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigureRoom {
    private: Option<bool>,
    locked: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    max_members: Option<Option<u32>>,
    #[serde(default, deserialize_with = "double_option")]
    welcome_text: Option<Option<String>>,
    moderated_chat: Option<bool>,
    lobby: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    default_role: Option<Option<RoleName>>,
    owner_exit_destroys: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    password: Option<Option<String>>,
}

pub async fn configure_room(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    Body(b): Body<ConfigureRoom>,
) -> ApiResult<Response> {
    let room = parse_room(&room)?;
    let actor = room_actor(&ctx, &room)?;
    let mut changes = Vec::new();
    if let Some(v) = b.private {
        changes.push(RoomChange::Private(v));
    }
    if let Some(v) = b.locked {
        changes.push(RoomChange::Locked(v));
    }
    if let Some(v) = b.max_members {
        changes.push(RoomChange::MaxMembers(v));
    }
    if let Some(v) = b.welcome_text {
        changes.push(RoomChange::WelcomeText(v));
    }
    if let Some(v) = b.moderated_chat {
        changes.push(RoomChange::ModeratedChat(v));
    }
    if let Some(v) = b.lobby {
        changes.push(RoomChange::Lobby(v));
    }
    if let Some(v) = b.default_role {
        changes.push(RoomChange::DefaultRole(v.map(Role::from)));
    }
    if let Some(v) = b.owner_exit_destroys {
        changes.push(RoomChange::OwnerExitDestroys(v));
    }
    if let Some(v) = b.password {
        let h = match v {
            Some(p) => Some(hash("password", p).await?),
            None => None,
        };
        changes.push(RoomChange::AccessPassword(h));
    }
    if changes.is_empty() {
        return Err(ApiError::invalid("no change given"));
    }
    simple(&app, &ctx, actor, Command::ConfigureRoom { room, changes }).await
}

pub async fn destroy_room(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
) -> ApiResult<Response> {
    in_room(&app, &ctx, &room, |room| Command::DestroyRoom { room }).await
}

pub async fn lock_room(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
) -> ApiResult<Response> {
    in_room(&app, &ctx, &room, |room| Command::LockRoom { room }).await
}

pub async fn unlock_room(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
) -> ApiResult<Response> {
    in_room(&app, &ctx, &room, |room| Command::UnlockRoom { room }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reserve {
    owner_password: String,
}

pub async fn reserve_room(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    Body(b): Body<Reserve>,
) -> ApiResult<Response> {
    let room = parse_room(&room)?;
    let actor = room_actor(&ctx, &room)?;
    let owner_password_hash = hash("owner_password", b.owner_password).await?;
    simple(
        &app,
        &ctx,
        actor,
        Command::ReserveRoom {
            room,
            owner_password_hash,
        },
    )
    .await
}

pub async fn unreserve_room(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
) -> ApiResult<Response> {
    in_room(&app, &ctx, &room, |room| Command::UnreserveRoom { room }).await
}

// ---------- membership ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    #[serde(rename = "as")]
    as_: Option<String>,
    guest_key: Option<String>,
    session: Option<String>,
    password: Option<String>,
    owner_password: Option<String>,
    server_password: Option<String>,
    invitation: Option<String>,
}

impl Join {
    fn credentials(self) -> ApiResult<Credentials> {
        Ok(Credentials {
            server_password: secret(self.server_password),
            password: secret(self.password),
            owner_password: secret(self.owner_password),
            invitation: self
                .invitation
                .as_deref()
                .map(parse_invitation)
                .transpose()?,
        })
    }
}

/// Answer of an entry that issued a token.
fn entry_answer(
    app: &App,
    o: &Outcome,
    identity: &Address,
    room: &RoomName,
    session: &SessionId,
    token: String,
    guest_key: Option<String>,
) -> Response {
    let (role, welcome, server_welcome) = app.engine.read(|s| {
        let r = s.rooms.get(room);
        let p = s.principal_of(identity);
        (
            r.and_then(|r| r.affiliations.get(&p).copied().or(r.config.default_role)),
            r.and_then(|r| r.config.welcome_text.clone()),
            s.policy.welcome_text.clone(),
        )
    });
    answer(
        StatusCode::CREATED,
        views::with(
            views::outcome(o),
            json!({
                "token": token,
                "token_type": "Bearer",
                "identity": identity.to_string(),
                "room": room.as_str(),
                "session": session.as_str(),
                "role": role.map(views::role),
                "welcome_text": welcome,
                "server_welcome_text": server_welcome,
                "guest_key": guest_key,
            }),
        ),
    )
}

pub async fn join(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    Body(b): Body<Join>,
) -> ApiResult<Response> {
    let room = parse_room(&room)?;
    let session = parse_session(b.session.clone())?;
    let (actor, claim, guest_key) =
        entrant(&app, &ctx, b.as_.as_deref(), b.guest_key.as_deref()).await?;
    let Actor::Identity(identity) = actor.clone() else {
        return Err(ApiError::invalid(
            "as: the admin joins on behalf of an identity given in `as`",
        ));
    };
    let cmd = Command::Join {
        room: room.clone(),
        session: session.clone(),
        credentials: b.credentials()?,
    };
    let o = run(&app, &ctx, actor, cmd).await?;
    let token = issue(&app, &identity, &room, Some(session.clone()), claim)?;
    Ok(entry_answer(
        &app, &o, &identity, &room, &session, token, guest_key,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knock {
    #[serde(rename = "as")]
    as_: Option<String>,
    guest_key: Option<String>,
    session: Option<String>,
}

pub async fn knock(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    Body(b): Body<Knock>,
) -> ApiResult<Response> {
    let room = parse_room(&room)?;
    let session = parse_session(b.session)?;
    let (actor, claim, guest_key) =
        entrant(&app, &ctx, b.as_.as_deref(), b.guest_key.as_deref()).await?;
    let Actor::Identity(identity) = actor.clone() else {
        return Err(ApiError::invalid(
            "as: the admin knocks on behalf of an identity given in `as`",
        ));
    };
    let o = run(
        &app,
        &ctx,
        actor,
        Command::Knock {
            room: room.clone(),
            session: session.clone(),
        },
    )
    .await?;
    let token = issue(&app, &identity, &room, Some(session.clone()), claim)?;
    Ok(entry_answer(
        &app, &o, &identity, &room, &session, token, guest_key,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Leave {
    session: Option<String>,
}

pub async fn leave(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    Body(b): Body<Leave>,
) -> ApiResult<Response> {
    let room = parse_room(&room)?;
    let actor = room_actor(&ctx, &room)?;
    let session = match (b.session, &ctx.caller) {
        (Some(s), _) => {
            SessionId::parse(&s).map_err(|e| ApiError::invalid(format!("session: {e}")))?
        }
        (None, Caller::Participant { who, .. }) => who
            .session
            .clone()
            .ok_or_else(|| ApiError::invalid("session: this token has no session; name one"))?,
        (None, _) => return Err(ApiError::invalid("session: required")),
    };
    let o = run(
        &app,
        &ctx,
        actor,
        Command::Leave {
            room,
            session: session.clone(),
        },
    )
    .await?;
    if let Caller::Participant { digest, who } = &ctx.caller {
        if who.session.as_ref() == Some(&session) {
            app.tokens.revoke(digest);
        }
    }
    Ok(answer(StatusCode::OK, views::outcome(&o)))
}

// ---------- roles ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    subject: String,
    role: RoleName,
}

pub async fn grant_role(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    Body(b): Body<Grant>,
) -> ApiResult<Response> {
    let subject = parse_principal("subject", &b.subject)?;
    in_room(&app, &ctx, &room, |room| Command::GrantRole {
        room,
        subject,
        role: b.role.into(),
    })
    .await
}

pub async fn revoke_role(
    app: App,
    ctx: Ctx,
    PathParams((room, subject)): PathParams<(String, String)>,
) -> ApiResult<Response> {
    let subject = parse_principal("subject", &subject)?;
    in_room(&app, &ctx, &room, |room| Command::RevokeRole {
        room,
        subject,
    })
    .await
}

// ---------- invitations ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    invitee: String,
    ttl_secs: Option<u32>,
    single_use: Option<bool>,
}

pub async fn invite(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    Body(b): Body<Invite>,
) -> ApiResult<Response> {
    let room = parse_room(&room)?;
    let actor = room_actor(&ctx, &room)?;
    let invitee = parse_address("invitee", &b.invitee)?;
    let cmd = Command::Invite {
        room,
        invitee,
        ttl_secs: b.ttl_secs,
        single_use: b.single_use.unwrap_or(true),
    };
    let o = run(&app, &ctx, actor, cmd).await?;
    let issued = o.events.iter().find_map(|a| match &a.event.kind {
        EventKind::InvitationIssued {
            invitation,
            invitee,
            expires_at,
            single_use,
            ..
        } => Some(json!({
            "invitation": invitation.as_str(),
            "invitee": invitee.to_string(),
            "expires_at": expires_at.map(views::time),
            "single_use": single_use,
        })),
        _ => None,
    });
    Ok(answer(
        StatusCode::CREATED,
        views::with(views::outcome(&o), issued.unwrap_or(Value::Null)),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    #[serde(rename = "as")]
    as_: Option<String>,
    guest_key: Option<String>,
}

async fn answer_invitation(
    app: App,
    ctx: Ctx,
    room: String,
    invitation: String,
    b: Answer,
    accept: bool,
) -> ApiResult<Response> {
    let room = parse_room(&room)?;
    let invitation = parse_invitation(&invitation)?;
    let (actor, _claim, _) = entrant(&app, &ctx, b.as_.as_deref(), b.guest_key.as_deref()).await?;
    let cmd = if accept {
        Command::AcceptInvitation { room, invitation }
    } else {
        Command::DenyInvitation { room, invitation }
    };
    simple(&app, &ctx, actor, cmd).await
}

pub async fn accept_invitation(
    app: App,
    ctx: Ctx,
    PathParams((room, inv)): PathParams<(String, String)>,
    Body(b): Body<Answer>,
) -> ApiResult<Response> {
    answer_invitation(app, ctx, room, inv, b, true).await
}

pub async fn deny_invitation(
    app: App,
    ctx: Ctx,
    PathParams((room, inv)): PathParams<(String, String)>,
    Body(b): Body<Answer>,
) -> ApiResult<Response> {
    answer_invitation(app, ctx, room, inv, b, false).await
}

pub async fn revoke_invitation(
    app: App,
    ctx: Ctx,
    PathParams((room, inv)): PathParams<(String, String)>,
) -> ApiResult<Response> {
    let invitation = parse_invitation(&inv)?;
    in_room(&app, &ctx, &room, |room| Command::RevokeInvitation {
        room,
        invitation,
    })
    .await
}

// ---------- moderation ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    subject: String,
}

macro_rules! subject_route {
    ($name:ident, $variant:ident) => {
        pub async fn $name(
            app: App,
            ctx: Ctx,
            PathParams(room): PathParams<String>,
            Body(b): Body<Subject>,
        ) -> ApiResult<Response> {
            let subject = parse_principal("subject", &b.subject)?;
            in_room(&app, &ctx, &room, |room| Command::$variant {
                room,
                subject,
            })
            .await
        }
    };
}

subject_route!(mute, MuteAudio);
subject_route!(unmute, UnmuteAudio);
subject_route!(pause_video, PauseVideo);
subject_route!(resume_video, ResumeVideo);
subject_route!(admit, Admit);
subject_route!(reject_knock, RejectKnock);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kick {
    subject: String,
    reason: Option<String>,
}

pub async fn kick(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    Body(b): Body<Kick>,
) -> ApiResult<Response> {
    let subject = parse_principal("subject", &b.subject)?;
    in_room(&app, &ctx, &room, |room| Command::Kick {
        room,
        subject,
        reason: b.reason,
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ban {
    subject: String,
    reason: Option<String>,
    until: Option<DateTime<Utc>>,
    duration_secs: Option<u32>,
}

impl Ban {
    fn parts(
        self,
        now: DateTime<Utc>,
    ) -> ApiResult<(Principal, Option<String>, Option<DateTime<Utc>>)> {
        let subject = parse_principal("subject", &self.subject)?;
        let until = match (self.until, self.duration_secs) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "give `until` or `duration_secs`, not both",
                ))
            }
            (Some(u), None) => Some(u),
            (None, Some(d)) => Some(now + Duration::seconds(i64::from(d))),
            (None, None) => None,
        };
        Ok((subject, self.reason, until))
    }
}

async fn ban_in(
    app: &App,
    ctx: &Ctx,
    actor: Actor,
    scope: BanScope,
    b: Ban,
) -> ApiResult<Response> {
    let (subject, reason, until) = b.parts(app.engine.now())?;
    let o = run(
        app,
        ctx,
        actor,
        Command::Ban {
            scope,
            subject,
            reason,
            until,
        },
    )
    .await?;
    Ok(answer(StatusCode::CREATED, views::outcome(&o)))
}

pub async fn ban_room(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    Body(b): Body<Ban>,
) -> ApiResult<Response> {
    let room = parse_room(&room)?;
    let actor = room_actor(&ctx, &room)?;
    ban_in(&app, &ctx, actor, BanScope::Room(room), b).await
}

pub async fn unban_room(
    app: App,
    ctx: Ctx,
    PathParams((room, subject)): PathParams<(String, String)>,
) -> ApiResult<Response> {
    let subject = parse_principal("subject", &subject)?;
    in_room(&app, &ctx, &room, |room| Command::Unban {
        scope: BanScope::Room(room),
        subject,
    })
    .await
}

pub async fn ban_server(app: App, ctx: Ctx, Body(b): Body<Ban>) -> ApiResult<Response> {
    let actor = any_actor(&ctx)?;
    ban_in(&app, &ctx, actor, BanScope::Server, b).await
}

pub async fn unban_server(
    app: App,
    ctx: Ctx,
    PathParams(subject): PathParams<String>,
) -> ApiResult<Response> {
    let subject = parse_principal("subject", &subject)?;
    let actor = any_actor(&ctx)?;
    simple(
        &app,
        &ctx,
        actor,
        Command::Unban {
            scope: BanScope::Server,
            subject,
        },
    )
    .await
}

pub async fn ban_account(
    app: App,
    ctx: Ctx,
    PathParams(account): PathParams<String>,
    Body(b): Body<Ban>,
) -> ApiResult<Response> {
    let account = parse_account(&account)?;
    let actor = any_actor(&ctx)?;
    ban_in(&app, &ctx, actor, BanScope::Account(account), b).await
}

pub async fn unban_account(
    app: App,
    ctx: Ctx,
    PathParams((account, subject)): PathParams<(String, String)>,
) -> ApiResult<Response> {
    let account = parse_account(&account)?;
    let subject = parse_principal("subject", &subject)?;
    let actor = any_actor(&ctx)?;
    simple(
        &app,
        &ctx,
        actor,
        Command::Unban {
            scope: BanScope::Account(account),
            subject,
        },
    )
    .await
}

pub async fn raise_hand(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
) -> ApiResult<Response> {
    in_room(&app, &ctx, &room, |room| Command::RaiseHand { room }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lower {
    subject: Option<String>,
}

pub async fn lower_hand(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    Body(b): Body<Lower>,
) -> ApiResult<Response> {
    let subject = b
        .subject
        .as_deref()
        .map(|s| parse_principal("subject", s))
        .transpose()?;
    in_room(&app, &ctx, &room, |room| Command::LowerHand {
        room,
        subject,
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enabled {
    enabled: bool,
}

pub async fn moderated_chat(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    Body(b): Body<Enabled>,
) -> ApiResult<Response> {
    in_room(&app, &ctx, &room, |room| Command::SetModeratedChat {
        room,
        enabled: b.enabled,
    })
    .await
}

// ---------- chat ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Post {
    body: String,
}

pub async fn post_message(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    Body(b): Body<Post>,
) -> ApiResult<Response> {
    let room = parse_room(&room)?;
    let actor = room_actor(&ctx, &room)?;
    let o = run(
        &app,
        &ctx,
        actor,
        Command::PostMessage { room, body: b.body },
    )
    .await?;
    let message = o.events.iter().find_map(|a| match &a.event.kind {
        EventKind::MessagePosted {
            message,
            html_stripped,
            ..
        } => Some(json!({
            "message": message.as_str(), "html_stripped": html_stripped,
        })),
        _ => None,
    });
    Ok(answer(
        StatusCode::CREATED,
        views::with(views::outcome(&o), message.unwrap_or(Value::Null)),
    ))
}

// ---------- accounts ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    account: String,
    display_name: Option<String>,
}

pub async fn create_account(
    app: App,
    ctx: Ctx,
    Body(b): Body<CreateAccount>,
) -> ApiResult<Response> {
    let account = parse_account(&b.account)?;
    let actor = any_actor(&ctx)?;
    let o = run(
        &app,
        &ctx,
        actor,
        Command::CreateAccount {
            account,
            display_name: b.display_name,
        },
    )
    .await?;
    Ok(answer(StatusCode::CREATED, views::outcome(&o)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisplayName {
    display_name: Option<String>,
}

pub async fn set_display_name(
    app: App,
    ctx: Ctx,
    PathParams(account): PathParams<String>,
    Body(b): Body<DisplayName>,
) -> ApiResult<Response> {
    let account = parse_account(&account)?;
    let actor = any_actor(&ctx)?;
    simple(
        &app,
        &ctx,
        actor,
        Command::SetDisplayName {
            account,
            display_name: b.display_name,
        },
    )
    .await
}

async fn on_account(
    app: App,
    ctx: Ctx,
    account: String,
    f: impl FnOnce(AccountId) -> Command,
) -> ApiResult<Response> {
    let account = parse_account(&account)?;
    let actor = any_actor(&ctx)?;
    simple(&app, &ctx, actor, f(account)).await
}

pub async fn enable_account(
    app: App,
    ctx: Ctx,
    PathParams(account): PathParams<String>,
) -> ApiResult<Response> {
    on_account(app, ctx, account, |account| Command::EnableAccount {
        account,
    })
    .await
}

pub async fn disable_account(
    app: App,
    ctx: Ctx,
    PathParams(account): PathParams<String>,
) -> ApiResult<Response> {
    on_account(app, ctx, account, |account| Command::DisableAccount {
        account,
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    address: String,
}

pub async fn link_identity(
    app: App,
    ctx: Ctx,
    PathParams(account): PathParams<String>,
    Body(b): Body<Identity>,
) -> ApiResult<Response> {
    let address = parse_address("address", &b.address)?;
    on_account(app, ctx, account, |account| Command::LinkIdentity {
        account,
        address,
    })
    .await
}

pub async fn unlink_identity(
    app: App,
    ctx: Ctx,
    PathParams((account, address)): PathParams<(String, String)>,
) -> ApiResult<Response> {
    let address = parse_address("address", &address)?;
    on_account(app, ctx, account, |account| Command::UnlinkIdentity {
        account,
        address,
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    contact: String,
}

pub async fn allow_contact(
    app: App,
    ctx: Ctx,
    PathParams(account): PathParams<String>,
    Body(b): Body<Contact>,
) -> ApiResult<Response> {
    let contact = parse_principal("contact", &b.contact)?;
    on_account(app, ctx, account, |account| Command::AllowContact {
        account,
        contact,
    })
    .await
}

pub async fn disallow_contact(
    app: App,
    ctx: Ctx,
    PathParams((account, contact)): PathParams<(String, String)>,
) -> ApiResult<Response> {
    let contact = parse_principal("contact", &contact)?;
    on_account(app, ctx, account, |account| Command::DisallowContact {
        account,
        contact,
    })
    .await
}

pub async fn open_contacts(
    app: App,
    ctx: Ctx,
    PathParams(account): PathParams<String>,
) -> ApiResult<Response> {
    on_account(app, ctx, account, |account| Command::OpenContacts {
        account,
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moderator {
    moderator: String,
}

pub async fn add_moderator(
    app: App,
    ctx: Ctx,
    PathParams(account): PathParams<String>,
    Body(b): Body<Moderator>,
) -> ApiResult<Response> {
    let moderator = parse_principal("moderator", &b.moderator)?;
    on_account(app, ctx, account, |account| Command::AddModerator {
        account,
        moderator,
    })
    .await
}

pub async fn remove_moderator(
    app: App,
    ctx: Ctx,
    PathParams((account, moderator)): PathParams<(String, String)>,
) -> ApiResult<Response> {
    let moderator = parse_principal("moderator", &moderator)?;
    on_account(app, ctx, account, |account| Command::RemoveModerator {
        account,
        moderator,
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rendezvous {
    room: Option<String>,
}

pub async fn set_rendezvous(
    app: App,
    ctx: Ctx,
    PathParams(account): PathParams<String>,
    Body(b): Body<Rendezvous>,
) -> ApiResult<Response> {
    let room = b.room.as_deref().map(parse_room).transpose()?;
    on_account(app, ctx, account, |account| Command::SetRendezvous {
        account,
        room,
    })
    .await
}

pub async fn call_account(
    app: App,
    ctx: Ctx,
    PathParams(account): PathParams<String>,
    Body(b): Body<Join>,
) -> ApiResult<Response> {
    let account = parse_account(&account)?;
    let session = parse_session(b.session.clone())?;
    let (actor, claim, guest_key) =
        entrant(&app, &ctx, b.as_.as_deref(), b.guest_key.as_deref()).await?;
    let Actor::Identity(identity) = actor.clone() else {
        return Err(ApiError::invalid(
            "as: the admin calls on behalf of an identity given in `as`",
        ));
    };
    let cmd = Command::CallAccount {
        account: account.clone(),
        session: session.clone(),
        credentials: b.credentials()?,
    };
    let o = run(&app, &ctx, actor, cmd).await?;
    let room = o
        .events
        .iter()
        .find_map(|a| match &a.event.kind {
            EventKind::Joined { room, .. } => Some(room.clone()),
            _ => None,
        })
        .or_else(|| {
            app.engine
                .read(|s| s.accounts.get(&account).and_then(|a| a.rendezvous.clone()))
        })
        .ok_or_else(|| ApiError::internal("the call joined no room"))?;
    let token = issue(&app, &identity, &room, Some(session.clone()), claim)?;
    Ok(entry_answer(
        &app, &o, &identity, &room, &session, token, guest_key,
    ))
}

// ---------- server policy ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerPassword {
    password: Option<String>,
}

pub async fn set_server_password(
    app: App,
    ctx: Ctx,
    Body(b): Body<ServerPassword>,
) -> ApiResult<Response> {
    let actor = any_actor(&ctx)?;
    let hash = match b.password {
        Some(p) => Some(hash("password", p).await?),
        None => None,
    };
    simple(&app, &ctx, actor, Command::SetServerPassword { hash }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogDays {
    days: i32,
}

pub async fn set_log_days(app: App, ctx: Ctx, Body(b): Body<LogDays>) -> ApiResult<Response> {
    let actor = any_actor(&ctx)?;
    simple(&app, &ctx, actor, Command::SetLogDays { days: b.days }).await
}

pub async fn set_obfuscate_ips(app: App, ctx: Ctx, Body(b): Body<Enabled>) -> ApiResult<Response> {
    let actor = any_actor(&ctx)?;
    simple(
        &app,
        &ctx,
        actor,
        Command::SetObfuscateIps { enabled: b.enabled },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WelcomeText {
    text: String,
}

pub async fn set_welcome_text(
    app: App,
    ctx: Ctx,
    Body(b): Body<WelcomeText>,
) -> ApiResult<Response> {
    let actor = any_actor(&ctx)?;
    simple(&app, &ctx, actor, Command::SetWelcomeText { text: b.text }).await
}
