//! The NATS gateway: every journal record published to NATS in order, resumably, and
//! engine commands served over request/reply.
//!
//! - [`start`] spawns the outbox publisher (driven by the engine's committed feed from a
//!   cursor persisted beside the journal, see [`cursor`]) and the command responder on the
//!   current tokio runtime, and returns a [`NatsHandle`] with [`NatsHandle::status`] and
//!   [`NatsHandle::shutdown`].
//! - [`setup_stream`] creates or updates the JetStream stream that captures the events
//!   (`conclave nats setup`).
//! - [`subject`] defines the subject scheme and its escaping; [`envelope`] the
//!   CloudEvents payload and headers.
//! - [`NatsAuth`] and [`NatsTls`] say how to authenticate to nats-server (user and
//!   password, token, nkey seed or credentials file) and whether and how to use TLS;
//!   they are checked (secrets read from their files, PEM files parsed) before anything
//!   connects.
//!
//! See docs/nats.md for the wire contract.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod commands;
mod connection;
pub mod cursor;
pub mod envelope;
mod error;
mod publisher;
mod status;
pub mod subject;
mod transport;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::Client;
use conclave_engine::service::Engine;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::{NatsError, RequestError};
pub use status::{LastError, NatsStatus, StatusReader};
pub use transport::{redacted_url, NatsAuth, NatsTls, Secret};

use commands::{Credential, Responder};
use cursor::CursorFile;
use publisher::{persist_cursor, Publisher};
use status::Shared;
use transport::Transport;

/// A service allowed to send commands over NATS.
#[derive(Clone)]
pub struct ServiceCredential {
    /// The actor on the events is `service:<name>`.
    pub name: String,
    /// The secret sent in the `Conclave-Token` header (16 characters or more).
    pub token: Secret,
    /// Whether the service may act as an identity (`Conclave-Act-As`), which makes the
    /// events name that person as the actor.
    pub may_act_as: bool,
}

impl fmt::Debug for ServiceCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceCredential")
            .field("name", &self.name)
            .field("token", &"..")
            .field("may_act_as", &self.may_act_as)
            .finish()
    }
}

/// How to run the gateway.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `nats://127.0.0.1:4222` (comma-separated for several servers; `tls://` requires
    /// TLS).
    pub url: String,
    /// How to authenticate to the NATS server (none by default).
    pub auth: NatsAuth,
    /// TLS towards the NATS server (as the server asks, by default).
    pub tls: NatsTls,
    /// Publish to JetStream and wait for acks (true), or to core NATS.
    pub jetstream: bool,
    /// First subject token(s): events on `<prefix>.events.…`, commands on `<prefix>.cmd.…`.
    pub subject_prefix: String,
    /// Names this server in the CloudEvents `source` (`/conclave/<server_id>`).
    pub server_id: String,
    /// The outbox cursor file; must not be inside the journal directory.
    pub cursor_path: PathBuf,
    /// Who may send commands; no credentials, no command responder.
    pub credentials: Vec<ServiceCredential>,
    /// Whether to run the outbox publisher.
    pub publish: bool,
    /// Publishes in flight (JetStream) or per confirmed batch (core).
    pub window: usize,
    /// How long to wait for a PubAck or a confirmation round trip.
    pub ack_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// The cursor file is rewritten at most this often.
    pub cursor_flush_interval: Duration,
    /// Commands executed concurrently; requests beyond get `nats.overloaded`.
    pub max_concurrent_commands: usize,
}

impl NatsConfig {
    /// JetStream on, prefix `conclave`, window 256, 5 s ack timeout, backoff 100 ms to
    /// 5 s, cursor written at most every 50 ms.
    pub fn new(url: impl Into<String>, cursor_path: impl Into<PathBuf>) -> Self {
        NatsConfig {
            url: url.into(),
            auth: NatsAuth::default(),
            tls: NatsTls::default(),
            jetstream: true,
            subject_prefix: "conclave".into(),
            server_id: "conclave".into(),
            cursor_path: cursor_path.into(),
            credentials: Vec::new(),
            publish: true,
            window: 256,
            ack_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            cursor_flush_interval: Duration::from_millis(50),
            max_concurrent_commands: 256,
        }
    }
}

