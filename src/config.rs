//! `conclave serve` configuration: a TOML file (optional), every key overridable by a
//! flag or a `CONCLAVE_*` environment variable (flag > env > file > default).
//!
//! | TOML key | flag | env |
//! | --- | --- | --- |
//! | `data_dir` | `--data-dir` | `CONCLAVE_DATA_DIR` |
//! | `log` | `--log` | `CONCLAVE_LOG` |
//! | `web.listen` | `--web-listen` | `CONCLAVE_WEB_LISTEN` |
//! | `web.admin_token` | `--admin-token` | `CONCLAVE_ADMIN_TOKEN` |
//! | `web.rate_entries_per_min` | `--rate-entries-per-min` | `CONCLAVE_RATE_ENTRIES_PER_MIN` |
//! | `web.rate_chat_per_min` | `--rate-chat-per-min` | `CONCLAVE_RATE_CHAT_PER_MIN` |
//! | `web.header_read_timeout_secs` | `--web-header-read-timeout-secs` | `CONCLAVE_WEB_HEADER_READ_TIMEOUT_SECS` |
//! | `web.body_read_timeout_secs` | `--web-body-read-timeout-secs` | `CONCLAVE_WEB_BODY_READ_TIMEOUT_SECS` |
//! | `web.idle_timeout_secs` | `--web-idle-timeout-secs` | `CONCLAVE_WEB_IDLE_TIMEOUT_SECS` |
//! | `web.max_connections` | `--web-max-connections` | `CONCLAVE_WEB_MAX_CONNECTIONS` |
//! | `web.max_connections_per_address` | `--web-max-connections-per-address` | `CONCLAVE_WEB_MAX_CONNECTIONS_PER_ADDRESS` |
//! | `web.trusted_proxies` | `--trusted-proxies a,b` | `CONCLAVE_TRUSTED_PROXIES` |
//! | `web.forwarded_header` | `--forwarded-header` | `CONCLAVE_FORWARDED_HEADER` |
//! | `web.cors_origins` | `--cors-origins a,b` | `CONCLAVE_CORS_ORIGINS` |
//! | `web.tls_cert` | `--tls-cert` | `CONCLAVE_TLS_CERT` |
//! | `web.tls_key` | `--tls-key` | `CONCLAVE_TLS_KEY` |
//! | `web.tls_self_signed` | `--tls-self-signed` | `CONCLAVE_TLS_SELF_SIGNED` |
//! | `web.stun_urls` | `--stun-urls a,b` | `CONCLAVE_STUN_URLS` |
//! | `web.turn_urls` | `--turn-urls a,b` | `CONCLAVE_TURN_URLS` |
//! | `web.turn_secret` | `--turn-secret` | `CONCLAVE_TURN_SECRET` |
//! | `web.turn_ttl_secs` | `--turn-ttl-secs` | `CONCLAVE_TURN_TTL_SECS` |
//! | `journal.sync` | `--journal-sync` | `CONCLAVE_JOURNAL_SYNC` |
//! | `engine.checkpoint_every` | `--checkpoint-every` | `CONCLAVE_CHECKPOINT_EVERY` |
//! | `engine.tick_interval_ms` | `--tick-interval-ms` | `CONCLAVE_TICK_INTERVAL_MS` |
//! | `engine.max_queued_commands` | `--max-queued-commands` | `CONCLAVE_MAX_QUEUED_COMMANDS` |
//! | `policy.<key>` | `--<key with dashes>` | `CONCLAVE_<KEY>` |
//! | `smtp.*`, `web.public_url` | see `mail_cmd` | |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use conclave_engine::{AutobanPolicy, Policy};
use conclave_journal::SyncMode;
use serde::Deserialize;

/// Journal sync mode as written in configuration: `always`, `batch:<ms>` or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSpec(pub SyncMode);

impl FromStr for SyncSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(SyncSpec(SyncMode::Always)),
            "none" => Ok(SyncSpec(SyncMode::None)),
            _ => match s.strip_prefix("batch:").map(str::parse::<u64>) {
                Some(Ok(ms)) if ms > 0 && ms <= 60_000 => Ok(SyncSpec(SyncMode::Batch {
                    max_delay: Duration::from_millis(ms),
                })),
                _ => Err(format!(
                    "{s:?} is not a sync mode: use always, none or batch:<1..=60000 ms>"
                )),
            },
        }
    }
}

