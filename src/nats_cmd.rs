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
//! | `service_token_file` | `--nats-service-token-file` | `CONCLAVE_NATS_SERVICE_TOKEN_FILE` |
//! | `service_may_act_as` (default false) | `--nats-service-may-act-as` | `CONCLAVE_NATS_SERVICE_MAY_ACT_AS` |
//! | `user` | `--nats-user` | `CONCLAVE_NATS_USER` |
//! | `password` / `password_file` | `--nats-password` / `--nats-password-file` | `CONCLAVE_NATS_PASSWORD` / `CONCLAVE_NATS_PASSWORD_FILE` |
//! | `token` / `token_file` | `--nats-token` / `--nats-token-file` | `CONCLAVE_NATS_TOKEN` / `CONCLAVE_NATS_TOKEN_FILE` |
//! | `nkey_seed` / `nkey_seed_file` | `--nats-nkey-seed` / `--nats-nkey-seed-file` | `CONCLAVE_NATS_NKEY_SEED` / `CONCLAVE_NATS_NKEY_SEED_FILE` |
//! | `credentials_file` | `--nats-credentials-file` | `CONCLAVE_NATS_CREDENTIALS_FILE` |
//! | `tls_ca_file` | `--nats-tls-ca-file` | `CONCLAVE_NATS_TLS_CA_FILE` |
//! | `tls_cert_file`, `tls_key_file` | `--nats-tls-cert-file`, `--nats-tls-key-file` | `CONCLAVE_NATS_TLS_CERT_FILE`, `CONCLAVE_NATS_TLS_KEY_FILE` |
//! | `tls_required` (default: true if a TLS file is set) | `--nats-tls-required` | `CONCLAVE_NATS_TLS_REQUIRED` |
//!
//! A secret and its `_file` form at the same level (both flags, or both keys) are
//! refused; a flag beats a file key. The authentication keys (`user` to
//! `credentials_file`) go as a group: if any is given as a flag or in the environment,
//! those of the file are ignored, so a flag can switch from a token to a password. The
//! gateway refuses two ways of authenticating at once. `conclave nats setup` takes the
//! same connection flags.

use std::convert::Infallible;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use conclave_engine::service::Engine;
use conclave_gateway_nats::{
    redacted_url, setup_stream, start, NatsAuth, NatsConfig, NatsHandle, NatsTls, Secret,
    ServiceCredential, StatusReader, StreamOptions,
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
    /// Boxed: the connection flags would make `nats setup` the largest CLI command.
    #[command(flatten)]
    conn: Box<NatsConnFlags>,
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
            let (auth, tls) = (a.conn.auth(), a.conn.tls(&NatsFileKeys::default()));
            let shown = redacted_url(&a.url);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let out = rt
                .block_on(async {
                    tokio::time::timeout(
                        Duration::from_secs(15),
                        setup_stream(&a.url, &auth, &tls, &options),
                    )
                    .await
                })
                .map_err(|_| anyhow::anyhow!("no answer from {shown} in 15 s"))?
                .with_context(|| format!("setting up the stream on {shown}"))?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `[nats]` in the serve configuration file.
#[derive(Default, Clone, Deserialize)]
#[serde(try_from = "NatsFileKeys")]
pub struct NatsFile(NatsFileKeys);

#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsFileKeys {
    url: Option<String>,
    jetstream: Option<bool>,
    subject_prefix: Option<String>,
    server_id: Option<String>,
    service_name: Option<String>,
    service_token: Option<String>,
    service_token_file: Option<PathBuf>,
    service_may_act_as: Option<bool>,
    user: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    nkey_seed: Option<String>,
    nkey_seed_file: Option<PathBuf>,
    credentials_file: Option<PathBuf>,
    tls_ca_file: Option<PathBuf>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    tls_required: Option<bool>,
}

impl TryFrom<NatsFileKeys> for NatsFile {
    type Error = String;

    fn try_from(k: NatsFileKeys) -> Result<Self, String> {
        let pairs = [
            (
                "service_token",
                k.service_token.is_some(),
                k.service_token_file.is_some(),
            ),
            ("password", k.password.is_some(), k.password_file.is_some()),
            ("token", k.token.is_some(), k.token_file.is_some()),
            (
                "nkey_seed",
                k.nkey_seed.is_some(),
                k.nkey_seed_file.is_some(),
            ),
        ];
        for (key, inline, file) in pairs {
            if inline && file {
                return Err(format!("[nats] sets both {key} and {key}_file: keep one"));
            }
        }
        Ok(NatsFile(k))
    }
}

/// Secrets stay out of debug output.
impl fmt::Debug for NatsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsFile")
            .field("url", &self.0.url.as_deref().map(redacted_url))
            .finish_non_exhaustive()
    }
}

