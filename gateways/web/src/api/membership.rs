//! Entering and leaving: join, knock, leave.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    #[serde(rename = "as")]
    pub(super) as_: Option<String>,
    pub(super) guest_key: Option<String>,
    pub(super) session: Option<String>,
    pub(super) password: Option<String>,
    pub(super) owner_password: Option<String>,
    pub(super) server_password: Option<String>,
    pub(super) invitation: Option<String>,
    /// An email invitation's bearer secret (the `invitation` parameter of its link).
    pub(super) invitation_secret: Option<String>,
}

impl Join {
    pub(super) fn credentials(self) -> ApiResult<Credentials> {
        Ok(Credentials {
            server_password: secret(self.server_password),
            password: secret(self.password),
            owner_password: secret(self.owner_password),
            invitation: self
                .invitation
                .as_deref()
                .map(parse_invitation)
                .transpose()?,
            invitation_secret: secret(self.invitation_secret),
        })
    }
}

/// Answer of an entry that issued a token.
pub(super) fn entry_answer(
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
    crate::limits::entry(&app, &ctx)?;
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
    server_password: Option<String>,
}

pub async fn knock(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    Body(b): Body<Knock>,
) -> ApiResult<Response> {
    crate::limits::entry(&app, &ctx)?;
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
            server_password: secret(b.server_password),
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
