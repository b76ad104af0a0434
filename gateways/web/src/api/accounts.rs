//! Accounts (Jami): create, enable, identities, contacts, moderators, rendezvous, calls.

use conclave_engine::sip_digest::{self, DigestAlgorithm};

use super::*;

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

/// A SIP password to set. No `Debug`: the plaintext must never reach a log.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipPassword {
    address: String,
    password: String,
    /// Defaults to the host part of the address.
    realm: Option<String>,
}

/// Sets the digest credentials of a `sip:` identity (linking it to the account if it is
/// not yet): the HA1 values for MD5 and SHA-256 are computed here, and the plaintext is
/// dropped with the request (never journaled, stored or logged).
pub async fn set_sip_credential(
    app: App,
    ctx: Ctx,
    PathParams(account): PathParams<String>,
    Body(b): Body<SipPassword>,
) -> ApiResult<Response> {
    // Refuse a non-admin before looking at the password at all.
    require_admin(&ctx)?;
    let address = parse_address("address", &b.address)?;
    if address.scheme() != Scheme::Sip {
        return Err(ApiError::invalid(
            "address: SIP credentials are for sip: identities",
        ));
    }
    if b.password.is_empty() || b.password.len() > MAX_PASSWORD_LEN {
        return Err(ApiError::invalid(format!(
            "password: must be 1..={MAX_PASSWORD_LEN} bytes"
        )));
    }
    let realm = match (b.realm, address.domain()) {
        (Some(r), _) => r,
        (None, Some(host)) => host.to_owned(),
        (None, None) => {
            return Err(ApiError::invalid(
                "realm: the address has no host part to default to; give one",
            ))
        }
    };
    let user = address.local().to_owned();
    let ha1_md5 = sip_digest::ha1(DigestAlgorithm::Md5, &user, &realm, &b.password);
    let ha1_sha256 = sip_digest::ha1(DigestAlgorithm::Sha256, &user, &realm, &b.password);
    on_account(app, ctx, account, |account| Command::SetSipCredential {
        account,
        address,
        realm,
        ha1_md5,
        ha1_sha256,
    })
    .await
}

pub async fn clear_sip_credential(
    app: App,
    ctx: Ctx,
    PathParams((account, address)): PathParams<(String, String)>,
) -> ApiResult<Response> {
    let address = parse_address("address", &address)?;
    on_account(app, ctx, account, |account| Command::ClearSipCredential {
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
    crate::limits::entry(&app, &ctx)?;
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
