//! The SIP gateway and media node's wiring into `conclave serve`.
//!
//! Serve configuration (flag > env > file > default). On by default, on 127.0.0.1:5060
//! over UDP and TCP, as the README promises:
//!
//! | TOML key | flag | env |
//! | --- | --- | --- |
//! | `sip.enabled` (default true) | `--sip-enabled` | `CONCLAVE_SIP_ENABLED` |
//! | `sip.listen` (default `127.0.0.1:5060`) | `--sip-listen` | `CONCLAVE_SIP_LISTEN` |
//! | `sip.transports` (default `["udp", "tcp"]`) | `--sip-transports udp,tcp` | `CONCLAVE_SIP_TRANSPORTS` |
//! | `sip.domain` (default `localhost`) | `--sip-domain` | `CONCLAVE_SIP_DOMAIN` |
//! | `sip.manager_user` (default `chat-manager`) | `--sip-manager-user` | `CONCLAVE_SIP_MANAGER_USER` |
//! | `sip.room_prefix` (default `chat-`) | `--sip-room-prefix` | `CONCLAVE_SIP_ROOM_PREFIX` |
//! | `sip.command_char` (default `#`) | `--sip-command-char` | `CONCLAVE_SIP_COMMAND_CHAR` |
//! | `sip.realm` (default: the domain) | `--sip-realm` | `CONCLAVE_SIP_REALM` |
//! | `sip.digest_algorithms` (default `["SHA-256", "MD5"]`) | `--sip-digest-algorithms sha-256,md5` | `CONCLAVE_SIP_DIGEST_ALGORITHMS` |
//! | `sip.open_registration` (default false) | `--sip-open-registration` | `CONCLAVE_SIP_OPEN_REGISTRATION` |
//! | `sip.max_calls_per_address` (default 16) | `--sip-max-calls-per-address` | `CONCLAVE_SIP_MAX_CALLS_PER_ADDRESS` |
//! | `sip.max_transactions` (default 200000) | `--sip-max-transactions` | `CONCLAVE_SIP_MAX_TRANSACTIONS` |
//! | `sip.max_transactions_per_address` (default 100000) | `--sip-max-transactions-per-address` | `CONCLAVE_SIP_MAX_TRANSACTIONS_PER_ADDRESS` |
//! | `sip.max_tcp_connections` (default 4096) | `--sip-max-tcp-connections` | `CONCLAVE_SIP_MAX_TCP_CONNECTIONS` |
//! | `sip.min_expires` / `sip.max_expires` (60 / 3600) | `--sip-min-expires` / `--sip-max-expires` | `CONCLAVE_SIP_MIN_EXPIRES` / `CONCLAVE_SIP_MAX_EXPIRES` |
//! | `media.bind` (default `127.0.0.1`) | `--media-bind` | `CONCLAVE_MEDIA_BIND` |
//! | `media.announce` (default: the bind address) | `--media-announce` | `CONCLAVE_MEDIA_ANNOUNCE` |
//! | `media.ports` (default `16384-32767`) | `--media-ports` | `CONCLAVE_MEDIA_PORTS` |
//! | `media.hold_music` (8 kHz mono 16-bit WAV) | `--media-hold-music` | `CONCLAVE_MEDIA_HOLD_MUSIC` |
//! | `media.rtp_timeout_secs` (default 30) | `--media-rtp-timeout-secs` | `CONCLAVE_MEDIA_RTP_TIMEOUT_SECS` |
//! | `media.jitter_ms` (default 60; 20..=300) | `--media-jitter-ms` | `CONCLAVE_MEDIA_JITTER_MS` |
//! | `media.recording_max_minutes` (default 240; 0: no limit) | `--media-recording-max-minutes` | `CONCLAVE_MEDIA_RECORDING_MAX_MINUTES` |

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use conclave_engine::ids::Scheme;
use conclave_engine::service::{Engine, GatewayScope};
use conclave_gateway_sip::config::SipConfig;
use conclave_gateway_sip::server::SipServer;
use conclave_gateway_web::StatusSource;
use conclave_media::{MediaConfig, MediaNode};
use serde::Deserialize;

/// `[sip]` in the configuration file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipFile {
    enabled: Option<bool>,
    listen: Option<SocketAddr>,
    transports: Option<Vec<String>>,
    domain: Option<String>,
    manager_user: Option<String>,
    room_prefix: Option<String>,
    command_char: Option<char>,
    realm: Option<String>,
    digest_algorithms: Option<Vec<String>>,
    open_registration: Option<bool>,
    min_expires: Option<u32>,
    max_expires: Option<u32>,
    max_tcp_connections: Option<usize>,
    max_transactions: Option<usize>,
    max_transactions_per_address: Option<usize>,
    max_calls_per_address: Option<usize>,
}

