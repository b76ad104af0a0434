//! Rooms: create, configure, destroy, lock, reserve.

use conclave_engine::InviteRight;

use super::*;

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
    server_password: Option<String>,
}

pub async fn create_room(app: App, ctx: Ctx, Body(b): Body<CreateRoom>) -> ApiResult<Response> {
    crate::limits::entry(&app, &ctx)?;
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
        server_password: secret(b.server_password),
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
    invite: Option<InviteName>,
    #[serde(default, deserialize_with = "double_option")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    description: Option<Option<String>>,
    members_change_subject: Option<bool>,
    persistent: Option<bool>,
    public_addresses: Option<bool>,
}

/// Who may invite, as written in the API (the rule rooms from before the setting keep,
/// `members_unless_private`, is shown but cannot be chosen).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteName {
    Members,
    Moderators,
    Owners,
}

impl From<InviteName> for InviteRight {
    fn from(i: InviteName) -> Self {
        match i {
            InviteName::Members => InviteRight::Members,
            InviteName::Moderators => InviteRight::Moderators,
            InviteName::Owners => InviteRight::Owners,
        }
    }
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
    if let Some(v) = b.invite {
        changes.push(RoomChange::Invite(v.into()));
    }
    if let Some(v) = b.name {
        changes.push(RoomChange::Name(v));
    }
    if let Some(v) = b.description {
        changes.push(RoomChange::Description(v));
    }
    if let Some(v) = b.members_change_subject {
        changes.push(RoomChange::MembersChangeSubject(v));
    }
    if let Some(v) = b.persistent {
        changes.push(RoomChange::Persistent(v));
    }
    if let Some(v) = b.public_addresses {
        changes.push(RoomChange::PublicAddresses(v));
    }
    if changes.is_empty() {
        return Err(ApiError::invalid("no change given"));
    }
    simple(&app, &ctx, actor, Command::ConfigureRoom { room, changes }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSubject {
    subject: Option<String>,
}

/// XEP-0045's room subject: set, or clear with `null` (a moderator, or a member where
/// the room lets members; present in the room, unless the admin).
pub async fn set_subject(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    Body(b): Body<SetSubject>,
) -> ApiResult<Response> {
    in_room(&app, &ctx, &room, |room| Command::SetSubject {
        room,
        subject: b.subject,
    })
    .await
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
