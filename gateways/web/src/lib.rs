//! The web gateway: the engine's REST API over JSON.
//!
//! [`router`] builds the axum router (every command and query of the engine, the OpenAPI
//! document at `/openapi.json`, `/about/health`, `/metrics`); [`serve`] runs it on a
//! listener until a shutdown future resolves. Authentication: an admin bearer token for
//! server-wide actions, participant bearer tokens issued at join (in memory only). Other
//! gateways plug their status into health and metrics through [`StatusSource`]. The
//! `/replay/*` routes serve the replay library over the live journal (admin only).
//! The listener itself ([`Transport`]: connection cap, header, body and idle timeouts,
//! TLS, the client address behind trusted proxies) is in `transport.rs`, `tls.rs` and
//! `proxy.rs`; CORS in `cors.rs`. See docs/api.md for the reference.

mod api;
pub mod auth;
pub mod cors;
pub mod credential;
pub mod error;
mod events;
mod extract;
mod guest;
pub mod ice;
mod lease;
mod limits;
pub mod mail;
pub mod media_plane;
mod meta;
mod page;
pub mod proxy;
mod query;
mod replay_routes;
mod revocation;
pub mod routes;
pub mod tls;
pub mod token;
mod transport;
mod views;
mod ws;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::Router;
use conclave_engine::service::Engine;
use serde_json::Value;

pub use auth::{load_or_create_admin_token, AuthConfig};
pub use cors::{CorsError, CorsSettings};
pub use error::ApiError;
pub use ice::{IceError, IceSettings};
pub use limits::RateSettings;
pub use mail::{MailSettings, Mailer, SmtpSecurity};
pub use media_plane::{BoxFuture, MediaError, MediaKind, MediaPlane, MediaSignal};
pub use proxy::{ForwardedHeader, PeerAddr, ProxyError, TrustedProxies};
pub use tls::{TlsConfig, TlsError};
pub use transport::{Transport, TransportSettings, MAX_HEAD_BYTES};

/// Largest accepted request body: commands are small, chat is capped at a few KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Another component's contribution to `/about/health` and `/metrics` (the NATS
/// gateway's connection and lag, later the SIP and XMPP gateways).
pub trait StatusSource: Send + Sync {
    /// Key under `sources` in the health document.
    fn name(&self) -> String;
    /// Whether the component is working; `false` turns health into 503.
    fn healthy(&self) -> bool {
        true
    }
    /// Its health details (JSON).
    fn health(&self) -> Value;
    /// Prometheus text lines (with their own `# HELP`/`# TYPE`), appended to /metrics.
    fn metrics(&self) -> String;
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct App {
    engine: Engine,
    auth: AuthConfig,
    tokens: auth::Tokens,
    status: Arc<Vec<Arc<dyn StatusSource>>>,
    openapi: Arc<Value>,
    started: Instant,
    /// The replay index shared by the /replay routes.
    replay: Arc<replay_routes::Cache>,
    /// Open event streams (SSE and WebSocket), bounded.
    streams: Arc<events::Slots>,
    /// Keys that bind guest names with standing to their first holder.
    guests: Arc<guest::GuestKeys>,
    /// Per-address rate limits on entries and chat.
    limits: Arc<limits::RateLimits>,
    /// The media plane (if any), the ICE servers, and the sessions connected to it.
    media: Arc<media_plane::MediaHub>,
    /// Email (invitations, join notifications), if an SMTP relay is configured.
    mail: Option<mail::Mailer>,
}

/// Browser media: the media plane behind the room WebSockets (`None`: no media, the
/// page offers chat and moderation only) and the ICE servers browsers are given.
#[derive(Clone, Default)]
pub struct MediaOptions {
    pub plane: Option<Arc<dyn MediaPlane>>,
    pub ice: IceSettings,
}

impl FromRequestParts<App> for App {
    type Rejection = Infallible;

