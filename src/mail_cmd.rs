//! Email through an SMTP relay (`[smtp]`): `mailto:` invitations and optional join
//! notifications (docs/api.md, "Email"). Off unless a relay is configured.
//!
//! Serve configuration (flag > env > file > default):
//!
//! | TOML key | flag | env |
//! | --- | --- | --- |
//! | `smtp.relay` (`host` or `host:port`) | `--smtp-relay` | `CONCLAVE_SMTP_RELAY` |
//! | `smtp.from` (required with a relay) | `--smtp-from` | `CONCLAVE_SMTP_FROM` |
//! | `smtp.security` (`none`, `starttls`, `tls`; default `starttls`) | `--smtp-security` | `CONCLAVE_SMTP_SECURITY` |
//! | `smtp.username` | `--smtp-username` | `CONCLAVE_SMTP_USERNAME` |
//! | `smtp.password` | `--smtp-password` | `CONCLAVE_SMTP_PASSWORD` |
//! | `smtp.notify_joins` (default `false`) | `--smtp-notify-joins` | `CONCLAVE_SMTP_NOTIFY_JOINS` |
//! | `smtp.max_attempts` (default 6) | `--smtp-max-attempts` | `CONCLAVE_SMTP_MAX_ATTEMPTS` |
//! | `smtp.first_retry_ms` (default 1000) | `--smtp-first-retry-ms` | `CONCLAVE_SMTP_FIRST_RETRY_MS` |
//! | `smtp.timeout_secs` (default 30) | `--smtp-timeout-secs` | `CONCLAVE_SMTP_TIMEOUT_SECS` |
//! | `web.public_url` (default: the listen address) | `--public-url` | `CONCLAVE_PUBLIC_URL` |
//!
//! The default port follows the security: 25 (`none`), 587 (`starttls`), 465 (`tls`).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use conclave_gateway_web::{MailSettings, SmtpSecurity};
use serde::Deserialize;

/// `[smtp]` in the serve configuration file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpFile {
    relay: Option<String>,
    from: Option<String>,
    security: Option<String>,
    username: Option<String>,
    password: Option<String>,
    notify_joins: Option<bool>,
    max_attempts: Option<u32>,
    first_retry_ms: Option<u64>,
    timeout_secs: Option<u64>,
}

/// The same keys as serve flags and environment variables.
#[derive(Debug, Default, Clone, Args)]
pub struct SmtpFlags {
    /// SMTP relay for email invitations and join notifications, host or host:port
    /// [default: none: no mail is sent].
    #[arg(long, env = "CONCLAVE_SMTP_RELAY")]
    smtp_relay: Option<String>,
    /// From address of the mail (`Name <addr@host>` or `addr@host`).
    #[arg(long, env = "CONCLAVE_SMTP_FROM")]
    smtp_from: Option<String>,
    /// Connection to the relay: none | starttls | tls [default: starttls].
    #[arg(long, env = "CONCLAVE_SMTP_SECURITY")]
    smtp_security: Option<String>,
    /// SMTP AUTH user name (with --smtp-password).
    #[arg(long, env = "CONCLAVE_SMTP_USERNAME")]
    smtp_username: Option<String>,
    /// SMTP AUTH password.
    #[arg(long, env = "CONCLAVE_SMTP_PASSWORD", hide_env_values = true)]
    smtp_password: Option<String>,
    /// Mail a room's owners (their mailto: identities) when someone joins [default: false].
    #[arg(long, env = "CONCLAVE_SMTP_NOTIFY_JOINS")]
    smtp_notify_joins: Option<bool>,
    /// Tries per mail while the relay fails [default: 6].
    #[arg(long, env = "CONCLAVE_SMTP_MAX_ATTEMPTS")]
    smtp_max_attempts: Option<u32>,
    /// Wait before the first retry, doubled each time up to 5 minutes [default: 1000].
    #[arg(long, env = "CONCLAVE_SMTP_FIRST_RETRY_MS")]
    smtp_first_retry_ms: Option<u64>,
    /// Connection and command timeout at the relay [default: 30].
    #[arg(long, env = "CONCLAVE_SMTP_TIMEOUT_SECS")]
    smtp_timeout_secs: Option<u64>,
    /// The server's address as browsers reach it, for links in mail
    /// (https://meet.example.org) [default: the web listen address].
    #[arg(long, env = "CONCLAVE_PUBLIC_URL")]
    public_url: Option<String>,
}