/// The checked configuration the tasks share.
pub(crate) struct Settings {
    pub prefix: String,
    pub source: String,
    pub credentials: Vec<Credential>,
    pub window: usize,
    pub ack_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub max_concurrent_commands: usize,
    pub transport: Transport,
}

impl Settings {
    pub(crate) fn from_config(c: &NatsConfig) -> Result<Settings, NatsError> {
        let bad = |m: String| Err(NatsError::Config(m));
        if c.url.trim().is_empty() {
            return bad("the NATS URL is empty".into());
        }
        if !subject::valid_prefix(&c.subject_prefix) {
            return bad(format!(
                "subject prefix {:?} must be dot-separated tokens of [A-Za-z0-9_-]",
                c.subject_prefix
            ));
        }
        let id_ok = !c.server_id.is_empty()
            && c.server_id.len() <= 64
            && c.server_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !id_ok {
            return bad(format!(
                "server id {:?} must be 1 to 64 characters of [A-Za-z0-9._-]",
                c.server_id
            ));
        }
        let mut credentials = Vec::new();
        for cred in &c.credentials {
            let token = cred
                .token
                .read(&format!("the token of service {:?}", cred.name))?;
            if token.len() < 16 {
                return bad(format!(
                    "the token of service {:?} is shorter than 16 characters",
                    cred.name
                ));
            }
            if conclave_engine::Actor::parse(&format!("service:{}", cred.name)).is_err()
                || cred.name.is_empty()
                || cred
                    .name
                    .chars()
                    .any(|ch| ch.is_control() || ch.is_whitespace())
            {
                return bad(format!("bad service name {:?}", cred.name));
            }
            credentials.push(Credential {
                name: cred.name.clone(),
                digest: blake3::hash(token.as_bytes()),
                may_act_as: cred.may_act_as,
            });
        }
        Ok(Settings {
            prefix: c.subject_prefix.clone(),
            source: format!("/conclave/{}", c.server_id),
            credentials,
            window: c.window.clamp(1, 4096),
            ack_timeout: c.ack_timeout.max(Duration::from_millis(10)),
            backoff_min: c.backoff_min.max(Duration::from_millis(1)),
            backoff_max: c.backoff_max.max(c.backoff_min),
            max_concurrent_commands: c.max_concurrent_commands.max(1),
            transport: Transport::resolve(&c.auth, &c.tls)?,
        })
    }
}

