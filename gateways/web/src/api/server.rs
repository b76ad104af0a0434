//! Server policy.

use super::*;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintCredential {
    label: String,
    scopes: Vec<String>,
    #[serde(default)]
    read_only: bool,
    ttl_secs: Option<i64>,
}

/// `POST /credentials`: only the master admin token mints operator credentials.
pub async fn mint_credential(
    app: App,
    ctx: Ctx,
    Body(b): Body<MintCredential>,
) -> ApiResult<Response> {
    require_admin(&ctx)?;
    if ctx.credential.is_some() {
        return Err(ApiError::admin_required());
    }
    let label_ok = (1..=64).contains(&b.label.len())
        && b.label
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if !label_ok {
        return Err(ApiError::invalid(
            "label: 1 to 64 characters of A-Z a-z 0-9 . _ -".to_owned(),
        ));
    }
    let known = crate::routes::tags();
    let mut scopes = b.scopes;
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() || scopes.iter().any(|s| !known.contains(s.as_str())) {
        return Err(ApiError::invalid(format!(
            "scopes: one or more of {}",
            known.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    let ttl = Duration::seconds(b.ttl_secs.unwrap_or(3600));
    if ttl < Duration::seconds(60) || ttl > crate::credential::MAX_TTL {
        return Err(ApiError::invalid(
            "ttl_secs: from 60 to 2592000 (30 days)".to_owned(),
        ));
    }
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|e| ApiError::internal(e.to_string()))?;
    let now = Utc::now();
    let credential = crate::credential::Credential {
        id: conclave_journal::hex(&id),
        label: b.label,
        scopes,
        read_only: b.read_only,
        issued_at: now,
        expires_at: now + ttl,
    };
    let token = credential.sign(app.tokens.signer());
    tracing::info!(
        id = %credential.id,
        label = %credential.label,
        scopes = %credential.scopes.join(","),
        read_only = credential.read_only,
        expires_at = %credential.expires_at,
        "operator credential minted"
    );
    Ok(answer(
        StatusCode::CREATED,
        json!({
            "credential": token,
            "id": credential.id,
            "label": credential.label,
            "scopes": credential.scopes,
            "read_only": credential.read_only,
            "expires_at": views::time(credential.expires_at),
        }),
    ))
}
