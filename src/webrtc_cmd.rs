//! The WebRTC selective forwarding unit's wiring into `conclave serve` (docs/media.md):
//! its settings, and the adapter that makes `media::Sfu` the web gateway's media plane.
//!
//! Serve configuration (flag > env > file > default):
//!
//! | TOML key (`[webrtc]`) | flag | env |
//! | --- | --- | --- |
//! | `enabled` (default `true`) | `--webrtc-enabled` | `CONCLAVE_WEBRTC_ENABLED` |
//! | `bind` (default `127.0.0.1`) | `--webrtc-bind` | `CONCLAVE_WEBRTC_BIND` |
//! | `ports` (default `10000-14999`) | `--webrtc-ports` | `CONCLAVE_WEBRTC_PORTS` |
//! | `announce` (default: the bind address) | `--webrtc-announce` (comma-separated) | `CONCLAVE_WEBRTC_ANNOUNCE` |
//!
//! Bound to a loopback address with nothing announced, the SFU gathers and accepts
//! loopback candidates only: a browser on the same machine works, and no media packet
//! leaves the host.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use conclave_gateway_web::{BoxFuture, MediaError, MediaKind, MediaPlane, MediaSignal};
use conclave_media::{Sfu, SfuConfig, SfuError, SfuLimits, SfuSignal, SimulcastLayer};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;

/// `[webrtc]` in the serve configuration file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebrtcFile {
    enabled: Option<bool>,
    bind: Option<IpAddr>,
    ports: Option<String>,
    announce: Option<Vec<IpAddr>>,
}

/// The same keys as serve flags and environment variables.
#[derive(Debug, Default, Clone, Args)]
pub struct WebrtcFlags {
    /// Serve browser media (WebRTC SFU) [default: true].
    #[arg(long, env = "CONCLAVE_WEBRTC_ENABLED")]
    webrtc_enabled: Option<bool>,
    /// Address the SFU's UDP sockets bind to [default: 127.0.0.1].
    #[arg(long, env = "CONCLAVE_WEBRTC_BIND")]
    webrtc_bind: Option<IpAddr>,
    /// UDP ports for browsers' media, min-max, one per participant [default: 10000-14999].
    #[arg(long, env = "CONCLAVE_WEBRTC_PORTS")]
    webrtc_ports: Option<String>,
    /// Addresses announced in ICE candidates instead of the bind address (behind 1:1
    /// NAT), comma-separated.
    #[arg(long, env = "CONCLAVE_WEBRTC_ANNOUNCE", value_delimiter = ',')]
    webrtc_announce: Option<Vec<IpAddr>>,
}

const DEFAULT_PORTS: (u16, u16) = (10_000, 14_999);

impl WebrtcFlags {
    /// The SFU's configuration, or `None` when it is turned off.
    pub fn resolve(&self, file: &WebrtcFile) -> anyhow::Result<Option<SfuConfig>> {
        if !self.webrtc_enabled.or(file.enabled).unwrap_or(true) {
            return Ok(None);
        }
        let bind = self
            .webrtc_bind
            .or(file.bind)
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        if bind.is_unspecified() {
            bail!("webrtc.bind (--webrtc-bind): a concrete address (the SFU announces what it binds), not {bind}");
        }
        let udp_ports = match self.webrtc_ports.clone().or_else(|| file.ports.clone()) {
            None => DEFAULT_PORTS,
            Some(p) => parse_ports(&p)
                .context("webrtc.ports (--webrtc-ports): expected min-max, e.g. 10000-14999")?,
        };
        let announce = self
            .webrtc_announce
            .clone()
            .or_else(|| file.announce.clone())
            .unwrap_or_default();
        Ok(Some(SfuConfig {
            bind,
            udp_ports,
            loopback_only: bind.is_loopback() && announce.iter().all(IpAddr::is_loopback),
            announce,
            limits: SfuLimits::default(),
        }))
    }
}

fn parse_ports(s: &str) -> anyhow::Result<(u16, u16)> {
    let (a, b) = s.split_once('-').context("no '-'")?;
    let (min, max): (u16, u16) = (a.trim().parse()?, b.trim().parse()?);
    if min < 1024 || min > max {
        bail!("need 1024 <= min <= max");
    }
    Ok((min, max))
}

/// Starts the SFU if configured; the `Sfu` handle is for the SIP bridge.
pub async fn start(
    config: Option<SfuConfig>,
) -> anyhow::Result<Option<(Arc<dyn MediaPlane>, Sfu)>> {
    let Some(config) = config else {
        return Ok(None);
    };
    let (bind, ports) = (config.bind, config.udp_ports);
    let sfu = Sfu::new(config).await.context("starting the WebRTC SFU")?;
    println!(
        "conclave: WebRTC media on {bind} UDP {}-{}",
        ports.0, ports.1
    );
    Ok(Some((Arc::new(SfuPlane(sfu.clone())), sfu)))
}