/// The running gateway.
pub struct NatsHandle {
    client: Client,
    reader: StatusReader,
    cursor: watch::Receiver<u64>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl NatsHandle {
    pub fn status(&self) -> NatsStatus {
        self.reader.status()
    }

    /// A clonable status reader for health and metrics endpoints.
    pub fn status_reader(&self) -> StatusReader {
        self.reader.clone()
    }

    /// Follows the acknowledged cursor (for waiting until a record is published).
    pub fn cursor_watch(&self) -> watch::Receiver<u64> {
        self.cursor.clone()
    }

    /// The NATS client, e.g. for further subscriptions by the embedding program.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Stops serving commands and publishing, stores the cursor and flushes the
    /// connection. While connected, first gives the outbox up to two seconds to publish
    /// what is already journaled, so a clean stop leaves no lag behind.
    pub async fn shutdown(self) {
        let mut cursor = self.cursor.clone();
        let head = self.reader.journal.head();
        if self.reader.shared.connected.load(Ordering::Relaxed) {
            let caught_up = async {
                while *cursor.borrow_and_update() < head {
                    if cursor.changed().await.is_err() {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), caught_up).await;
        }
        self.stop.send_replace(true);
        // Bounded whatever the server does: a stop must not wait for an unreachable NATS
        // server (a cursor not stored at the end only means republished duplicates,
        // which the stream drops by message id).
        for mut t in self.tasks {
            if tokio::time::timeout(STOP_GRACE, &mut t).await.is_err() {
                tracing::warn!("a NATS task did not stop in time; abandoning it");
                t.abort();
            }
        }
        if tokio::time::timeout(STOP_GRACE, self.client.flush())
            .await
            .is_err()
        {
            tracing::warn!("could not flush the NATS connection in time");
        }
    }
}

/// How long each step of a stop may wait for the NATS server.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Starts the gateway on the current tokio runtime. Returns at once: the connection is
/// made (and remade) in the background; [`NatsHandle::status`] tells whether it is up.
///
/// Fails on a bad configuration (including an unreadable secret or TLS file), an
/// unreadable cursor file, or a cursor past the journal's head (the journal was
/// replaced: publishing would skip or repeat records). Credentials the NATS server
/// refuses do not fail the start: like an unreachable server, they show in
/// [`NatsHandle::status`] (`connected: false`, `last_error` `nats.auth`) and the log,
/// and the connection is retried with backoff.
pub async fn start(engine: Engine, config: NatsConfig) -> Result<NatsHandle, NatsError> {
    let settings = Arc::new(Settings::from_config(&config)?);
    let journal = engine.journal().clone();
    let cursor_file = CursorFile::new(&config.cursor_path);
    let cursor = cursor_file.load()?;
    let head = journal.head();
    if cursor > head {
        return Err(NatsError::CursorAhead { cursor, head });
    }
    let shared = Arc::new(Shared::default());
    shared.cursor.store(cursor, Ordering::Release);
    shared.persisted.store(cursor, Ordering::Release);

    let client = connection::connect_retrying(&config.url, &settings, shared.clone()).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let (cursor_tx, cursor_rx) = watch::channel(cursor);
    let cursor_watch = cursor_tx.subscribe();

    if !settings.credentials.is_empty() {
        let filter = format!("{}.cmd.>", settings.prefix);
        let sub = client
            .queue_subscribe(filter, "conclave-cmd".to_owned())
            .await
            .map_err(|e| NatsError::Subscribe(e.to_string()))?;
        let responder = Responder {
            client: client.clone(),
            engine: engine.clone(),
            settings: settings.clone(),
            shared: shared.clone(),
            stop: stop_rx.clone(),
        };
        tasks.push(tokio::spawn(responder.run(sub)));
    }

    if config.publish {
        let js = config.jetstream.then(|| {
            jetstream::ContextBuilder::new()
                .timeout(settings.ack_timeout)
                .max_ack_inflight(settings.window.max(1) * 2)
                .build(client.clone())
        });
        let publisher = Publisher {
            engine: engine.clone(),
            client: client.clone(),
            js,
            settings: settings.clone(),
            shared: shared.clone(),
            cursor_tx,
            stop: stop_rx.clone(),
        };
        tasks.push(tokio::spawn(publisher.run()));
        tasks.push(tokio::spawn(persist_cursor(
            cursor_file,
            cursor_rx,
            shared.clone(),
            config.cursor_flush_interval,
        )));
    }

    Ok(NatsHandle {
        client,
        reader: StatusReader {
            shared,
            journal,
            jetstream: config.jetstream,
        },
        cursor: cursor_watch,
        stop: stop_tx,
        tasks,
    })
}

/// The JetStream stream `conclave nats setup` creates.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Stream name (`CONCLAVE_EVENTS`).
    pub name: String,
    pub subject_prefix: String,
    /// How long JetStream remembers message ids for deduplication. Must exceed the
    /// longest outage after which the outbox republishes acknowledged records (a crash
    /// between an ack and the cursor write).
    pub duplicate_window: Duration,
    /// Zero keeps events forever. Set it to the personal-content retention (log-days):
    /// erasure in the journal cannot reach copies already in the stream.
    pub max_age: Duration,
    /// Zero is unlimited.
    pub max_bytes: i64,
    pub replicas: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            name: "CONCLAVE_EVENTS".into(),
            subject_prefix: "conclave".into(),
            duplicate_window: Duration::from_secs(24 * 3600),
            max_age: Duration::ZERO,
            max_bytes: 0,
            replicas: 1,
        }
    }
}