impl<'de> Deserialize<'de> for SyncSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The file form; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    data_dir: Option<PathBuf>,
    log: Option<String>,
    #[serde(default)]
    web: WebFile,
    #[serde(default)]
    journal: JournalFile,
    #[serde(default)]
    engine: EngineFile,
    #[serde(default)]
    policy: PolicyKeys,
    #[serde(default)]
    nats: crate::nats_cmd::NatsFile,
    #[serde(default)]
    sip: crate::sip_cmd::SipFile,
    #[serde(default)]
    media: crate::sip_cmd::MediaFile,
    #[serde(default)]
    xmpp: crate::xmpp_cmd::XmppFile,
    #[serde(default)]
    webrtc: crate::webrtc_cmd::WebrtcFile,
    #[serde(default)]
    smtp: crate::mail_cmd::SmtpFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebFile {
    listen: Option<SocketAddr>,
    admin_token: Option<String>,
    rate_entries_per_min: Option<u32>,
    rate_chat_per_min: Option<u32>,
    header_read_timeout_secs: Option<u64>,
    body_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    trusted_proxies: Option<Vec<String>>,
    forwarded_header: Option<String>,
    cors_origins: Option<Vec<String>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_self_signed: Option<bool>,
    stun_urls: Option<Vec<String>>,
    turn_urls: Option<Vec<String>>,
    turn_secret: Option<String>,
    turn_ttl_secs: Option<u64>,
    public_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalFile {
    sync: Option<SyncSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineFile {
    checkpoint_every: Option<u64>,
    tick_interval_ms: Option<u64>,
    max_queued_commands: Option<usize>,
}

/// Policy keys: the same names in `[policy]`, as flags and as env vars.
#[derive(Debug, Default, Clone, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct PolicyKeys {
    /// Sessions on the whole server at once (Mumble max-users) [default: 100].
    #[arg(long, env = "CONCLAVE_MAX_USERS")]
    pub max_users: Option<u32>,
    /// Cap on members of any room (VROOM max_members) [default: 100].
    #[arg(long, env = "CONCLAVE_MAX_MEMBERS")]
    pub max_members: Option<u32>,
    /// How deep rooms nest (Mumble channel-nesting-limit) [default: 10].
    #[arg(long, env = "CONCLAVE_NESTING_LIMIT")]
    pub nesting_limit: Option<u32>,
    /// Longest chat message in characters, at most 12000 [default: 5000].
    #[arg(long, env = "CONCLAVE_TEXT_MESSAGE_LENGTH")]
    pub text_message_length: Option<u32>,
    /// Longest image message in bytes [default: 131072].
    #[arg(long, env = "CONCLAVE_IMAGE_MESSAGE_LENGTH")]
    pub image_message_length: Option<u32>,
    /// Keep HTML in chat (true|false) [default: false].
    #[arg(long, env = "CONCLAVE_ALLOW_HTML")]
    pub allow_html: Option<bool>,
    /// Failed joins that trigger an autoban; 0 disables [default: 10].
    #[arg(long, env = "CONCLAVE_AUTOBAN_ATTEMPTS")]
    pub autoban_attempts: Option<u32>,
    /// Autoban window in seconds [default: 120].
    #[arg(long, env = "CONCLAVE_AUTOBAN_TIMEFRAME_SECS")]
    pub autoban_timeframe_secs: Option<u32>,
    /// Autoban duration in seconds [default: 300].
    #[arg(long, env = "CONCLAVE_AUTOBAN_DURATION_SECS")]
    pub autoban_duration_secs: Option<u32>,
    /// Store keyed hashes instead of remote addresses (true|false) [default: true].
    #[arg(long, env = "CONCLAVE_OBFUSCATE_IPS")]
    pub obfuscate_ips: Option<bool>,
    /// Days personal content is kept; 0 forever, -1 none [default: 31].
    #[arg(long, env = "CONCLAVE_LOG_DAYS", allow_negative_numbers = true)]
    pub log_days: Option<i32>,
    /// Names usable but not reservable, comma-separated (VROOM common_names).
    #[arg(long, env = "CONCLAVE_COMMON_NAMES", value_delimiter = ',')]
    pub common_names: Option<Vec<String>>,
    /// Seconds a session lives without a renewal from its gateway; 0: no leases
    /// [default: 300].
    #[arg(long, env = "CONCLAVE_SESSION_LEASE_SECS")]
    pub session_lease_secs: Option<u32>,
    /// Sessions one identity may hold at once across rooms; 0 no limit [default: 16].
    #[arg(long, env = "CONCLAVE_MAX_SESSIONS_PER_IDENTITY")]
    pub max_sessions_per_identity: Option<u32>,
    /// Minutes of inactivity before an unreserved room expires; 0 never [default: 60].
    #[arg(long, env = "CONCLAVE_INACTIVITY_TIMEOUT_MINS")]
    pub inactivity_timeout_mins: Option<u32>,
    /// Same for reserved rooms [default: 86400].
    #[arg(long, env = "CONCLAVE_RESERVED_INACTIVITY_TIMEOUT_MINS")]
    pub reserved_inactivity_timeout_mins: Option<u32>,
    /// Default invitation lifetime in seconds [default: 604800].
    #[arg(long, env = "CONCLAVE_INVITATION_TTL_SECS")]
    pub invitation_ttl_secs: Option<u32>,
    /// Longest ban or kick reason in characters, at most 4000 [default: 500].
    #[arg(long, env = "CONCLAVE_MAX_REASON_LEN")]
    pub max_reason_len: Option<u32>,
    /// Whether guests (identities not linked to an account) may create rooms
    /// (true|false) [default: true].
    #[arg(long, env = "CONCLAVE_GUESTS_MAY_CREATE")]
    pub guests_may_create: Option<bool>,
    /// Admit only identities linked to an enabled account: no guest joins, knocks or
    /// creates a room (true|false; Mumble's certrequired, by account) [default: false].
    #[arg(long, env = "CONCLAVE_ACCOUNTS_ONLY")]
    pub accounts_only: Option<bool>,
    /// Server welcome text (initial value; later changed through the API).
    #[arg(long, env = "CONCLAVE_WELCOME_TEXT")]
    pub welcome_text: Option<String>,
    /// Server password in plaintext, hashed with argon2 at start (initial value).
    #[arg(long, env = "CONCLAVE_SERVER_PASSWORD", hide_env_values = true)]
    pub server_password: Option<String>,
    /// Key for obfuscating addresses, 64 hex characters [default: generated and kept
    /// in <data-dir>/ip-key].
    #[arg(long, env = "CONCLAVE_IP_KEY", hide_env_values = true)]
    pub ip_key: Option<String>,
}

/// Flags of `conclave serve` (each also read from its env var).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TOML configuration file (optional; see docs/api.md for the keys).
    #[arg(long, env = "CONCLAVE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory: journal/, projections/, admin-token, ip-key [default: ./data].
    #[arg(long, env = "CONCLAVE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log filter (tracing env-filter syntax) [default: info].
    #[arg(long, env = "CONCLAVE_LOG")]
    pub log: Option<String>,
    /// Address of the REST API [default: 127.0.0.1:8080].
    #[arg(long, env = "CONCLAVE_WEB_LISTEN")]
    pub web_listen: Option<SocketAddr>,
    /// Admin bearer token [default: generated on first start, kept in
    /// <data-dir>/admin-token (mode 0600) and printed once].
    #[arg(long, env = "CONCLAVE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Room entries (create, join, knock, call, invitation answers) per minute from one
    /// remote address; 0 no limit [default: 600].
    #[arg(long, env = "CONCLAVE_RATE_ENTRIES_PER_MIN")]
    pub rate_entries_per_min: Option<u32>,
    /// Chat messages per minute from one remote address; 0 no limit [default: 1200].
    #[arg(long, env = "CONCLAVE_RATE_CHAT_PER_MIN")]
    pub rate_chat_per_min: Option<u32>,
    /// Seconds for a request's head to arrive (from the TCP accept for a connection's
    /// first request, TLS handshake included) [default: 10].
    #[arg(long, env = "CONCLAVE_WEB_HEADER_READ_TIMEOUT_SECS")]
    pub web_header_read_timeout_secs: Option<u64>,
    /// Seconds for a request's whole body to arrive after its head [default: 30].
    #[arg(long, env = "CONCLAVE_WEB_BODY_READ_TIMEOUT_SECS")]
    pub web_body_read_timeout_secs: Option<u64>,
    /// Seconds a kept-alive connection may wait for its next request, or a peer leave
    /// our writes unread [default: 60].
    #[arg(long, env = "CONCLAVE_WEB_IDLE_TIMEOUT_SECS")]
    pub web_idle_timeout_secs: Option<u64>,
    /// Connections the REST API holds at once; more are closed at once [default: 4096].
    #[arg(long, env = "CONCLAVE_WEB_MAX_CONNECTIONS")]
    pub web_max_connections: Option<usize>,
    /// Connections one client address holds at once (a trusted proxy is not held to
    /// it) [default: 256].
    #[arg(long, env = "CONCLAVE_WEB_MAX_CONNECTIONS_PER_ADDRESS")]
    pub web_max_connections_per_address: Option<usize>,
    /// Reverse proxies (addresses or CIDR networks, comma-separated) whose forwarding
    /// header names the client [default: none].
    #[arg(long, env = "CONCLAVE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
    /// The header trusted proxies write: x-forwarded-for | forwarded (RFC 7239)
    /// [default: x-forwarded-for].
    #[arg(long, env = "CONCLAVE_FORWARDED_HEADER")]
    pub forwarded_header: Option<String>,
    /// Origins whose pages may call the API (CORS), comma-separated, e.g.
    /// https://app.example.org; * for any [default: none, same origin only].
    #[arg(long, env = "CONCLAVE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// TLS certificate chain (PEM) of the REST API; with --tls-key.
    #[arg(long, env = "CONCLAVE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of the REST API; with --tls-cert.
    #[arg(long, env = "CONCLAVE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate made at start, for trying TLS out
    /// (its SHA-256 fingerprint is printed) [default: false].
    #[arg(long, env = "CONCLAVE_TLS_SELF_SIGNED", num_args = 0..=1, default_missing_value = "true")]
    pub tls_self_signed: Option<bool>,
    /// STUN servers given to browsers (stun:/stuns: URLs, comma-separated)
    /// [default: none; loopback and LAN need none].
    #[arg(long, env = "CONCLAVE_STUN_URLS", value_delimiter = ',')]
    pub stun_urls: Option<Vec<String>>,
    /// TURN servers given to browsers (turn:/turns: URLs, comma-separated), with
    /// time-limited REST credentials made from --turn-secret [default: none].
    #[arg(long, env = "CONCLAVE_TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Option<Vec<String>>,
    /// The secret shared with the TURN servers (coturn use-auth-secret /
    /// static-auth-secret); needed with --turn-urls.
    #[arg(long, env = "CONCLAVE_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// Lifetime of a TURN credential in seconds, 60..=2592000 [default: 86400].
    #[arg(long, env = "CONCLAVE_TURN_TTL_SECS")]
    pub turn_ttl_secs: Option<u64>,
    /// Journal sync mode: always | batch:<ms> | none [default: always].
    #[arg(long, env = "CONCLAVE_JOURNAL_SYNC")]
    pub journal_sync: Option<SyncSpec>,
    /// Records between state checkpoints [default: 10000].
    #[arg(long, env = "CONCLAVE_CHECKPOINT_EVERY")]
    pub checkpoint_every: Option<u64>,
    /// The longest the engine waits without re-reading its clock and looking for the next
    /// expiry, in milliseconds; a safety net only: expiry comes at its deadline
    /// [default: 1000].
    #[arg(long, env = "CONCLAVE_TICK_INTERVAL_MS")]
    pub tick_interval_ms: Option<u64>,
    /// Commands that may wait for the engine at once, from every gateway; one more is
    /// refused at once as busy (503 with Retry-After) [default: 16384].
    #[arg(long, env = "CONCLAVE_MAX_QUEUED_COMMANDS")]
    pub max_queued_commands: Option<usize>,
    #[command(flatten)]
    pub policy: PolicyKeys,
    #[command(flatten)]
    pub nats: crate::nats_cmd::NatsFlags,
    #[command(flatten)]
    pub sip: crate::sip_cmd::SipFlags,
    #[command(flatten)]
    pub xmpp: crate::xmpp_cmd::XmppFlags,
    #[command(flatten)]
    pub webrtc: crate::webrtc_cmd::WebrtcFlags,
    #[command(flatten)]
    pub smtp: crate::mail_cmd::SmtpFlags,
}