impl NatsFileKeys {
    fn auth(&self) -> NatsAuth {
        NatsAuth {
            user: self.user.clone(),
            password: secret(self.password.clone(), &self.password_file),
            token: secret(self.token.clone(), &self.token_file),
            nkey_seed: secret(self.nkey_seed.clone(), &self.nkey_seed_file),
            credentials_file: self.credentials_file.clone(),
        }
    }
}

fn secret(inline: Option<String>, file: &Option<PathBuf>) -> Option<Secret> {
    inline
        .map(Secret::Value)
        .or_else(|| file.clone().map(Secret::File))
}

/// A secret given on the command line or in the environment; not shown by `Debug`.
#[derive(Clone)]
pub struct SecretArg(String);

impl FromStr for SecretArg {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Infallible> {
        Ok(SecretArg(s.to_owned()))
    }
}

impl fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretArg(..)")
    }
}

fn secret_arg(inline: &Option<SecretArg>, file: &Option<PathBuf>) -> Option<Secret> {
    secret(inline.clone().map(|s| s.0), file)
}

/// How to connect to the NATS server: authentication and TLS (serve and setup).
#[derive(Debug, Default, Clone, Args)]
pub struct NatsConnFlags {
    /// User name on the NATS server (with --nats-password or --nats-password-file).
    #[arg(long, env = "CONCLAVE_NATS_USER")]
    nats_user: Option<String>,
    /// Password on the NATS server (prefer --nats-password-file: a flag shows in `ps`).
    #[arg(
        long,
        env = "CONCLAVE_NATS_PASSWORD",
        hide_env_values = true,
        conflicts_with = "nats_password_file"
    )]
    nats_password: Option<SecretArg>,
    /// File holding the password on the NATS server.
    #[arg(long, env = "CONCLAVE_NATS_PASSWORD_FILE")]
    nats_password_file: Option<PathBuf>,
    /// The NATS server's authorization token (not a Conclave service token).
    #[arg(
        long,
        env = "CONCLAVE_NATS_TOKEN",
        hide_env_values = true,
        conflicts_with = "nats_token_file"
    )]
    nats_token: Option<SecretArg>,
    /// File holding the NATS server's authorization token.
    #[arg(long, env = "CONCLAVE_NATS_TOKEN_FILE")]
    nats_token_file: Option<PathBuf>,
    /// A user nkey seed (`SU…`) to authenticate with.
    #[arg(
        long,
        env = "CONCLAVE_NATS_NKEY_SEED",
        hide_env_values = true,
        conflicts_with = "nats_nkey_seed_file"
    )]
    nats_nkey_seed: Option<SecretArg>,
    /// File holding a user nkey seed (as `nk -gen user` writes it).
    #[arg(long, env = "CONCLAVE_NATS_NKEY_SEED_FILE")]
    nats_nkey_seed_file: Option<PathBuf>,
    /// A NATS credentials file (user JWT and nkey seed, as `nsc` writes it).
    #[arg(long, env = "CONCLAVE_NATS_CREDENTIALS_FILE")]
    nats_credentials_file: Option<PathBuf>,
    /// PEM certificates to trust for the NATS server instead of the system's roots.
    #[arg(long, env = "CONCLAVE_NATS_TLS_CA_FILE")]
    nats_tls_ca_file: Option<PathBuf>,
    /// PEM client certificate for servers that verify clients (with --nats-tls-key-file).
    #[arg(long, env = "CONCLAVE_NATS_TLS_CERT_FILE")]
    nats_tls_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[arg(long, env = "CONCLAVE_NATS_TLS_KEY_FILE")]
    nats_tls_key_file: Option<PathBuf>,
    /// Refuse a NATS connection without TLS [default: true if a TLS file is set].
    #[arg(long, env = "CONCLAVE_NATS_TLS_REQUIRED")]
    nats_tls_required: Option<bool>,
}

impl NatsConnFlags {
    /// The flags' authentication; all of it or nothing beats the file's.
    fn auth(&self) -> NatsAuth {
        NatsAuth {
            user: self.nats_user.clone(),
            password: secret_arg(&self.nats_password, &self.nats_password_file),
            token: secret_arg(&self.nats_token, &self.nats_token_file),
            nkey_seed: secret_arg(&self.nats_nkey_seed, &self.nats_nkey_seed_file),
            credentials_file: self.nats_credentials_file.clone(),
        }
    }

    fn auth_over(&self, file: &NatsFileKeys) -> NatsAuth {
        let flags = self.auth();
        if flags == NatsAuth::default() {
            file.auth()
        } else {
            flags
        }
    }