/// `[media]` in the configuration file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaFile {
    bind: Option<IpAddr>,
    announce: Option<IpAddr>,
    ports: Option<String>,
    hold_music: Option<PathBuf>,
    rtp_timeout_secs: Option<u32>,
    jitter_ms: Option<u32>,
    recording_max_minutes: Option<u32>,
}

/// The same keys as serve flags and environment variables.
#[derive(Debug, Default, Clone, Args)]
pub struct SipFlags {
    /// Run the SIP gateway [default: true].
    #[arg(long, env = "CONCLAVE_SIP_ENABLED")]
    sip_enabled: Option<bool>,
    /// SIP listen address, for every transport [default: 127.0.0.1:5060].
    #[arg(long, env = "CONCLAVE_SIP_LISTEN")]
    sip_listen: Option<SocketAddr>,
    /// SIP transports, comma-separated: udp, tcp [default: udp,tcp].
    #[arg(long, env = "CONCLAVE_SIP_TRANSPORTS", value_delimiter = ',')]
    sip_transports: Option<Vec<String>>,
    /// The SIP domain rooms and the manager live in [default: localhost].
    #[arg(long, env = "CONCLAVE_SIP_DOMAIN")]
    sip_domain: Option<String>,
    /// User part of the conference manager URI [default: chat-manager].
    #[arg(long, env = "CONCLAVE_SIP_MANAGER_USER")]
    sip_manager_user: Option<String>,
    /// Prefix of room URIs' user part [default: chat-].
    #[arg(long, env = "CONCLAVE_SIP_ROOM_PREFIX")]
    sip_room_prefix: Option<String>,
    /// IMC command character [default: #].
    #[arg(long, env = "CONCLAVE_SIP_COMMAND_CHAR")]
    sip_command_char: Option<char>,
    /// Digest realm [default: the domain].
    #[arg(long, env = "CONCLAVE_SIP_REALM")]
    sip_realm: Option<String>,
    /// Digest algorithms offered, most preferred first: sha-256, md5 [default: sha-256,md5].
    /// UAs that read only the first challenge and speak only MD5 need md5 first.
    #[arg(long, env = "CONCLAVE_SIP_DIGEST_ALGORITHMS", value_delimiter = ',')]
    sip_digest_algorithms: Option<Vec<String>>,
    /// Let identities without SIP credentials register and act as guests of the domain
    /// [default: false].
    #[arg(long, env = "CONCLAVE_SIP_OPEN_REGISTRATION")]
    sip_open_registration: Option<bool>,
    /// Shortest registration accepted, seconds [default: 60].
    #[arg(long, env = "CONCLAVE_SIP_MIN_EXPIRES")]
    sip_min_expires: Option<u32>,
    /// Longest registration granted, seconds [default: 3600].
    #[arg(long, env = "CONCLAVE_SIP_MAX_EXPIRES")]
    sip_max_expires: Option<u32>,
    /// Calls one source address may hold at once (a PBX or SBC in front carries many)
    /// [default: 16].
    #[arg(long, env = "CONCLAVE_SIP_MAX_CALLS_PER_ADDRESS")]
    sip_max_calls_per_address: Option<usize>,
    /// Live SIP transactions at most [default: 200000].
    #[arg(long, env = "CONCLAVE_SIP_MAX_TRANSACTIONS")]
    sip_max_transactions: Option<usize>,
    /// Live SIP server transactions of one source address at most (a proxy in front
    /// carries everyone's) [default: 100000].
    #[arg(long, env = "CONCLAVE_SIP_MAX_TRANSACTIONS_PER_ADDRESS")]
    sip_max_transactions_per_address: Option<usize>,
    /// Open SIP TCP connections at most [default: 4096].
    #[arg(long, env = "CONCLAVE_SIP_MAX_TCP_CONNECTIONS")]
    sip_max_tcp_connections: Option<usize>,
    /// Address the media node's RTP sockets bind to [default: 127.0.0.1].
    #[arg(long, env = "CONCLAVE_MEDIA_BIND")]
    media_bind: Option<IpAddr>,
    /// Address the media node announces in SDP [default: the bind address].
    #[arg(long, env = "CONCLAVE_MEDIA_ANNOUNCE")]
    media_announce: Option<IpAddr>,
    /// RTP port range, `min-max` [default: 16384-32767].
    #[arg(long, env = "CONCLAVE_MEDIA_PORTS")]
    media_ports: Option<String>,
    /// Music on hold for a caller alone in a room (8 kHz mono 16-bit WAV).
    #[arg(long, env = "CONCLAVE_MEDIA_HOLD_MUSIC")]
    media_hold_music: Option<PathBuf>,
    /// Seconds without RTP before a call is ended [default: 30].
    #[arg(long, env = "CONCLAVE_MEDIA_RTP_TIMEOUT_SECS")]
    media_rtp_timeout_secs: Option<u32>,
    /// A caller's jitter buffer playout delay, milliseconds, 20..=300 (lower on a LAN
    /// for less delay, higher on lossy paths) [default: 60].
    #[arg(long, env = "CONCLAVE_MEDIA_JITTER_MS")]
    media_jitter_ms: Option<u32>,
    /// Longest room recording, minutes: the media node stops it then (0: no limit)
    /// [default: 240].
    #[arg(long, env = "CONCLAVE_MEDIA_RECORDING_MAX_MINUTES")]
    media_recording_max_minutes: Option<u32>,
}