/// The merged configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub log: String,
    pub web_listen: SocketAddr,
    pub admin_token: Option<String>,
    /// Per-address rate limits of the web gateway.
    pub rates: conclave_gateway_web::RateSettings,
    /// The web listener: timeouts, connection cap, trusted proxies, CORS, TLS.
    pub web: WebConfig,
    pub sync: SyncMode,
    pub checkpoint_every: u64,
    pub tick_interval: Duration,
    pub max_queued_commands: usize,
    /// Policy with everything but the server password hash filled in.
    pub policy: Policy,
    pub server_password: Option<String>,
    pub ip_key: Option<[u8; 32]>,
    /// The NATS gateway, if a URL is configured (see docs/nats.md).
    pub nats: Option<conclave_gateway_nats::NatsConfig>,
    /// The SIP gateway and media node, unless turned off (see `sip_cmd`).
    pub sip: Option<crate::sip_cmd::SipSettings>,
    /// The XMPP component, if a component domain is configured (see docs/xmpp.md).
    pub xmpp: Option<crate::xmpp_cmd::XmppSettings>,
    /// The WebRTC SFU for browsers, unless turned off (see `webrtc_cmd`).
    pub webrtc: Option<conclave_media::SfuConfig>,
    /// Email through an SMTP relay, if one is configured (see `mail_cmd`).
    pub mail: Option<conclave_gateway_web::MailSettings>,
}

