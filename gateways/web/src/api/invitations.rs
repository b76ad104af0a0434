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
    // An email invitation is a bearer token: its secret is made here, given to the
    // engine (which keeps only its digest) and then only to the mail (or, with no
    // relay configured, to the inviter, who hands the link over).
    let secret = if invitee.scheme() == Scheme::Mailto {
        Some(
            crate::auth::random_token()
                .map_err(|e| ApiError::internal(format!("no randomness: {e}")))?,
        )
    } else {
        None
    };
    let by = actor.to_string();
    let cmd = Command::Invite {
        room: room.clone(),
        invitee,
        ttl_secs: b.ttl_secs,
        single_use: b.single_use.unwrap_or(true),
        secret: secret.clone().map(Secret::new),
    };
    let o = run(&app, &ctx, actor, cmd).await?;
    let issued = o.events.iter().find_map(|a| match &a.event.kind {
        EventKind::InvitationIssued {
            invitation,
            invitee,
            expires_at,
            single_use,
            ..
        } => {
            let mut view = json!({
                "invitation": invitation.as_str(),
                "invitee": invitee.to_string(),
                "expires_at": expires_at.map(views::time),
                "single_use": single_use,
            });
            if let Some(secret) = &secret {
                // Committed: now (never before) the secret may leave.
                match &app.mail {
                    Some(mailer) => {
                        mailer.send_invitation(&crate::mail::Invitation {
                            to: invitee,
                            room: &room,
                            by: &by,
                            invitation: invitation.as_str(),
                            secret,
                            expires_at: *expires_at,
                            single_use: *single_use,
                        });
                        view["delivery"] = json!("email");
                    }
                    None => {
                        view["delivery"] = json!("none");
                        view["secret"] = json!(secret);
                        view["link"] = json!(crate::mail::invitation_link("", &room, secret));
                    }
                }
            }
            Some(view)
        }
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
