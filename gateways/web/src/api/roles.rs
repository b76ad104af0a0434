//! Affiliations: grant and revoke.

use super::*;

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