/// Where the web listener's TLS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// Plain HTTP.
    None,
    /// A certificate chain and key in PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate made at start.
    SelfSigned,
}

/// The web listener's settings (TLS is loaded by `serve`).
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub trusted_proxies: conclave_gateway_web::TrustedProxies,
    pub cors: conclave_gateway_web::CorsSettings,
    pub tls: TlsSource,
    /// ICE servers (STUN, TURN with REST credentials) for the page's peer connections.
    pub ice: conclave_gateway_web::IceSettings,
}

impl WebConfig {
    fn load(args: &ServeArgs, file: &WebFile) -> anyhow::Result<WebConfig> {
        let secs = |flag: Option<u64>, file: Option<u64>, default: u64, key: &str, max: u64| {
            let v = pick(flag, file, default);
            if !(1..=max).contains(&v) {
                bail!(
                    "web.{key} (--web-{}): must be 1..={max}",
                    key.replace('_', "-")
                );
            }
            Ok(Duration::from_secs(v))
        };
        let d = conclave_gateway_web::TransportSettings::default();
        let header_read_timeout = secs(
            args.web_header_read_timeout_secs,
            file.header_read_timeout_secs,
            d.header_read_timeout.as_secs(),
            "header_read_timeout_secs",
            3600,
        )?;
        let body_read_timeout = secs(
            args.web_body_read_timeout_secs,
            file.body_read_timeout_secs,
            d.body_read_timeout.as_secs(),
            "body_read_timeout_secs",
            3600,
        )?;
        let idle_timeout = secs(
            args.web_idle_timeout_secs,
            file.idle_timeout_secs,
            d.idle_timeout.as_secs(),
            "idle_timeout_secs",
            86_400,
        )?;
        let max_connections = pick(
            args.web_max_connections,
            file.max_connections,
            d.max_connections,
        );
        if !(1..=1_000_000).contains(&max_connections) {
            bail!("web.max_connections (--web-max-connections): must be 1..=1000000");
        }
        let max_connections_per_address = pick(
            args.web_max_connections_per_address,
            file.max_connections_per_address,
            d.max_connections_per_address,
        );
        if !(1..=1_000_000).contains(&max_connections_per_address) {
            bail!(
                "web.max_connections_per_address (--web-max-connections-per-address): must be 1..=1000000"
            );
        }
        let header = args
            .forwarded_header
            .as_deref()
            .or(file.forwarded_header.as_deref())
            .map(str::parse::<conclave_gateway_web::ForwardedHeader>)
            .transpose()
            .context("web.forwarded_header (--forwarded-header)")?
            .unwrap_or_default();
        let proxies = pick(
            args.trusted_proxies.clone(),
            file.trusted_proxies.clone(),
            Vec::new(),
        );
        let trusted_proxies = conclave_gateway_web::TrustedProxies::parse(&proxies, header)
            .context("web.trusted_proxies (--trusted-proxies)")?;
        let origins = pick(
            args.cors_origins.clone(),
            file.cors_origins.clone(),
            Vec::new(),
        );
        let cors = conclave_gateway_web::CorsSettings::new(&origins)
            .context("web.cors_origins (--cors-origins)")?;
        let cert = args.tls_cert.clone().or(file.tls_cert.clone());
        let key = args.tls_key.clone().or(file.tls_key.clone());
        let self_signed = pick(args.tls_self_signed, file.tls_self_signed, false);
        let tls = match (cert, key, self_signed) {
            (None, None, false) => TlsSource::None,
            (None, None, true) => TlsSource::SelfSigned,
            (Some(cert), Some(key), false) => TlsSource::Files { cert, key },
            (Some(_), Some(_), true) => bail!(
                "web.tls_self_signed (--tls-self-signed): not together with web.tls_cert and web.tls_key"
            ),
            (Some(_), None, _) => bail!("web.tls_cert (--tls-cert): needs web.tls_key (--tls-key)"),
            (None, Some(_), _) => bail!("web.tls_key (--tls-key): needs web.tls_cert (--tls-cert)"),
        };
        let ice = conclave_gateway_web::IceSettings::new(
            pick(args.stun_urls.clone(), file.stun_urls.clone(), Vec::new()),
            pick(args.turn_urls.clone(), file.turn_urls.clone(), Vec::new()),
            args.turn_secret.clone().or(file.turn_secret.clone()),
            args.turn_ttl_secs
                .or(file.turn_ttl_secs)
                .map(Duration::from_secs),
        )
        .context("web.stun_urls / web.turn_urls / web.turn_secret / web.turn_ttl_secs")?;
        Ok(WebConfig {
            ice,
            header_read_timeout,
            body_read_timeout,
            idle_timeout,
            max_connections,
            max_connections_per_address,
            trusted_proxies,
            cors,
            tls,
        })
    }
}