/// `media::Sfu` as the web gateway sees it.
struct SfuPlane(Sfu);

fn error(e: SfuError) -> MediaError {
    MediaError::new(e.code(), e.to_string())
}

fn kind(k: MediaKind) -> conclave_media::MediaKind {
    match k {
        MediaKind::Audio => conclave_media::MediaKind::Audio,
        MediaKind::Video => conclave_media::MediaKind::Video,
    }
}

impl MediaPlane for SfuPlane {
    fn connect<'a>(
        &'a self,
        room: &'a str,
        participant: &'a str,
        signals: mpsc::Sender<MediaSignal>,
    ) -> BoxFuture<'a, Result<(), MediaError>> {
        Box::pin(async move {
            // The SFU speaks its own signal type; relay it, in order, until either side
            // is gone.
            let (tx, mut rx) = mpsc::channel::<SfuSignal>(64);
            tokio::spawn(async move {
                while let Some(s) = rx.recv().await {
                    let s = match s {
                        SfuSignal::Offer(sdp) => MediaSignal::Offer(sdp),
                        SfuSignal::Candidate(c) => MediaSignal::Candidate(c),
                        SfuSignal::Closed => MediaSignal::Closed,
                        SfuSignal::DominantSpeaker(p) => MediaSignal::DominantSpeaker(p),
                    };
                    if signals.send(s).await.is_err() {
                        break;
                    }
                }
            });
            self.0
                .connect(room, &participant.to_owned(), tx)
                .await
                .map_err(error)
        })
    }

    fn offer<'a>(
        &'a self,
        participant: &'a str,
        sdp: String,
    ) -> BoxFuture<'a, Result<String, MediaError>> {
        Box::pin(async move {
            self.0
                .offer(&participant.to_owned(), sdp)
                .await
                .map_err(error)
        })
    }

    fn answer<'a>(
        &'a self,
        participant: &'a str,
        sdp: String,
    ) -> BoxFuture<'a, Result<(), MediaError>> {
        Box::pin(async move {
            self.0
                .answer(&participant.to_owned(), sdp)
                .await
                .map_err(error)
        })
    }

    fn candidate<'a>(
        &'a self,
        participant: &'a str,
        candidate: Value,
    ) -> BoxFuture<'a, Result<(), MediaError>> {
        Box::pin(async move {
            self.0
                .candidate(&participant.to_owned(), candidate)
                .await
                .map_err(error)
        })
    }

    fn set_forwarding(&self, participant: &str, k: MediaKind, allowed: bool) {
        self.0
            .set_forwarding(&participant.to_owned(), kind(k), allowed);
    }

    fn set_max_layer(&self, participant: &str, track: &str, max: &str) -> Result<(), MediaError> {
        let layer = SimulcastLayer::parse(max).ok_or_else(|| {
            MediaError::new("media.invalid_layer", "max: one of \"q\", \"h\", \"f\"")
        })?;
        self.0
            .set_max_layer(&participant.to_owned(), track, layer)
            .map_err(error)
    }

    fn disconnect<'a>(&'a self, participant: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.0.disconnect(&participant.to_owned()).await })
    }

    fn stats(&self) -> Value {
        self.0.stats()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        webrtc: WebrtcFlags,
    }

    fn flags(args: &[&str]) -> WebrtcFlags {
        Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .unwrap()
            .webrtc
    }

    #[test]
    fn defaults_serve_loopback_only() {
        let c = flags(&[]).resolve(&WebrtcFile::default()).unwrap().unwrap();
        assert_eq!(c.bind, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(c.udp_ports, DEFAULT_PORTS);
        assert!(c.loopback_only);
    }

    #[test]
    fn an_announced_address_turns_loopback_only_off_and_bad_values_are_refused() {
        let c = flags(&["--webrtc-bind=10.0.0.5", "--webrtc-announce=203.0.113.7"])
            .resolve(&WebrtcFile::default())
            .unwrap()
            .unwrap();
        assert!(!c.loopback_only);
        assert_eq!(c.announce, vec![IpAddr::from([203, 0, 113, 7])]);
        assert!(flags(&["--webrtc-ports=5-4"])
            .resolve(&WebrtcFile::default())
            .is_err());
        assert!(flags(&["--webrtc-bind=0.0.0.0"])
            .resolve(&WebrtcFile::default())
            .is_err());
        assert!(flags(&["--webrtc-enabled=false"])
            .resolve(&WebrtcFile::default())
            .unwrap()
            .is_none());
    }
}
