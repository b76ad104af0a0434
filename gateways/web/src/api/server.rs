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
