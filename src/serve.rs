//! `conclave serve`: the engine with its REST API, until SIGINT or SIGTERM.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use conclave_engine::service::{hash_password, Engine, EngineConfig};
use conclave_engine::IpKey;
use conclave_gateway_web::{
    load_or_create_admin_token, router_with_mail, AuthConfig, Mailer, MediaOptions, StatusSource,
    TlsConfig, Transport, TransportSettings,
};
use conclave_journal::JournalConfig;

use crate::config::{Config, ServeArgs, TlsSource};

/// Runs the server; returns once it has shut down cleanly.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(&args)?;
    init_logging(&config.log)?;
    // Every connection holds a descriptor: the usual soft limit of 1024 would stop the
    // server accepting long before it runs out of anything else.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(open_files = n, "open-file limit raised to the hard limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    // Durably: a power cut must not lose the data directory with the admin token in it.
    conclave_journal::durable::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let ip_key = match config.ip_key {
        Some(k) => k,
        None => load_or_create_ip_key(&config.data_dir.join("ip-key"))?,
    };
    let admin_token = match &config.admin_token {
        Some(t) => t.clone(),
        None => {
            let path = config.data_dir.join("admin-token");
            let (token, created) = load_or_create_admin_token(&path)
                .with_context(|| format!("admin token file {}", path.display()))?;
            if created {
                // Printed once, on the first start; afterwards read it from the file.
                let mut err = std::io::stderr().lock();
                let _ = writeln!(
                    err,
                    "conclave: generated the admin token (saved in {}, mode 0600; shown only now):\n{token}",
                    path.display()
                );
            }
            token
        }
    };
    let mut policy = config.policy.clone();
    if let Some(pw) = &config.server_password {
        policy.server_password_hash = Some(
            hash_password(pw).map_err(|e| anyhow::anyhow!("hashing the server password: {e}"))?,
        );
    }
    let engine_config = EngineConfig {
        data_dir: config.data_dir.clone(),
        policy,
        ip_key: IpKey(ip_key),
        journal: JournalConfig {
            sync: config.sync,
            ..JournalConfig::default()
        },
        checkpoint_every: config.checkpoint_every,
        tick_interval: config.tick_interval,
        max_queued_commands: config.max_queued_commands,
        ..EngineConfig::new(&config.data_dir)
    };
    let engine = Engine::open(engine_config)
        .with_context(|| format!("opening the engine in {}", config.data_dir.display()))?;
    tracing::info!(
        data_dir = %config.data_dir.display(),
        head = engine.head(),
        "engine open"
    );
    let tls = load_tls(&config.web.tls, config.web_listen)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("conclave-rt")
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(serve(engine.clone(), admin_token, &config, tls));
    // Finish in-flight commands and write a checkpoint, whatever happened above.
    engine.shutdown();
    tracing::info!(head = engine.head(), "stopped");
    served
}

