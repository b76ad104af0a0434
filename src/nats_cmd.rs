//! `conclave nats …` and the NATS gateway's wiring into `conclave serve`.
//!
//! Serve configuration (flag > env > file > default; no URL, no NATS):
//!
//! | TOML key (`[nats]`) | flag | env |
//! | --- | --- | --- |
//! | `url` | `--nats-url` | `CONCLAVE_NATS_URL` |
//! | `jetstream` (default true) | `--nats-jetstream` | `CONCLAVE_NATS_JETSTREAM` |
//! | `subject_prefix` (default `conclave`) | `--nats-subject-prefix` | `CONCLAVE_NATS_SUBJECT_PREFIX` |
//! | `server_id` (default `conclave`) | `--nats-server-id` | `CONCLAVE_NATS_SERVER_ID` |
//! | `service_name` (default `nats`) | `--nats-service-name` | `CONCLAVE_NATS_SERVICE_NAME` |
//! | `service_token` (no token, no commands) | `--nats-service-token` | `CONCLAVE_NATS_SERVICE_TOKEN` |
//! | `service_may_act_as` (default false) | `--nats-service-may-act-as` | `CONCLAVE_NATS_SERVICE_MAY_ACT_AS` |

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use conclave_engine::service::Engine;
use conclave_gateway_nats::{
    setup_stream, start, NatsConfig, NatsHandle, ServiceCredential, StatusReader, StreamOptions,
};
use conclave_gateway_web::StatusSource;
use serde::Deserialize;

#[derive(Subcommand)]
pub enum NatsAction {
    /// Create the JetStream stream that keeps the events (or update it; idempotent).
    Setup(SetupArgs),
}

#[derive(Args)]
pub struct SetupArgs {
    /// The NATS server.
    #[arg(
        long,
        env = "CONCLAVE_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    url: String,
    /// Stream name.
    #[arg(long, default_value = "CONCLAVE_EVENTS")]
    stream: String,
    /// Subject prefix the server publishes under (`<prefix>.events.>` is captured).
    #[arg(long, env = "CONCLAVE_NATS_SUBJECT_PREFIX", default_value = "conclave")]
    subject_prefix: String,
    /// Deduplication window: longer than any outage after which records could be
    /// sent again (a crash between an ack and the cursor write).
    #[arg(long, default_value_t = 86_400)]
    duplicate_window_secs: u64,
    /// Drop events older than this; 0 keeps them forever. Match the retention of
    /// personal content (log-days): erasure in the journal cannot reach the stream.
    #[arg(long, default_value_t = 0)]
    max_age_secs: u64,
    /// Size cap in bytes; 0 is unlimited.
    #[arg(long, default_value_t = 0)]
    max_bytes: i64,
    #[arg(long, default_value_t = 1)]
    replicas: usize,
}