/// Creates the event stream, or updates it to these options if it exists; returns a
/// JSON summary (name, subjects, messages, first and last sequence). Connects once,
/// with `auth` and `tls`: refused credentials fail at once (`nats.auth`).
pub async fn setup_stream(
    url: &str,
    auth: &NatsAuth,
    tls: &NatsTls,
    options: &StreamOptions,
) -> Result<Value, NatsError> {
    if !subject::valid_prefix(&options.subject_prefix) {
        return Err(NatsError::Config(format!(
            "bad subject prefix {:?}",
            options.subject_prefix
        )));
    }
    let valid_name = !options.name.is_empty()
        && options
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid_name {
        return Err(NatsError::Config(format!(
            "bad stream name {:?}",
            options.name
        )));
    }
    let mut config = NatsConfig::new(url, "");
    config.auth = auth.clone();
    config.tls = tls.clone();
    let settings = Settings::from_config(&config)?;
    let client = connection::connect_once(url, &settings).await?;
    let js = jetstream::new(client.clone());
    let config = stream::Config {
        name: options.name.clone(),
        subjects: vec![subject::events_filter(&options.subject_prefix)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        duplicate_window: options.duplicate_window,
        max_age: options.max_age,
        max_bytes: if options.max_bytes > 0 {
            options.max_bytes
        } else {
            -1
        },
        max_messages: -1,
        num_replicas: options.replicas.max(1),
        description: Some("Conclave journal events (CloudEvents JSON)".into()),
        ..Default::default()
    };
    let js_err = |e: &dyn fmt::Display| NatsError::JetStream(e.to_string());
    let created = match js.get_stream(&options.name).await {
        Ok(_) => {
            js.update_stream(config).await.map_err(|e| js_err(&e))?;
            false
        }
        Err(_) => {
            js.create_stream(config).await.map_err(|e| js_err(&e))?;
            true
        }
    };
    let mut stream = js.get_stream(&options.name).await.map_err(|e| js_err(&e))?;
    let info = stream.info().await.map_err(|e| js_err(&e))?;
    let out = json!({
        "stream": info.config.name,
        "created": created,
        "subjects": info.config.subjects,
        "storage": "file",
        "duplicate_window_secs": info.config.duplicate_window.as_secs(),
        "max_age_secs": info.config.max_age.as_secs(),
        "messages": info.state.messages,
        "first_seq": info.state.first_sequence,
        "last_seq": info.state.last_sequence,
    });
    let _ = client.flush().await;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_checked() {
        let ok = NatsConfig::new("nats://127.0.0.1:4222", "/tmp/c");
        assert!(Settings::from_config(&ok).is_ok());
        let mut c = ok.clone();
        c.subject_prefix = "a.*".into();
        assert_eq!(
            Settings::from_config(&c).err().map(|e| e.code()),
            Some("nats.config")
        );
        let mut c = ok.clone();
        c.url = " ".into();
        assert!(Settings::from_config(&c).is_err());
        let mut c = ok.clone();
        c.server_id = "a b".into();
        assert!(Settings::from_config(&c).is_err());
        let mut c = ok;
        c.credentials = vec![ServiceCredential {
            name: "bot".into(),
            token: "short".into(),
            may_act_as: false,
        }];
        assert!(Settings::from_config(&c).is_err());
    }

    #[test]
    fn service_tokens_and_nats_secrets_may_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("service-token");
        std::fs::write(&token, "a-service-token-of-some-length\n").unwrap();
        let password = dir.path().join("nats-password");
        std::fs::write(&password, "pw\n").unwrap();
        let mut c = NatsConfig::new("nats://127.0.0.1:4222", "/tmp/c");
        c.credentials = vec![ServiceCredential {
            name: "bot".into(),
            token: Secret::File(token),
            may_act_as: false,
        }];
        c.auth = NatsAuth {
            user: Some("conclave".into()),
            password: Some(Secret::File(password)),
            ..Default::default()
        };
        let s = Settings::from_config(&c).unwrap();
        assert_eq!(
            s.credentials[0].digest,
            blake3::hash(b"a-service-token-of-some-length")
        );
        assert_eq!(
            s.transport.auth,
            transport::Auth::UserPassword {
                user: "conclave".into(),
                password: "pw".into()
            }
        );
        // Secrets stay out of debug output (the configuration is logged on errors).
        let shown = format!("{c:?}");
        assert!(!shown.contains("a-service-token"), "{shown}");

        c.credentials[0].token = Secret::File(dir.path().join("absent"));
        let e = Settings::from_config(&c).err().unwrap();
        assert_eq!(e.code(), "nats.config");
        assert!(
            e.to_string().contains("the token of service \"bot\""),
            "{e}"
        );
    }
}
