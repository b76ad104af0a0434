//! The browser client: `GET /r/{room}` serves one static page (HTML, CSS and plain
//! JavaScript, no build step) that joins through the REST API and talks over the room's
//! WebSocket (events, chat, moderation, media signalling). See docs/page.md.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::parse_room;
use crate::error::ApiResult;
use crate::extract::PathParams;

const HTML: &str = include_str!("../static/room.html");
const JS: &str = include_str!("../static/room.js");
const CSS: &str = include_str!("../static/room.css");

/// Same-origin everything; media from the camera and peer connections (`blob:` and
/// `mediastream:` for video elements); no inline script or style.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    resp
}

/// `GET /r/{room}`: the page (the room name is checked, the room need not exist yet: the
/// page creates it when the server lets guests create rooms).
pub async fn room_page(PathParams(room): PathParams<String>) -> ApiResult<Response> {
    parse_room(&room)?;
    Ok(asset(HTML, "text/html; charset=utf-8"))
}

/// `GET /assets/room.js`.
pub async fn room_js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

/// `GET /assets/room.css`.
pub async fn room_css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}
