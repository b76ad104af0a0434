//! Invitations: issue, answer, withdraw.

use super::*;

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
    crate::limits::entry(&app, &ctx)?;
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