/// What `serve` starts.
#[derive(Debug, Clone)]
pub struct SipSettings {
    pub sip: SipConfig,
    pub media: MediaConfig,
    /// The longest recording (`None`: no limit).
    pub recording_max: Option<std::time::Duration>,
}

/// The default longest recording: a working day's meeting, so a forgotten recording
/// does not fill the disk.
const RECORDING_MAX_MINUTES: u32 = 240;

impl SipFlags {
    /// The settings, or `None` when the gateway is turned off.
    pub fn resolve(&self, sip: &SipFile, media: &MediaFile) -> anyhow::Result<Option<SipSettings>> {
        if !self.sip_enabled.or(sip.enabled).unwrap_or(true) {
            return Ok(None);
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|e| anyhow::anyhow!("no randomness for SIP nonces: {e}"))?;
        let mut c = SipConfig::new(key);
        let listen = self
            .sip_listen
            .or(sip.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)));
        let transports = self
            .sip_transports
            .clone()
            .or_else(|| sip.transports.clone())
            .unwrap_or_else(|| vec!["udp".into(), "tcp".into()]);
        c.udp = None;
        c.tcp = None;
        for t in &transports {
            match t.trim().to_ascii_lowercase().as_str() {
                "udp" => c.udp = Some(listen),
                "tcp" => c.tcp = Some(listen),
                other => bail!(
                    "sip.transports (--sip-transports): unknown transport {other:?} (udp, tcp)"
                ),
            }
        }
        if c.udp.is_none() && c.tcp.is_none() {
            bail!("sip.transports (--sip-transports): name at least one of udp, tcp");
        }
        if let Some(d) = self.sip_domain.clone().or_else(|| sip.domain.clone()) {
            check_token("sip.domain (--sip-domain)", &d)?;
            c.addressing.domain = d.to_ascii_lowercase();
        }
        if let Some(u) = self
            .sip_manager_user
            .clone()
            .or_else(|| sip.manager_user.clone())
        {
            check_token("sip.manager_user (--sip-manager-user)", &u)?;
            c.addressing.manager_user = u;
        }
        if let Some(p) = self
            .sip_room_prefix
            .clone()
            .or_else(|| sip.room_prefix.clone())
        {
            check_token("sip.room_prefix (--sip-room-prefix)", &p)?;
            c.addressing.room_prefix = p;
        }
        if let Some(ch) = self.sip_command_char.or(sip.command_char) {
            if !ch.is_ascii_punctuation() {
                bail!(
                    "sip.command_char (--sip-command-char): must be an ASCII punctuation character"
                );
            }
            c.addressing.command_char = ch;
        }
        c.realm = self
            .sip_realm
            .clone()
            .or_else(|| sip.realm.clone())
            .unwrap_or_else(|| c.addressing.domain.clone());
        if let Some(list) = self
            .sip_digest_algorithms
            .clone()
            .or_else(|| sip.digest_algorithms.clone())
        {
            let mut algs = Vec::new();
            for a in &list {
                let Some(alg) = conclave_gateway_sip::digest::Algorithm::from_token(a.trim())
                else {
                    bail!("sip.digest_algorithms (--sip-digest-algorithms): unknown algorithm {a:?} (sha-256, md5)");
                };
                if !algs.contains(&alg) {
                    algs.push(alg);
                }
            }
            if algs.is_empty() {
                bail!("sip.digest_algorithms (--sip-digest-algorithms): name at least one of sha-256, md5");
            }
            c.digest_algorithms = algs;
        }
        c.open_registration = self
            .sip_open_registration
            .or(sip.open_registration)
            .unwrap_or(false);
        if let Some(v) = self.sip_min_expires.or(sip.min_expires) {
            c.min_expires = v;
        }
        if let Some(v) = self.sip_max_expires.or(sip.max_expires) {
            c.max_expires = v;
        }
        if c.min_expires == 0 || c.min_expires > c.max_expires {
            bail!("sip.min_expires / sip.max_expires: need 0 < min <= max");
        }
        c.default_expires = c.default_expires.clamp(c.min_expires, c.max_expires);
        if let Some(n) = self.sip_max_transactions.or(sip.max_transactions) {
            if !(100..=10_000_000).contains(&n) {
                bail!("sip.max_transactions (--sip-max-transactions): must be 100..=10000000");
            }
            c.max_transactions = n;
        }
        if let Some(n) = self
            .sip_max_transactions_per_address
            .or(sip.max_transactions_per_address)
        {
            if !(10..=10_000_000).contains(&n) {
                bail!("sip.max_transactions_per_address (--sip-max-transactions-per-address): must be 10..=10000000");
            }
            c.max_transactions_per_address = n;
        }
        if let Some(n) = self.sip_max_calls_per_address.or(sip.max_calls_per_address) {
            if !(1..=1_000_000).contains(&n) {
                bail!(
                    "sip.max_calls_per_address (--sip-max-calls-per-address): must be 1..=1000000"
                );
            }
            c.max_calls_per_address = n;
        }
        if let Some(n) = self.sip_max_tcp_connections.or(sip.max_tcp_connections) {
            if !(1..=1_000_000).contains(&n) {
                bail!("sip.max_tcp_connections (--sip-max-tcp-connections): must be 1..=1000000");
            }
            c.max_tcp_connections = n;
        }

        let mut m = MediaConfig::default();
        if let Some(b) = self.media_bind.or(media.bind) {
            m.bind = b;
            m.announce = b;
        }
        if let Some(a) = self.media_announce.or(media.announce) {
            m.announce = a;
        }
        if m.announce.is_unspecified() {
            bail!(
                "media.announce (--media-announce): needed when media.bind is a wildcard address"
            );
        }
        if let Some(p) = self.media_ports.clone().or_else(|| media.ports.clone()) {
            let (lo, hi) = p
                .split_once('-')
                .and_then(|(a, b)| {
                    Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?))
                })
                .context("media.ports (--media-ports): expected min-max, e.g. 16384-32767")?;
            if lo < 1024 || lo > hi || hi - lo < 3 {
                bail!("media.ports (--media-ports): need 1024 <= min and at least two port pairs");
            }
            m.port_min = lo;
            m.port_max = hi;
        }
        m.hold_music = self
            .media_hold_music
            .clone()
            .or_else(|| media.hold_music.clone());
        if let Some(t) = self.media_rtp_timeout_secs.or(media.rtp_timeout_secs) {
            m.rtp_timeout_secs = t;
        }
        if let Some(j) = self.media_jitter_ms.or(media.jitter_ms) {
            if !(20..=300).contains(&j) {
                bail!("media.jitter_ms (--media-jitter-ms): must be 20..=300");
            }
            m.jitter_ms = j;
        }
        let minutes = self
            .media_recording_max_minutes
            .or(media.recording_max_minutes)
            .unwrap_or(RECORDING_MAX_MINUTES);
        let recording_max =
            (minutes > 0).then(|| std::time::Duration::from_secs(u64::from(minutes) * 60));
        Ok(Some(SipSettings {
            sip: c,
            media: m,
            recording_max,
        }))
    }
}