    /// TLS, key by key (flag > file).
    fn tls(&self, file: &NatsFileKeys) -> NatsTls {
        let path = |flag: &Option<PathBuf>, key: &Option<PathBuf>| flag.clone().or(key.clone());
        NatsTls {
            ca_file: path(&self.nats_tls_ca_file, &file.tls_ca_file),
            cert_file: path(&self.nats_tls_cert_file, &file.tls_cert_file),
            key_file: path(&self.nats_tls_key_file, &file.tls_key_file),
            required: self.nats_tls_required.or(file.tls_required),
        }
    }
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
    #[arg(
        long,
        env = "CONCLAVE_NATS_SERVICE_TOKEN",
        hide_env_values = true,
        conflicts_with = "nats_service_token_file"
    )]
    nats_service_token: Option<SecretArg>,
    /// File holding the token services send in `Conclave-Token`.
    #[arg(long, env = "CONCLAVE_NATS_SERVICE_TOKEN_FILE")]
    nats_service_token_file: Option<PathBuf>,
    /// Let the service act as identities with `Conclave-Act-As` [default: false].
    #[arg(long, env = "CONCLAVE_NATS_SERVICE_MAY_ACT_AS")]
    nats_service_may_act_as: Option<bool>,
    #[command(flatten)]
    conn: NatsConnFlags,
}