pub fn run(action: NatsAction) -> anyhow::Result<ExitCode> {
    match action {
        NatsAction::Setup(a) => {
            let options = StreamOptions {
                name: a.stream,
                subject_prefix: a.subject_prefix,
                duplicate_window: Duration::from_secs(a.duplicate_window_secs),
                max_age: Duration::from_secs(a.max_age_secs),
                max_bytes: a.max_bytes,
                replicas: a.replicas,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let out = rt
                .block_on(async {
                    tokio::time::timeout(Duration::from_secs(15), setup_stream(&a.url, &options))
                        .await
                })
                .map_err(|_| anyhow::anyhow!("no answer from {} in 15 s", a.url))?
                .with_context(|| format!("setting up the stream on {}", a.url))?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `[nats]` in the serve configuration file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsFile {
    url: Option<String>,
    jetstream: Option<bool>,
    subject_prefix: Option<String>,
    server_id: Option<String>,
    service_name: Option<String>,
    service_token: Option<String>,
    service_may_act_as: Option<bool>,
}

/// The same keys as serve flags and environment variables.
#[derive(Debug, Default, Clone, Args)]
pub struct NatsFlags {
    /// NATS server URL; without one the server runs without NATS.
    #[arg(long, env = "CONCLAVE_NATS_URL")]
    nats_url: Option<String>,
    /// Publish events to JetStream with acks (true) or to core NATS (false) [default: true].
    #[arg(long, env = "CONCLAVE_NATS_JETSTREAM")]
    nats_jetstream: Option<bool>,
    /// Subject prefix [default: conclave].
    #[arg(long, env = "CONCLAVE_NATS_SUBJECT_PREFIX")]
    nats_subject_prefix: Option<String>,
    /// This server's id in the events' CloudEvents source [default: conclave].
    #[arg(long, env = "CONCLAVE_NATS_SERVER_ID")]
    nats_server_id: Option<String>,
    /// Name of the service credential; events name `service:<name>` [default: nats].
    #[arg(long, env = "CONCLAVE_NATS_SERVICE_NAME")]
    nats_service_name: Option<String>,
    /// Token services send in `Conclave-Token` (16+ characters); none disables commands.
    #[arg(long, env = "CONCLAVE_NATS_SERVICE_TOKEN", hide_env_values = true)]
    nats_service_token: Option<String>,
    /// Let the service act as identities with `Conclave-Act-As` [default: false].
    #[arg(long, env = "CONCLAVE_NATS_SERVICE_MAY_ACT_AS")]
    nats_service_may_act_as: Option<bool>,
}

impl NatsFlags {
    /// The gateway configuration, or `None` when no URL is configured.
    pub fn resolve(&self, file: &NatsFile, data_dir: &Path) -> Option<NatsConfig> {
        let url = self.nats_url.clone().or_else(|| file.url.clone())?;
        let mut c = NatsConfig::new(url, data_dir.join("nats").join("outbox-cursor"));
        if let Some(v) = self.nats_jetstream.or(file.jetstream) {
            c.jetstream = v;
        }
        if let Some(v) = pick(&self.nats_subject_prefix, &file.subject_prefix) {
            c.subject_prefix = v;
        }
        if let Some(v) = pick(&self.nats_server_id, &file.server_id) {
            c.server_id = v;
        }
        if let Some(token) = pick(&self.nats_service_token, &file.service_token) {
            c.credentials.push(ServiceCredential {
                name: pick(&self.nats_service_name, &file.service_name)
                    .unwrap_or_else(|| "nats".into()),
                token,
                may_act_as: self
                    .nats_service_may_act_as
                    .or(file.service_may_act_as)
                    .unwrap_or(false),
            });
        }
        Some(c)
    }
}

fn pick(flag: &Option<String>, file: &Option<String>) -> Option<String> {
    flag.clone().or_else(|| file.clone())
}

/// The gateway's part of `/about/health` and `/metrics`. A NATS outage does not make
/// the server unhealthy (the journal keeps everything and the outbox catches up); it
/// shows as `connected: false` and a growing lag.
struct NatsStatusSource(StatusReader);

impl StatusSource for NatsStatusSource {
    fn name(&self) -> String {
        "nats".into()
    }

    fn health(&self) -> serde_json::Value {
        self.0.status().health_json()
    }

    fn metrics(&self) -> String {
        self.0.status().prometheus()
    }
}

/// Starts the gateway if configured; call inside the serve runtime, and
/// `handle.shutdown().await` before the engine shuts down.
pub async fn start_gateway(
    engine: Engine,
    config: Option<NatsConfig>,
) -> anyhow::Result<Option<(NatsHandle, Arc<dyn StatusSource>)>> {
    let Some(config) = config else {
        return Ok(None);
    };
    let url = config.url.clone();
    let handle = start(engine, config)
        .await
        .with_context(|| format!("starting the NATS gateway for {url}"))?;
    tracing::info!(%url, "NATS gateway started");
    let source: Arc<dyn StatusSource> = Arc::new(NatsStatusSource(handle.status_reader()));
    Ok(Some((handle, source)))
}
