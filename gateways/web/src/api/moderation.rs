//! Moderation: mute, video, kick, bans, hands, moderated chat.

use super::*;
use conclave_engine::event::AutobanKey;
use conclave_engine::model::AddressTarget;

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

/// When a ban ends: `until`, or `duration_secs` from `now`, or never; not both.
fn ban_end(
    until: Option<DateTime<Utc>>,
    duration_secs: Option<u32>,
    now: DateTime<Utc>,
) -> ApiResult<Option<DateTime<Utc>>> {
    match (until, duration_secs) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "give `until` or `duration_secs`, not both",
        )),
        (Some(u), None) => Ok(Some(u)),
        (None, Some(d)) => Ok(Some(now + Duration::seconds(i64::from(d)))),
        (None, None) => Ok(None),
    }
}

impl Ban {
    fn parts(
        self,
        now: DateTime<Utc>,
    ) -> ApiResult<(Principal, Option<String>, Option<DateTime<Utc>>)> {
        let subject = parse_principal("subject", &self.subject)?;
        let until = ban_end(self.until, self.duration_secs, now)?;
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

/// `POST /rooms/{room}/address-bans`, `POST /address-bans`: ban the address of a
/// present person (`subject`) or, for the admin, an IP address or network (`ip`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressBan {
    subject: Option<String>,
    ip: Option<String>,
    reason: Option<String>,
    until: Option<DateTime<Utc>>,
    duration_secs: Option<u32>,
}

impl AddressBan {
    fn parts(
        self,
        now: DateTime<Utc>,
    ) -> ApiResult<(AddressTarget, Option<String>, Option<DateTime<Utc>>)> {
        let target = match (self.subject, self.ip) {
            (Some(s), None) => AddressTarget::Of(parse_principal("subject", &s)?),
            (None, Some(ip)) => AddressTarget::Ip(ip),
            _ => return Err(ApiError::invalid("give `subject` or `ip`, one of them")),
        };
        let until = ban_end(self.until, self.duration_secs, now)?;
        Ok((target, self.reason, until))
    }
}

async fn ban_address_in(
    app: &App,
    ctx: &Ctx,
    actor: Actor,
    scope: BanScope,
    b: AddressBan,
) -> ApiResult<Response> {
    let (target, reason, until) = b.parts(app.engine.now())?;
    let admin = matches!(actor, Actor::Admin);
    let o = run(
        app,
        ctx,
        actor,
        Command::BanAddress {
            scope,
            target,
            reason,
            until,
        },
    )
    .await?;
    Ok(answer(
        StatusCode::CREATED,
        views::address_outcome(&o, admin),
    ))
}

async fn unban_address_in(
    app: &App,
    ctx: &Ctx,
    actor: Actor,
    scope: BanScope,
    address: String,
) -> ApiResult<Response> {
    let admin = matches!(actor, Actor::Admin);
    let o = run(app, ctx, actor, Command::UnbanAddress { scope, address }).await?;
    Ok(answer(StatusCode::OK, views::address_outcome(&o, admin)))
}

pub async fn ban_address_room(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    Body(b): Body<AddressBan>,
) -> ApiResult<Response> {
    let room = parse_room(&room)?;
    let actor = room_actor(&ctx, &room)?;
    ban_address_in(&app, &ctx, actor, BanScope::Room(room), b).await
}

/// `DELETE /rooms/{room}/address-bans/{id-or-address}`.
pub async fn unban_address_room(
    app: App,
    ctx: Ctx,
    PathParams((room, address)): PathParams<(String, String)>,
) -> ApiResult<Response> {
    let room = parse_room(&room)?;
    let actor = room_actor(&ctx, &room)?;
    unban_address_in(&app, &ctx, actor, BanScope::Room(room), address).await
}

pub async fn ban_address_server(
    app: App,
    ctx: Ctx,
    Body(b): Body<AddressBan>,
) -> ApiResult<Response> {
    let actor = any_actor(&ctx)?;
    ban_address_in(&app, &ctx, actor, BanScope::Server, b).await
}

/// `DELETE /address-bans/{id-or-address}`.
pub async fn unban_address_server(
    app: App,
    ctx: Ctx,
    PathParams(address): PathParams<String>,
) -> ApiResult<Response> {
    let actor = any_actor(&ctx)?;
    unban_address_in(&app, &ctx, actor, BanScope::Server, address).await
}

/// `DELETE /autobans/{kind}/{value}`: lift an autoban (`identity` and an address, or
/// `remote` and the stored form as listed or a plain IP address).
pub async fn lift_autoban(
    app: App,
    ctx: Ctx,
    PathParams((kind, value)): PathParams<(String, String)>,
) -> ApiResult<Response> {
    let key = match kind.as_str() {
        "identity" => AutobanKey::Identity(parse_address("value", &value)?),
        "remote" => AutobanKey::Remote(value),
        _ => {
            return Err(ApiError::invalid(
                "kind: expected identity or remote".to_owned(),
            ))
        }
    };
    let actor = any_actor(&ctx)?;
    simple(&app, &ctx, actor, Command::LiftAutoban { key }).await
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
    pub(super) enabled: bool,
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