impl NatsFlags {
    /// The gateway configuration, or `None` when no URL is configured. Secret files are
    /// read, and the whole checked, when the gateway starts.
    pub fn resolve(&self, file: &NatsFile, data_dir: &Path) -> Option<NatsConfig> {
        let file = &file.0;
        let url = self.nats_url.clone().or_else(|| file.url.clone())?;
        let mut c = NatsConfig::new(url, data_dir.join("nats").join("outbox-cursor"));
        c.auth = self.conn.auth_over(file);
        c.tls = self.conn.tls(file);
        if let Some(v) = self.nats_jetstream.or(file.jetstream) {
            c.jetstream = v;
        }
        if let Some(v) = pick(&self.nats_subject_prefix, &file.subject_prefix) {
            c.subject_prefix = v;
        }
        if let Some(v) = pick(&self.nats_server_id, &file.server_id) {
            c.server_id = v;
        }
        let token = secret_arg(&self.nats_service_token, &self.nats_service_token_file)
            .or_else(|| secret(file.service_token.clone(), &file.service_token_file));
        if let Some(token) = token {
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
    let url = redacted_url(&config.url);
    let handle = start(engine, config)
        .await
        .with_context(|| format!("starting the NATS gateway for {url}"))?;
    tracing::info!(%url, "NATS gateway started");
    let source: Arc<dyn StatusSource> = Arc::new(NatsStatusSource(handle.status_reader()));
    Ok(Some((handle, source)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        nats: NatsFlags,
    }

    #[derive(Parser)]
    struct Setup {
        #[command(flatten)]
        setup: SetupArgs,
    }

    fn flags(args: &[&str]) -> Result<NatsFlags, clap::Error> {
        Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied())).map(|c| c.nats)
    }

    fn file(toml_text: &str) -> Result<NatsFile, toml::de::Error> {
        #[derive(Deserialize)]
        struct Root {
            #[serde(default)]
            nats: NatsFile,
        }
        toml::from_str::<Root>(toml_text).map(|r| r.nats)
    }

    fn resolve(args: &[&str], toml_text: &str) -> NatsConfig {
        flags(args)
            .unwrap()
            .resolve(&file(toml_text).unwrap(), Path::new("/data"))
            .expect("a URL is configured")
    }

    #[test]
    fn authentication_and_tls_come_from_the_file() {
        let c = resolve(
            &[],
            r#"
            [nats]
            url = "tls://nats.example.org:4222"
            user = "conclave"
            password_file = "/etc/conclave/nats-password"
            tls_ca_file = "/etc/conclave/nats-ca.pem"
            tls_cert_file = "/etc/conclave/nats-client.pem"
            tls_key_file = "/etc/conclave/nats-client.key"
            service_token_file = "/etc/conclave/crm-token"
            "#,
        );
        assert_eq!(
            c.auth,
            NatsAuth {
                user: Some("conclave".into()),
                password: Some(Secret::File("/etc/conclave/nats-password".into())),
                ..Default::default()
            }
        );
        assert_eq!(
            c.tls,
            NatsTls {
                ca_file: Some("/etc/conclave/nats-ca.pem".into()),
                cert_file: Some("/etc/conclave/nats-client.pem".into()),
                key_file: Some("/etc/conclave/nats-client.key".into()),
                required: None,
            }
        );
        assert_eq!(
            c.credentials[0].token,
            Secret::File("/etc/conclave/crm-token".into())
        );
        assert_eq!(c.credentials[0].name, "nats");
    }

    #[test]
    fn every_way_to_authenticate_has_a_file_key() {
        let c = resolve(&[], "[nats]\nurl = \"nats://h\"\ntoken = \"tok\"");
        assert_eq!(c.auth.token, Some(Secret::Value("tok".into())));
        let c = resolve(&[], "[nats]\nurl = \"nats://h\"\ntoken_file = \"/t\"");
        assert_eq!(c.auth.token, Some(Secret::File("/t".into())));
        let c = resolve(&[], "[nats]\nurl = \"nats://h\"\nnkey_seed = \"SUX\"");
        assert_eq!(c.auth.nkey_seed, Some(Secret::Value("SUX".into())));
        let c = resolve(&[], "[nats]\nurl = \"nats://h\"\nnkey_seed_file = \"/s\"");
        assert_eq!(c.auth.nkey_seed, Some(Secret::File("/s".into())));
        let c = resolve(&[], "[nats]\nurl = \"nats://h\"\ncredentials_file = \"/c\"");
        assert_eq!(c.auth.credentials_file, Some("/c".into()));
        let c = resolve(&[], "[nats]\nurl = \"nats://h\"\ntls_required = true");
        assert_eq!(c.tls.required, Some(true));
    }

    #[test]
    fn a_secret_and_its_file_at_the_same_level_are_refused() {
        let e = file("[nats]\npassword = \"a\"\npassword_file = \"/p\"")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("both password and password_file"), "{e}");
        let e = file("[nats]\nservice_token = \"a\"\nservice_token_file = \"/p\"")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("both service_token and service_token_file"),
            "{e}"
        );
        assert!(file("[nats]\nunknown_key = 1").is_err());
        for (a, b) in [
            ("--nats-password=x", "--nats-password-file=/p"),
            ("--nats-token=x", "--nats-token-file=/p"),
            ("--nats-nkey-seed=x", "--nats-nkey-seed-file=/p"),
            ("--nats-service-token=x", "--nats-service-token-file=/p"),
        ] {
            let e = flags(&[a, b]).expect_err("conflicting flags");
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{a} {b}"
            );
        }
    }

    #[test]
    fn flags_beat_the_file_and_authentication_goes_as_a_group() {
        let toml_text = r#"
            [nats]
            url = "nats://file:4222"
            token = "file-token"
            tls_ca_file = "/file-ca.pem"
            tls_required = false
            service_token = "file-service-token"
        "#;
        let c = resolve(
            &[
                "--nats-url=nats://flag:4222",
                "--nats-user=conclave",
                "--nats-password-file=/pw",
                "--nats-tls-cert-file=/c.pem",
                "--nats-tls-key-file=/k.pem",
                "--nats-service-token-file=/st",
            ],
            toml_text,
        );
        assert_eq!(c.url, "nats://flag:4222");
        // The file's token is dropped: the flags chose user and password.
        assert_eq!(
            c.auth,
            NatsAuth {
                user: Some("conclave".into()),
                password: Some(Secret::File("/pw".into())),
                ..Default::default()
            }
        );
        // TLS key by key.
        assert_eq!(
            c.tls,
            NatsTls {
                ca_file: Some("/file-ca.pem".into()),
                cert_file: Some("/c.pem".into()),
                key_file: Some("/k.pem".into()),
                required: Some(false),
            }
        );
        assert_eq!(c.credentials[0].token, Secret::File("/st".into()));
        // Without authentication flags, the file's.
        let c = resolve(&[], toml_text);
        assert_eq!(c.auth.token, Some(Secret::Value("file-token".into())));
        assert_eq!(
            c.credentials[0].token,
            Secret::Value("file-service-token".into())
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let f = flags(&[
            "--nats-url=nats://u:hunter2@h:4222",
            "--nats-password=hunter2",
            "--nats-service-token=hunter2-service",
        ])
        .unwrap();
        let nats_file = file("[nats]\nurl = \"nats://u:hunter2@h\"\ntoken = \"hunter2\"").unwrap();
        let c = f.resolve(&nats_file, Path::new("/d")).unwrap();
        let shown = format!("{:?} {:?} {:?}", nats_file, c.auth, c.credentials);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(format!("{:?}", f.conn).contains("SecretArg(..)"));
    }

    #[test]
    fn setup_takes_the_same_connection_flags() {
        let s = Setup::try_parse_from([
            "setup",
            "--url=tls://h:4222",
            "--nats-nkey-seed-file=/seed",
            "--nats-tls-ca-file=/ca.pem",
        ])
        .unwrap()
        .setup;
        assert_eq!(
            s.conn.auth(),
            NatsAuth {
                nkey_seed: Some(Secret::File("/seed".into())),
                ..Default::default()
            }
        );
        assert_eq!(
            s.conn.tls(&NatsFileKeys::default()).ca_file,
            Some("/ca.pem".into())
        );
    }

    #[test]
    fn no_url_no_nats() {
        assert!(flags(&[])
            .unwrap()
            .resolve(&NatsFile::default(), Path::new("/d"))
            .is_none());
    }
}