async fn serve(
    engine: Engine,
    admin_token: String,
    config: &Config,
    tls: Option<TlsConfig>,
) -> anyhow::Result<()> {
    let (listen, rates, web) = (config.web_listen, config.rates, &config.web);
    let (nats, sip, xmpp) = (config.nats.clone(), config.sip.clone(), config.xmpp.clone());
    // Signal handlers first: from the moment the listener answers, SIGTERM is a graceful
    // stop (a handler registered only when the shutdown future was first polled left a
    // moment where SIGTERM killed the process outright).
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the REST API to {listen}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    // Other gateways (NATS, later SIP and XMPP) add their status sources here.
    let mut sources: Vec<Arc<dyn StatusSource>> = Vec::new();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let transport = Transport::new(TransportSettings {
        header_read_timeout: web.header_read_timeout,
        body_read_timeout: web.body_read_timeout,
        idle_timeout: web.idle_timeout,
        max_connections: web.max_connections,
        max_connections_per_address: web.max_connections_per_address,
        trusted_proxies: web.trusted_proxies.clone(),
        tls,
    });
    sources.push(transport.status());
    sources.push(crate::replay_cmd::journal_status(engine.clone()));
    let nats = crate::nats_cmd::start_gateway(engine.clone(), nats).await?;
    if let Some((_, source)) = &nats {
        sources.push(source.clone());
    }
    let recording_max = sip.as_ref().and_then(|s| s.recording_max);
    let sip = crate::sip_cmd::start_gateway(engine.clone(), sip).await?;
    if let Some((_, media, source)) = &sip {
        sources.push(source.clone());
        sources.push(crate::media_status::source(media.clone()));
    }
    let xmpp = crate::xmpp_cmd::start_gateway(engine.clone(), xmpp).await?;
    let sfu = crate::webrtc_cmd::start(config.webrtc.clone()).await?;
    // One room, every client: SIP callers and browsers hear each other through the
    // media node's bridge when both gateways run.
    if let (Some((_, media, _)), Some((_, sfu))) = (&sip, &sfu) {
        media.bridge().attach(sfu);
        tracing::info!("SIP callers and browsers bridged in the media node");
    }
    // Recordings run on the media node's clock (started with the SIP gateway).
    if let Some((_, media, _)) = &sip {
        crate::recorder::spawn(engine.clone(), media.bridge().clone(), recording_max);
    } else {
        tracing::warn!(
            "no media node (sip.enabled = false): room recordings are journaled but not written"
        );
    }
    let plane = sfu.map(|(plane, _)| plane);
    if let Some((_, source)) = &xmpp {
        sources.push(source.clone());
    }
    // Web sessions survive a restart with their signed tokens; one whose client is gone
    // ends when its lease runs out.
    // Browser media: the SFU (none when turned off: the page then runs chat and
    // moderation only).
    let media = MediaOptions {
        plane,
        ice: web.ice.clone(),
    };
    // Email (invitations, join notifications), when an SMTP relay is configured.
    let mailer = match config.mail.clone() {
        None => None,
        Some(settings) => {
            let m = Mailer::new(settings).map_err(|e| anyhow::anyhow!(e))?;
            let s = m.settings();
            tracing::info!(
                relay = %format_args!("{}:{}", s.host, s.port),
                public_url = %s.public_url,
                notify_joins = s.notify_joins,
                "email through an SMTP relay"
            );
            sources.push(m.status());
            Some(m)
        }
    };
    let router = web.cors.apply(router_with_mail(
        engine.clone(),
        AuthConfig::new(&admin_token),
        sources,
        rates,
        media,
        mailer,
    ));
    tracing::info!(
        %local,
        scheme,
        max_connections = web.max_connections,
        trusted_proxies = web.trusted_proxies.nets.len(),
        cors = web.cors.enabled(),
        "REST API listening"
    );
    println!("conclave: REST API on {scheme}://{local}");
    let _ = std::io::stdout().flush();
    let served = transport
        .serve(listener, router, shutdown)
        .await
        .context("serving the REST API");
    if let Some((gateway, _)) = xmpp {
        gateway.shutdown().await;
    }
    if let Some((server, media, _)) = sip {
        server.shutdown().await;
        // Open recording files are closed and journaled while the engine still runs.
        crate::recorder::close_all(&engine, media.bridge()).await;
        media.shutdown().await;
    }
    // Let the outbox catch up briefly, then store its cursor.
    if let Some((handle, _)) = nats {
        handle.shutdown().await;
    }
    served
}

/// The web listener's TLS configuration, if any: PEM files, or a self-signed
/// certificate for localhost, the loopback addresses and the listen address, whose
/// fingerprint is printed so that a person can check what their browser shows.
fn load_tls(source: &TlsSource, listen: std::net::SocketAddr) -> anyhow::Result<Option<TlsConfig>> {
    match source {
        TlsSource::None => Ok(None),
        TlsSource::Files { cert, key } => {
            let tls = TlsConfig::from_pem_files(cert, key)
                .context("web.tls_cert / web.tls_key (--tls-cert / --tls-key)")?;
            tracing::info!(
                cert = %cert.display(),
                fingerprint_sha256 = tls.fingerprint(),
                "TLS certificate loaded"
            );
            Ok(Some(tls))
        }
        TlsSource::SelfSigned => {
            let mut names = vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ];
            let ip = listen.ip().to_string();
            if !listen.ip().is_unspecified() && !names.contains(&ip) {
                names.push(ip);
            }
            let tls = TlsConfig::self_signed(names.clone())
                .context("web.tls_self_signed (--tls-self-signed)")?;
            tracing::warn!(
                names = ?names,
                fingerprint_sha256 = tls.fingerprint(),
                "serving TLS with a self-signed certificate made at start (for trying out; browsers will warn)"
            );
            println!(
                "conclave: self-signed TLS certificate for {}; SHA-256 fingerprint {}",
                names.join(", "),
                tls.fingerprint()
            );
            Ok(Some(tls))
        }
    }
}

/// Registers the SIGTERM and SIGINT handlers now and resolves when either arrives.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutdown requested; finishing in-flight requests");
    })
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested; finishing in-flight requests");
    })
}

fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("log (--log): invalid filter {filter:?}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init()
        .map_err(|e| anyhow::anyhow!("initializing logs: {e}"))
}

/// Reads the IP obfuscation key, or creates it (mode 0600) so that obfuscated
/// addresses stay comparable across restarts (autoban by address needs that).
fn load_or_create_ip_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    match std::fs::read_to_string(path) {
        Ok(s) => crate::config::parse_hex_key(&s)
            .with_context(|| format!("the IP key file {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key)
                .map_err(|e| anyhow::anyhow!("no randomness for the IP key: {e}"))?;
            let text = format!("{}\n", conclave_journal::hex(&key));
            conclave_journal::durable::create_private_file(path, text.as_bytes())
                .with_context(|| format!("creating the IP key file {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading the IP key file {}", path.display())),
    }
}