fn check_token(what: &str, v: &str) -> anyhow::Result<()> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        bail!("{what}: 1..=64 characters of letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

/// Starts the media node and the SIP gateway if configured; call inside the serve
/// runtime, and shut it down before the engine.
pub async fn start_gateway(
    engine: Engine,
    settings: Option<SipSettings>,
) -> anyhow::Result<Option<(Arc<SipServer>, MediaNode, Arc<dyn StatusSource>)>> {
    let Some(settings) = settings else {
        tracing::info!("SIP gateway turned off (sip.enabled = false)");
        return Ok(None);
    };
    let media = MediaNode::start(settings.media.clone())
        .await
        .context("starting the media node (media.*)")?;
    let handle = engine.gateway(GatewayScope {
        name: "sip".into(),
        schemes: vec![Scheme::Sip],
    });
    let server = SipServer::start(settings.sip, handle, Some(media.clone()))
        .await
        .context("starting the SIP gateway (sip.listen / --sip-listen)")?;
    let local = server.local();
    if let Some(a) = local.udp {
        println!("conclave: SIP on udp:{a}");
    }
    if let Some(a) = local.tcp {
        println!("conclave: SIP on tcp:{a}");
    }
    let server = Arc::new(server);
    let source = crate::status::GatewayStatus::source(
        "sip",
        server.clone(),
        SipServer::health,
        SipServer::metrics,
    );
    Ok(Some((server, media, source)))
}