fn parse_file(path: &Path) -> anyhow::Result<File> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "bad configuration in {}: {}",
            path.display(),
            e.to_string().trim_end()
        )
    })
}

/// Later wins: `a.or(b)` where `a` is the higher-priority value.
/// Highest `text_message_length`: 4 bytes a character stays under the journal's
/// default 64 KiB record limit with room for the record's other fields.
const MAX_TEXT_CHARS: u32 = 12_000;
/// Highest `max_reason_len`, on the same grounds.
const MAX_REASON_CHARS: u32 = 4_000;

fn pick<T>(flag: Option<T>, file: Option<T>, default: T) -> T {
    flag.or(file).unwrap_or(default)
}

pub fn parse_hex_key(s: &str) -> anyhow::Result<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("ip_key: expected 64 hex characters");
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(chunk).context("ip_key: not ASCII")?;
        out[i] = u8::from_str_radix(pair, 16).context("ip_key: not hex")?;
    }
    Ok(out)
}

impl Config {
    /// Merges defaults, the file and the flags/env (clap has merged those two already).
    pub fn load(args: &ServeArgs) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(p) => parse_file(p)?,
            None => File::default(),
        };
        let d = Policy::default();
        let (f, a) = (&file.policy, &args.policy);
        let policy = Policy {
            max_users: pick(a.max_users, f.max_users, d.max_users),
            max_members: pick(a.max_members, f.max_members, d.max_members),
            nesting_limit: pick(a.nesting_limit, f.nesting_limit, d.nesting_limit),
            text_message_length: pick(
                a.text_message_length,
                f.text_message_length,
                d.text_message_length,
            ),
            image_message_length: pick(
                a.image_message_length,
                f.image_message_length,
                d.image_message_length,
            ),
            allow_html: pick(a.allow_html, f.allow_html, d.allow_html),
            autoban: AutobanPolicy {
                attempts: pick(a.autoban_attempts, f.autoban_attempts, d.autoban.attempts),
                timeframe_secs: pick(
                    a.autoban_timeframe_secs,
                    f.autoban_timeframe_secs,
                    d.autoban.timeframe_secs,
                ),
                duration_secs: pick(
                    a.autoban_duration_secs,
                    f.autoban_duration_secs,
                    d.autoban.duration_secs,
                ),
            },
            obfuscate_ips: pick(a.obfuscate_ips, f.obfuscate_ips, d.obfuscate_ips),
            log_days: pick(a.log_days, f.log_days, d.log_days),
            common_names: pick(
                a.common_names.clone(),
                f.common_names.clone(),
                d.common_names.clone(),
            ),
            inactivity_timeout_mins: pick(
                a.inactivity_timeout_mins,
                f.inactivity_timeout_mins,
                d.inactivity_timeout_mins,
            ),
            reserved_inactivity_timeout_mins: pick(
                a.reserved_inactivity_timeout_mins,
                f.reserved_inactivity_timeout_mins,
                d.reserved_inactivity_timeout_mins,
            ),
            invitation_ttl_secs: pick(
                a.invitation_ttl_secs,
                f.invitation_ttl_secs,
                d.invitation_ttl_secs,
            ),
            server_password_hash: None,
            welcome_text: pick(
                a.welcome_text.clone(),
                f.welcome_text.clone(),
                d.welcome_text.clone(),
            ),
            max_reason_len: pick(a.max_reason_len, f.max_reason_len, d.max_reason_len),
            guests_may_create: pick(
                a.guests_may_create,
                f.guests_may_create,
                d.guests_may_create,
            ),
            accounts_only: pick(a.accounts_only, f.accounts_only, d.accounts_only),
            session_lease_secs: pick(
                a.session_lease_secs,
                f.session_lease_secs,
                conclave_engine::policy::DEFAULT_SESSION_LEASE_SECS,
            ),
            max_sessions_per_identity: pick(
                a.max_sessions_per_identity,
                f.max_sessions_per_identity,
                conclave_engine::policy::DEFAULT_MAX_SESSIONS_PER_IDENTITY,
            ),
            ..d
        };
        if policy.max_users == 0 {
            bail!("policy.max_users (--max-users): must be at least 1");
        }
        if policy.max_members == 0 {
            bail!("policy.max_members (--max-members): must be at least 1");
        }
        if !(-1..=36_500).contains(&policy.log_days) {
            bail!("policy.log_days (--log-days): must be -1..=36500");
        }
        // A chat message or welcome text is one journal record; at up to four bytes a
        // character it must fit the journal's record limit with room for the rest.
        if !(1..=MAX_TEXT_CHARS).contains(&policy.text_message_length) {
            bail!(
                "policy.text_message_length (--text-message-length): must be 1..={MAX_TEXT_CHARS}"
            );
        }
        if !(1..=MAX_REASON_CHARS).contains(&policy.max_reason_len) {
            bail!("policy.max_reason_len (--max-reason-len): must be 1..={MAX_REASON_CHARS}");
        }
        let ip_key = a
            .ip_key
            .as_deref()
            .or(f.ip_key.as_deref())
            .map(parse_hex_key)
            .transpose()
            .context("policy.ip_key (--ip-key)")?;
        let server_password = a.server_password.clone().or(f.server_password.clone());
        if server_password.as_deref() == Some("") {
            bail!("policy.server_password (--server-password): must not be empty (leave it out for none)");
        }
        let admin_token = args.admin_token.clone().or(file.web.admin_token.clone());
        if admin_token.as_deref().is_some_and(|t| t.len() < 16) {
            bail!("web.admin_token (--admin-token): must be at least 16 characters");
        }
        let checkpoint_every = pick(args.checkpoint_every, file.engine.checkpoint_every, 10_000);
        if checkpoint_every == 0 {
            bail!("engine.checkpoint_every (--checkpoint-every): must be at least 1");
        }
        let tick_ms = pick(args.tick_interval_ms, file.engine.tick_interval_ms, 1000);
        if !(10..=3_600_000).contains(&tick_ms) {
            bail!("engine.tick_interval_ms (--tick-interval-ms): must be 10..=3600000");
        }
        let max_queued_commands = pick(
            args.max_queued_commands,
            file.engine.max_queued_commands,
            conclave_engine::service::DEFAULT_MAX_QUEUED_COMMANDS,
        );
        if !(1..=1_000_000).contains(&max_queued_commands) {
            bail!("engine.max_queued_commands (--max-queued-commands): must be 1..=1000000");
        }
        let data_dir = pick(
            args.data_dir.clone(),
            file.data_dir.clone(),
            PathBuf::from("./data"),
        );
        let nats = args.nats.resolve(&file.nats, &data_dir);
        let sip = args.sip.resolve(&file.sip, &file.media)?;
        let xmpp = args.xmpp.resolve(&file.xmpp)?;
        let webrtc = args.webrtc.resolve(&file.webrtc)?;
        let web = WebConfig::load(args, &file.web)?;
        let web_listen = pick(
            args.web_listen,
            file.web.listen,
            SocketAddr::from(([127, 0, 0, 1], 8080)),
        );
        let mail = args.smtp.resolve(
            &file.smtp,
            file.web.public_url.clone(),
            web_listen,
            web.tls != TlsSource::None,
        )?;
        Ok(Config {
            data_dir,
            log: pick(args.log.clone(), file.log, "info".to_owned()),
            web_listen,
            admin_token,
            rates: {
                let d = conclave_gateway_web::RateSettings::default();
                conclave_gateway_web::RateSettings {
                    entries_per_min: pick(
                        args.rate_entries_per_min,
                        file.web.rate_entries_per_min,
                        d.entries_per_min,
                    ),
                    chat_per_min: pick(
                        args.rate_chat_per_min,
                        file.web.rate_chat_per_min,
                        d.chat_per_min,
                    ),
                }
            },
            web,
            sync: pick(
                args.journal_sync,
                file.journal.sync,
                SyncSpec(SyncMode::Always),
            )
            .0,
            checkpoint_every,
            tick_interval: Duration::from_millis(tick_ms),
            max_queued_commands,
            policy,
            server_password,
            ip_key,
            nats,
            sip,
            xmpp,
            webrtc,
            mail,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn args(extra: &[&str]) -> ServeArgs {
        let mut v = vec!["x"];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v).unwrap().serve
    }

    fn write(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        let s = p.to_string_lossy().into_owned();
        (dir, s)
    }

    #[test]
    fn defaults_follow_the_seeds() {
        let c = Config::load(&args(&[])).unwrap();
        assert_eq!(c.web_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        // The engine's defaults, but for the two a server needs and pure decisions do not.
        let expected = Policy {
            session_lease_secs: conclave_engine::policy::DEFAULT_SESSION_LEASE_SECS,
            max_sessions_per_identity: conclave_engine::policy::DEFAULT_MAX_SESSIONS_PER_IDENTITY,
            ..Policy::default()
        };
        assert_eq!(c.policy, expected);
        assert_eq!(c.sync, SyncMode::Always);
    }

    #[test]
    fn flags_beat_the_file() {
        let (_d, p) = write(
            "data_dir = \"/tmp/x\"\n[web]\nlisten = \"127.0.0.1:9000\"\n[policy]\nmax_users = 7\nnesting_limit = 3\ncommon_names = [\"a\"]\n[journal]\nsync = \"batch:5\"\n",
        );
        let c = Config::load(&args(&[
            "--config",
            &p,
            "--max-users",
            "9",
            "--log-days",
            "-1",
        ]))
        .unwrap();
        assert_eq!(c.policy.max_users, 9);
        assert_eq!(c.policy.nesting_limit, 3);
        assert_eq!(c.policy.log_days, -1);
        assert_eq!(c.policy.common_names, vec!["a".to_owned()]);
        assert_eq!(c.web_listen.port(), 9000);
        assert_eq!(
            c.sync,
            SyncMode::Batch {
                max_delay: Duration::from_millis(5)
            }
        );
    }

    #[test]
    fn the_engine_queue_bound_is_a_setting() {
        let c = Config::load(&args(&[])).unwrap();
        assert_eq!(
            c.max_queued_commands,
            conclave_engine::service::DEFAULT_MAX_QUEUED_COMMANDS
        );
        let (_d, p) = write("[engine]\nmax_queued_commands = 64\n");
        assert_eq!(
            Config::load(&args(&["--config", &p]))
                .unwrap()
                .max_queued_commands,
            64
        );
        let c = Config::load(&args(&["--config", &p, "--max-queued-commands", "8"])).unwrap();
        assert_eq!(c.max_queued_commands, 8);
        let e = format!(
            "{:#}",
            Config::load(&args(&["--max-queued-commands", "0"])).unwrap_err()
        );
        assert!(e.contains("engine.max_queued_commands"), "{e}");
    }

    #[test]
    fn bad_configs_name_the_key() {
        let (_d, p) = write("[policy]\nmax_userz = 7\n");
        let e = format!("{:#}", Config::load(&args(&["--config", &p])).unwrap_err());
        assert!(e.contains("max_userz"), "{e}");
        let (_d, p) = write("[policy]\nmax_users = \"many\"\n");
        let e = format!("{:#}", Config::load(&args(&["--config", &p])).unwrap_err());
        assert!(e.contains("max_users"), "{e}");
        let (_d, p) = write("[journal]\nsync = \"sometimes\"\n");
        let e = format!("{:#}", Config::load(&args(&["--config", &p])).unwrap_err());
        assert!(e.contains("sync") && e.contains("sometimes"), "{e}");
        let e = format!(
            "{:#}",
            Config::load(&args(&["--max-users", "0"])).unwrap_err()
        );
        assert!(e.contains("max_users"), "{e}");
        let e = format!(
            "{:#}",
            Config::load(&args(&["--text-message-length", "100000"])).unwrap_err()
        );
        assert!(e.contains("text_message_length"), "{e}");
        let e = format!(
            "{:#}",
            Config::load(&args(&["--ip-key", "xyz"])).unwrap_err()
        );
        assert!(e.contains("ip_key"), "{e}");
        let e = format!(
            "{:#}",
            Config::load(&args(&["--config", "/nonexistent/c.toml"])).unwrap_err()
        );
        assert!(e.contains("/nonexistent/c.toml"), "{e}");
    }

    #[test]
    fn ice_servers_from_file_and_flags() {
        let c = Config::load(&args(&[])).unwrap();
        assert_eq!(c.web.ice, conclave_gateway_web::IceSettings::default());
        let (_d, path) = write(
            "[web]\nstun_urls = [\"stun:stun.example.org:3478\"]\nturn_urls = [\"turn:turn.example.org\"]\nturn_secret = \"north\"\n",
        );
        let c = Config::load(&args(&["--config", &path, "--turn-ttl-secs", "600"])).unwrap();
        assert_eq!(c.web.ice.stun_urls, ["stun:stun.example.org:3478"]);
        assert_eq!(c.web.ice.turn_ttl, Some(Duration::from_secs(600)));
        let v = c.web.ice.servers("web-1", 1000);
        assert_eq!(v[1]["username"], "1600:web-1");
        let e = Config::load(&args(&["--turn-urls", "turn:x"])).unwrap_err();
        assert!(format!("{e:#}").contains("TURN secret"), "{e:#}");
    }

    #[test]
    fn web_transport_settings() {
        let c = Config::load(&args(&[])).unwrap();
        assert_eq!(c.web.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.web.body_read_timeout, Duration::from_secs(30));
        assert_eq!(c.web.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.web.max_connections, 4096);
        assert!(c.web.trusted_proxies.nets.is_empty());
        assert!(!c.web.cors.enabled());
        assert_eq!(c.web.tls, TlsSource::None);
        let (_d, p) = write(
            "[web]\nheader_read_timeout_secs = 2\nmax_connections = 9\ntrusted_proxies = [\"10.0.0.0/8\"]\nforwarded_header = \"forwarded\"\ncors_origins = [\"https://app.example\"]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
        );
        let c = Config::load(&args(&[
            "--config",
            &p,
            "--web-max-connections",
            "5",
            "--trusted-proxies",
            "127.0.0.1,::1",
        ]))
        .unwrap();
        assert_eq!(c.web.header_read_timeout, Duration::from_secs(2));
        assert_eq!(c.web.max_connections, 5);
        assert_eq!(c.web.trusted_proxies.nets.len(), 2);
        assert!(c.web.trusted_proxies.trusts("::1".parse().unwrap()));
        assert!(!c.web.trusted_proxies.trusts("10.1.1.1".parse().unwrap()));
        assert_eq!(
            c.web.trusted_proxies.header,
            conclave_gateway_web::ForwardedHeader::Forwarded
        );
        assert!(c.web.cors.enabled());
        assert_eq!(
            c.web.tls,
            TlsSource::Files {
                cert: "c.pem".into(),
                key: "k.pem".into()
            }
        );
        let c = Config::load(&args(&["--tls-self-signed"])).unwrap();
        assert_eq!(c.web.tls, TlsSource::SelfSigned);
        let c = Config::load(&args(&["--tls-self-signed=false"])).unwrap();
        assert_eq!(c.web.tls, TlsSource::None);
    }

    #[test]
    fn bad_web_settings_name_the_key() {
        for (flags, key) in [
            (
                &["--web-header-read-timeout-secs", "0"][..],
                "header_read_timeout_secs",
            ),
            (
                &["--web-idle-timeout-secs", "100000"][..],
                "idle_timeout_secs",
            ),
            (&["--web-max-connections", "0"][..], "max_connections"),
            (&["--trusted-proxies", "10.0.0.0/33"][..], "trusted_proxies"),
            (
                &["--trusted-proxies", "proxy.example"][..],
                "trusted_proxies",
            ),
            (&["--forwarded-header", "x-real-ip"][..], "forwarded_header"),
            (
                &["--cors-origins", "https://app.example/"][..],
                "cors_origins",
            ),
            (&["--cors-origins", "app.example"][..], "cors_origins"),
            (&["--tls-cert", "c.pem"][..], "tls_cert"),
            (&["--tls-key", "k.pem"][..], "tls_key"),
            (
                &[
                    "--tls-cert",
                    "c.pem",
                    "--tls-key",
                    "k.pem",
                    "--tls-self-signed",
                ][..],
                "tls_self_signed",
            ),
        ] {
            let e = format!("{:#}", Config::load(&args(flags)).unwrap_err());
            assert!(e.contains(key), "{flags:?}: {e}");
        }
    }
}