impl SmtpFlags {
    /// The mail settings, or `None` without a relay.
    pub fn resolve(
        &self,
        file: &SmtpFile,
        public_url: Option<String>,
        listen: SocketAddr,
        https: bool,
    ) -> anyhow::Result<Option<MailSettings>> {
        let Some(relay) = self.smtp_relay.clone().or_else(|| file.relay.clone()) else {
            return Ok(None);
        };
        let security: SmtpSecurity = match self.smtp_security.clone().or(file.security.clone()) {
            None => SmtpSecurity::StartTls,
            Some(s) => s
                .parse()
                .map_err(|e: String| anyhow::anyhow!(e))
                .context("smtp.security (--smtp-security)")?,
        };
        let default_port = match security {
            SmtpSecurity::None => 25,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
        };
        let (host, port) = split_host_port(&relay, default_port)
            .context("smtp.relay (--smtp-relay): expected host or host:port")?;
        let from = self
            .smtp_from
            .clone()
            .or(file.from.clone())
            .context("smtp.from (--smtp-from): required with an SMTP relay")?;
        let from = from
            .parse()
            .map_err(|e| anyhow::anyhow!("smtp.from (--smtp-from): {from:?}: {e}"))?;
        let username = self.smtp_username.clone().or(file.username.clone());
        let password = self.smtp_password.clone().or(file.password.clone());
        let credentials = match (username, password) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => bail!("smtp.username / smtp.password: give both or neither"),
        };
        let max_attempts = self.smtp_max_attempts.or(file.max_attempts).unwrap_or(6);
        if !(1..=100).contains(&max_attempts) {
            bail!("smtp.max_attempts (--smtp-max-attempts): must be 1..=100");
        }
        let first_ms = self
            .smtp_first_retry_ms
            .or(file.first_retry_ms)
            .unwrap_or(1000);
        if !(1..=600_000).contains(&first_ms) {
            bail!("smtp.first_retry_ms (--smtp-first-retry-ms): must be 1..=600000");
        }
        let timeout = self.smtp_timeout_secs.or(file.timeout_secs).unwrap_or(30);
        if !(1..=600).contains(&timeout) {
            bail!("smtp.timeout_secs (--smtp-timeout-secs): must be 1..=600");
        }
        let public_url = match self.public_url.clone().or(public_url) {
            Some(u) => {
                if !(u.starts_with("https://") || u.starts_with("http://"))
                    || u.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    bail!("web.public_url (--public-url): an http:// or https:// URL, got {u:?}");
                }
                u.trim_end_matches('/').to_owned()
            }
            None => format!("{}://{listen}", if https { "https" } else { "http" }),
        };
        Ok(Some(MailSettings {
            host,
            port,
            security,
            credentials,
            from,
            public_url,
            notify_joins: self
                .smtp_notify_joins
                .or(file.notify_joins)
                .unwrap_or(false),
            max_attempts,
            first_backoff: Duration::from_millis(first_ms),
            timeout: Duration::from_secs(timeout),
        }))
    }
}

fn split_host_port(s: &str, default_port: u16) -> anyhow::Result<(String, u16)> {
    let s = s.trim();
    if s.is_empty() {
        bail!("empty");
    }
    // [v6]:port, host:port, or a bare host / v6 address.
    if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').context("unclosed [")?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse()?,
            None if tail.is_empty() => default_port,
            None => bail!("junk after ]"),
        };
        return Ok((h.to_owned(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Ok((h.to_owned(), p.parse()?)),
        _ => Ok((s.to_owned(), default_port)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn relay_addresses() {
        assert_eq!(
            split_host_port("mail.example.org", 587).unwrap(),
            ("mail.example.org".into(), 587)
        );
        assert_eq!(
            split_host_port("127.0.0.1:2525", 25).unwrap(),
            ("127.0.0.1".into(), 2525)
        );
        assert_eq!(split_host_port("[::1]:26", 25).unwrap(), ("::1".into(), 26));
        assert!(split_host_port("host:notaport", 25).is_err());
    }

    #[test]
    fn no_relay_no_mail_and_from_is_required() {
        let listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let f = SmtpFlags::default();
        assert!(f
            .resolve(&SmtpFile::default(), None, listen, false)
            .unwrap()
            .is_none());
        let f = SmtpFlags {
            smtp_relay: Some("127.0.0.1:2525".into()),
            ..SmtpFlags::default()
        };
        let e = f
            .resolve(&SmtpFile::default(), None, listen, false)
            .unwrap_err();
        assert!(format!("{e:#}").contains("smtp.from"), "{e:#}");
        let f = SmtpFlags {
            smtp_relay: Some("127.0.0.1:2525".into()),
            smtp_from: Some("Conclave <c@example.org>".into()),
            smtp_security: Some("none".into()),
            ..SmtpFlags::default()
        };
        let s = f
            .resolve(&SmtpFile::default(), None, listen, false)
            .unwrap()
            .unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 2525));
        assert_eq!(s.public_url, "http://127.0.0.1:8080");
        assert_eq!(s.security, SmtpSecurity::None);
        assert!(!s.notify_joins);
    }
}
