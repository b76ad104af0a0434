//! Chat.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Post {
    body: String,
}

pub async fn post_message(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    Body(b): Body<Post>,
) -> ApiResult<Response> {
    crate::limits::chat(&app, &ctx)?;
    let room = parse_room(&room)?;
    let actor = room_actor(&ctx, &room)?;
    let o = run(
        &app,
        &ctx,
        actor,
        Command::PostMessage { room, body: b.body },
    )
    .await?;
    let message = o.events.iter().find_map(|a| match &a.event.kind {
        EventKind::MessagePosted {
            message,
            html_stripped,
            ..
        } => Some(json!({
            "message": message.as_str(), "html_stripped": html_stripped,
        })),
        _ => None,
    });
    Ok(answer(
        StatusCode::CREATED,
        views::with(views::outcome(&o), message.unwrap_or(Value::Null)),
    ))
}
