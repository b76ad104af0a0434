//! The connection to nats-server: the connect options, the event callback that keeps
//! the status current, and a probe that says why connecting fails.
//!
//! While it retries, async-nats reports a failed attempt only by its kind
//! ("authorization violation", "IO error"). The first time a kind of failure shows up
//! (again after each successful connection), a single connection attempt with the same
//! options is made on the side, whose error carries the cause (an untrusted
//! certificate, a refused connection): that is what goes to the log, once, and to
//! `last_error`; later failures of the same kind only count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{Client, ClientError, ConnectOptions, Event, ServerError};

use crate::error::NatsError;
use crate::status::Shared;
use crate::transport::{connect_error, kind_error, redacted_url, Auth};
use crate::Settings;

/// How long the probe may take (several servers, each up to the connect timeout).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

fn reconnect_delay(attempts: usize, min: Duration, max: Duration) -> Duration {
    let shift = attempts.saturating_sub(1).min(16) as u32;
    min.saturating_mul(1u32 << shift).min(max)
}

/// Name, timeouts, backoff, authentication and TLS.
fn base_options(settings: &Settings) -> Result<ConnectOptions, NatsError> {
    let (min, max) = (settings.backoff_min, settings.backoff_max);
    settings.transport.apply(
        ConnectOptions::new()
            .name("conclave")
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .reconnect_delay_callback(move |n| reconnect_delay(n, min, max)),
    )
}

/// Connects once, for a command that has nothing to do without a connection (setup).
pub(crate) async fn connect_once(url: &str, settings: &Settings) -> Result<Client, NatsError> {
    let shown = redacted_url(url);
    base_options(settings)?
        .connect(url)
        .await
        .map_err(|e| connect_error(&e, &settings.transport.auth, &shown))
}

/// Connects in the background, forever: returns at once, and `shared` follows the
/// connection (connected or not, the last error, reconnections).
pub(crate) async fn connect_retrying(
    url: &str,
    settings: &Settings,
    shared: Arc<Shared>,
) -> Result<Client, NatsError> {
    let shown = redacted_url(url);
    let base = base_options(settings)?;
    let watch = Arc::new(Watch {
        url: url.to_owned(),
        shown: shown.clone(),
        auth: settings.transport.auth.clone(),
        probe: base.clone(),
        shared,
        seen_first: AtomicBool::new(false),
        state: Mutex::new(WatchState::default()),
    });
    base.retry_on_initial_connect()
        .event_callback(move |ev| {
            let watch = watch.clone();
            async move { watch.on_event(ev) }
        })
        .connect(url)
        .await
        .map_err(|e| connect_error(&e, &settings.transport.auth, &shown))
}

struct Watch {
    url: String,
    /// The URL without credentials, for logs.
    shown: String,
    auth: Auth,
    /// The options without the event callback, for the probe.
    probe: ConnectOptions,
    shared: Arc<Shared>,
    seen_first: AtomicBool,
    state: Mutex<WatchState>,
}

/// What has been said since the last successful connection.
#[derive(Default)]
struct WatchState {
    /// The kind of connection failure already reported.
    failing: Option<String>,
    /// The last server error logged.
    server_error: Option<String>,
}

impl Watch {
    fn state(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn on_event(self: &Arc<Self>, ev: Event) {
        let shared = &self.shared;
        match ev {
            Event::Connected => {
                shared.connected.store(true, Ordering::Relaxed);
                if self.seen_first.swap(true, Ordering::Relaxed) {
                    shared.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                *self.state() = WatchState::default();
                tracing::info!(url = %self.shown, "connected to NATS");
            }
            Event::Disconnected | Event::Closed => {
                shared.connected.store(false, Ordering::Relaxed);
                shared.error("nats.disconnected", "disconnected from NATS".into());
                tracing::warn!(url = %self.shown, "disconnected from NATS");
            }
            Event::ClientError(ClientError::Other(kind)) => self.connect_failed(kind),
            Event::ClientError(e) => shared.error("nats.client_error", e.to_string()),
            Event::ServerError(e) => self.server_error(&e),
            _ => {}
        }
    }

    /// A connection attempt failed (async-nats retries by itself).
    fn connect_failed(self: &Arc<Self>, kind: String) {
        {
            let mut st = self.state();
            if st.failing.as_deref() == Some(kind.as_str()) {
                return;
            }
            st.failing = Some(kind.clone());
        }
        let coarse = kind_error(&kind, &self.auth, &self.shown);
        self.shared.error(coarse.code(), coarse.to_string());
        let watch = self.clone();
        tokio::spawn(async move {
            let attempt =
                tokio::time::timeout(PROBE_TIMEOUT, watch.probe.clone().connect(&watch.url)).await;
            let err = match attempt {
                Ok(Err(e)) => connect_error(&e, &watch.auth, &watch.shown),
                // Connected after all, or no answer in time: the kind is all there is.
                Ok(Ok(_)) | Err(_) => coarse,
            };
            if !watch.shared.connected.load(Ordering::Relaxed) {
                watch.shared.error(err.code(), err.to_string());
            }
            tracing::warn!(code = err.code(), "{err}; retrying with backoff");
        });
    }

    /// The server sent `-ERR`: a permissions violation, or credentials refused after a
    /// configuration reload.
    fn server_error(&self, e: &ServerError) {
        let message = e.to_string();
        let code = match e {
            ServerError::AuthorizationViolation => "nats.auth",
            ServerError::Other(m) if m.to_ascii_lowercase().contains("permissions violation") => {
                "nats.permissions"
            }
            _ => "nats.server_error",
        };
        self.shared.error(code, message.clone());
        let mut st = self.state();
        if st.server_error.as_deref() != Some(message.as_str()) {
            tracing::warn!(code, url = %self.shown, "the NATS server says: {message}");
            st.server_error = Some(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delay_grows_and_caps() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(reconnect_delay(1, min, max), min);
        assert_eq!(reconnect_delay(2, min, max), Duration::from_millis(200));
        assert_eq!(reconnect_delay(100, min, max), max);
    }
}
