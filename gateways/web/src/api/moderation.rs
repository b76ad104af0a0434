//! Moderation: mute, video, kick, bans, hands, moderated chat.

use super::*;
use conclave_engine::event::AutobanKey;

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