    async fn from_request_parts(_: &mut Parts, state: &App) -> Result<Self, Self::Rejection> {
        Ok(state.clone())
    }
}

/// The REST router over `engine`.
pub fn router(engine: Engine, auth: AuthConfig) -> Router {
    router_with_status(engine, auth, Vec::new())
}

/// [`router`] with other components' status in health and metrics.
pub fn router_with_status(
    engine: Engine,
    auth: AuthConfig,
    status: Vec<Arc<dyn StatusSource>>,
) -> Router {
    router_with_options(engine, auth, status, RateSettings::default())
}

/// [`router_with_status`] with chosen rate limits.
pub fn router_with_options(
    engine: Engine,
    auth: AuthConfig,
    status: Vec<Arc<dyn StatusSource>>,
    rates: RateSettings,
) -> Router {
    router_with_media(engine, auth, status, rates, MediaOptions::default())
}

/// [`router_with_options`] with a media plane and ICE servers for browsers.
pub fn router_with_media(
    engine: Engine,
    auth: AuthConfig,
    status: Vec<Arc<dyn StatusSource>>,
    rates: RateSettings,
    media: MediaOptions,
) -> Router {
    router_with_mail(engine, auth, status, rates, media, None)
}

/// [`router_with_media`] with email through an SMTP relay: `mailto:` invitations are
/// delivered, and join notifications sent if configured (see `mail.rs`). Add
/// [`Mailer::status`] to `status` for its health and metrics.
pub fn router_with_mail(
    engine: Engine,
    auth: AuthConfig,
    status: Vec<Arc<dyn StatusSource>>,
    rates: RateSettings,
    media: MediaOptions,
    mail: Option<Mailer>,
) -> Router {
    if let (Some(m), Ok(rt)) = (&mail, tokio::runtime::Handle::try_current()) {
        rt.spawn(m.clone().notify_joins(engine.clone()));
    }
    let table = routes::table();
    let engine_dir = engine.data_dir().to_path_buf();
    let tokens = auth::Tokens::new(token::TokenSigner::load(&engine_dir));
    // Outside a runtime (never in the server) tokens are still checked at every use.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(revocation::follow(engine.clone(), tokens.clone()));
    }
    let replay: Arc<replay_routes::Cache> = Arc::default();
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(replay_routes::follow(engine.clone(), replay.clone()));
    }
    let hub = Arc::new(media_plane::MediaHub::new(media.plane, media.ice));
    if hub.plane.is_some() {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(media_plane::enforce(engine.clone(), hub.clone()));
        }
    }
    let app = App {
        engine,
        auth,
        tokens,
        status: Arc::new(status),
        openapi: Arc::new(routes::openapi(&table)),
        started: Instant::now(),
        replay,
        streams: Arc::default(),
        guests: Arc::new(guest::GuestKeys::load(engine_dir.as_path())),
        limits: Arc::new(limits::RateLimits::new(rates)),
        media: hub,
        mail,
    };
    let mut router: Router<App> = Router::new();
    for r in table {
        router = router.route(r.path, r.handler);
    }
    router
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(extract::correlate))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

async fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route.not_found",
        "no such route; see /openapi.json",
    )
}

async fn no_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "route.method_not_allowed",
        "this route does not take that method; see /openapi.json",
    )
}

async fn security_headers(mut resp: axum::response::Response) -> axum::response::Response {
    let h = resp.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    resp
}

/// How long in-flight requests get to finish once shutdown is asked for. Event streams
/// never finish by themselves, so without a bound one open browser tab would keep the
/// server from stopping; past it the remaining connections are closed (clients resume
/// from their last event).
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves `router` on `listener` with the default [`TransportSettings`] until `shutdown`
/// resolves, then finishes in-flight requests for at most [`SHUTDOWN_GRACE`]. The client
/// address reaches handlers as `ConnectInfo<SocketAddr>` (for the journal's origin
/// metadata and rate limits). [`Transport`] serves with other settings.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    Transport::new(TransportSettings::default())
        .serve(listener, router, shutdown)
        .await
}
