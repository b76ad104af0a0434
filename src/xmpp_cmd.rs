//! The XMPP gateway's wiring into `conclave serve` (see docs/xmpp.md).
//!
//! Serve configuration (flag > env > file > default; no component domain, no XMPP):
//!
//! | TOML key (`[xmpp]`) | flag | env |
//! | --- | --- | --- |
//! | `component_domain` | `--xmpp-component-domain` | `CONCLAVE_XMPP_COMPONENT_DOMAIN` |
//! | `component_secret` | `--xmpp-component-secret` | `CONCLAVE_XMPP_COMPONENT_SECRET` |
//! | `component_secret_file` | `--xmpp-component-secret-file` | `CONCLAVE_XMPP_COMPONENT_SECRET_FILE` |
//! | `server` (default `127.0.0.1:5347`) | `--xmpp-server` | `CONCLAVE_XMPP_SERVER` |
//! | `user_domains` (default: the component domain's parent) | `--xmpp-user-domains` (comma-separated) | `CONCLAVE_XMPP_USER_DOMAINS` |
//!
//! A secret and its `_file` form at the same level are refused; a flag (either form)
//! beats the file's. The secret file is read when the gateway starts.

use std::convert::Infallible;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use conclave_engine::ids::Scheme;
use conclave_engine::service::{Engine, GatewayScope};
use conclave_gateway_web::StatusSource;
use conclave_gateway_xmpp::{ComponentSecret, XmppConfig, XmppGateway};
use serde::Deserialize;

/// The default component port of prosody and ejabberd, on loopback.
const DEFAULT_SERVER: &str = "127.0.0.1:5347";

/// `[xmpp]` in the serve configuration file.
#[derive(Default, Clone, Deserialize)]
#[serde(try_from = "XmppFileKeys")]
pub struct XmppFile(XmppFileKeys);

#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XmppFileKeys {
    component_domain: Option<String>,
    component_secret: Option<String>,
    component_secret_file: Option<PathBuf>,
    server: Option<String>,
    user_domains: Option<Vec<String>>,
}

impl TryFrom<XmppFileKeys> for XmppFile {
    type Error = String;

    fn try_from(k: XmppFileKeys) -> Result<Self, String> {
        if k.component_secret.is_some() && k.component_secret_file.is_some() {
            return Err(
                "[xmpp] sets both component_secret and component_secret_file: keep one".into(),
            );
        }
        Ok(XmppFile(k))
    }
}

/// Secrets stay out of debug output.
impl fmt::Debug for XmppFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XmppFile")
            .field("component_domain", &self.0.component_domain)
            .field("server", &self.0.server)
            .finish_non_exhaustive()
    }
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

/// The same keys as serve flags and environment variables.
#[derive(Debug, Default, Clone, Args)]
pub struct XmppFlags {
    /// The XEP-0114 component domain to serve, e.g. conference.localhost; without one
    /// the server runs without XMPP.
    #[arg(long, env = "CONCLAVE_XMPP_COMPONENT_DOMAIN")]
    xmpp_component_domain: Option<String>,
    /// The component's shared secret on the XMPP server (prefer the file form: a flag
    /// shows in `ps`).
    #[arg(
        long,
        env = "CONCLAVE_XMPP_COMPONENT_SECRET",
        hide_env_values = true,
        conflicts_with = "xmpp_component_secret_file"
    )]
    xmpp_component_secret: Option<SecretArg>,
    /// File holding the component's shared secret (one line).
    #[arg(long, env = "CONCLAVE_XMPP_COMPONENT_SECRET_FILE")]
    xmpp_component_secret_file: Option<PathBuf>,
    /// The XMPP server's component port, host:port [default: 127.0.0.1:5347].
    #[arg(long, env = "CONCLAVE_XMPP_SERVER")]
    xmpp_server: Option<String>,
    /// The XMPP server's user domains whose users may use the rooms, comma-separated
    /// [default: the component domain's parent, localhost for conference.localhost].
    #[arg(long, env = "CONCLAVE_XMPP_USER_DOMAINS", value_delimiter = ',')]
    xmpp_user_domains: Option<Vec<String>>,
}

/// Where the secret comes from; read at start.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    Value(String),
    File(PathBuf),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Value(_) => f.write_str("Value(..)"),
            SecretSource::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// What `serve` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmppSettings {
    pub component_domain: String,
    pub secret: SecretSource,
    pub server: String,
    /// `None`: the component domain's parent.
    pub user_domains: Option<Vec<String>>,
}

impl XmppFlags {
    /// The settings, or `None` when no component domain is configured.
    pub fn resolve(&self, file: &XmppFile) -> anyhow::Result<Option<XmppSettings>> {
        let file = &file.0;
        let Some(domain) = self
            .xmpp_component_domain
            .clone()
            .or_else(|| file.component_domain.clone())
        else {
            return Ok(None);
        };
        let domain = domain.trim().to_ascii_lowercase();
        check_domain(&domain)?;
        let flag_secret = match (
            &self.xmpp_component_secret,
            &self.xmpp_component_secret_file,
        ) {
            (Some(s), _) => Some(SecretSource::Value(s.0.clone())),
            (None, Some(p)) => Some(SecretSource::File(p.clone())),
            (None, None) => None,
        };
        let file_secret = match (&file.component_secret, &file.component_secret_file) {
            (Some(s), _) => Some(SecretSource::Value(s.clone())),
            (None, Some(p)) => Some(SecretSource::File(p.clone())),
            (None, None) => None,
        };
        let Some(secret) = flag_secret.or(file_secret) else {
            bail!("xmpp.component_secret or xmpp.component_secret_file (--xmpp-component-secret-file): needed with xmpp.component_domain");
        };
        let server = self
            .xmpp_server
            .clone()
            .or_else(|| file.server.clone())
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        check_server(&server)?;
        let user_domains = match self
            .xmpp_user_domains
            .clone()
            .or_else(|| file.user_domains.clone())
        {
            Some(list) => {
                let list: Vec<String> = list
                    .iter()
                    .map(|d| d.trim().to_ascii_lowercase())
                    .filter(|d| !d.is_empty())
                    .collect();
                for d in &list {
                    check_domain(d).context("xmpp.user_domains (--xmpp-user-domains)")?;
                }
                if list.is_empty() {
                    bail!("xmpp.user_domains (--xmpp-user-domains): at least one domain");
                }
                Some(list)
            }
            None => None,
        };
        Ok(Some(XmppSettings {
            component_domain: domain,
            secret,
            server,
            user_domains,
        }))
    }
}

fn check_domain(d: &str) -> anyhow::Result<()> {
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !ok {
        bail!("xmpp.component_domain (--xmpp-component-domain): a domain name such as conference.example.org");
    }
    Ok(())
}

fn check_server(s: &str) -> anyhow::Result<()> {
    let ok = s
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0));
    if !ok {
        bail!("xmpp.server (--xmpp-server): host:port, e.g. 127.0.0.1:5347");
    }
    Ok(())
}

/// Starts the component if configured (it connects in the background and retries
/// while the XMPP server is down); call inside the serve runtime, and shut it down
/// before the engine.
pub async fn start_gateway(
    engine: Engine,
    settings: Option<XmppSettings>,
) -> anyhow::Result<Option<(Arc<XmppGateway>, Arc<dyn StatusSource>)>> {
    let Some(s) = settings else {
        return Ok(None);
    };
    let secret = match &s.secret {
        SecretSource::Value(v) => v.clone(),
        SecretSource::File(p) => std::fs::read_to_string(p)
            .with_context(|| {
                format!(
                    "reading xmpp.component_secret_file (--xmpp-component-secret-file) {}",
                    p.display()
                )
            })?
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
    };
    if secret.is_empty() {
        bail!("xmpp.component_secret: empty");
    }
    let mut config = XmppConfig::new(
        s.component_domain.clone(),
        ComponentSecret::new(secret),
        s.server.clone(),
    );
    config.user_domains.clone_from(&s.user_domains);
    let handle = engine.gateway(GatewayScope {
        name: "xmpp".into(),
        schemes: vec![Scheme::Xmpp],
    });
    let gateway = Arc::new(XmppGateway::start(config, handle));
    println!(
        "conclave: XMPP component {} via {}",
        s.component_domain, s.server
    );
    let source = crate::status::GatewayStatus::source(
        "xmpp",
        gateway.clone(),
        XmppGateway::health,
        XmppGateway::metrics,
    );
    Ok(Some((gateway, source)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        xmpp: XmppFlags,
    }

    fn flags(args: &[&str]) -> Result<XmppFlags, clap::Error> {
        Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied())).map(|c| c.xmpp)
    }

    fn file(toml_text: &str) -> Result<XmppFile, toml::de::Error> {
        #[derive(Deserialize)]
        struct Root {
            #[serde(default)]
            xmpp: XmppFile,
        }
        toml::from_str::<Root>(toml_text).map(|r| r.xmpp)
    }

    #[test]
    fn no_domain_no_xmpp() {
        assert!(flags(&[])
            .unwrap()
            .resolve(&XmppFile::default())
            .unwrap()
            .is_none());
        let f = file("[xmpp]\nserver = \"127.0.0.1:1\"").unwrap();
        assert!(flags(&[]).unwrap().resolve(&f).unwrap().is_none());
    }

    #[test]
    fn file_keys_and_defaults() {
        let f = file(
            "[xmpp]\ncomponent_domain = \"Conference.Localhost\"\ncomponent_secret_file = \"/s\"",
        )
        .unwrap();
        let s = flags(&[]).unwrap().resolve(&f).unwrap().unwrap();
        assert_eq!(
            s,
            XmppSettings {
                component_domain: "conference.localhost".into(),
                secret: SecretSource::File("/s".into()),
                server: "127.0.0.1:5347".into(),
                user_domains: None,
            }
        );
    }

    #[test]
    fn user_domains_come_from_a_list_and_are_checked() {
        let f = file("[xmpp]\ncomponent_domain = \"c.example\"\ncomponent_secret = \"s\"\nuser_domains = [\"Example.org\"]").unwrap();
        let s = flags(&[]).unwrap().resolve(&f).unwrap().unwrap();
        assert_eq!(s.user_domains, Some(vec!["example.org".to_owned()]));
        let s = flags(&["--xmpp-user-domains=a.example,b.example"])
            .unwrap()
            .resolve(&f)
            .unwrap()
            .unwrap();
        assert_eq!(
            s.user_domains,
            Some(vec!["a.example".to_owned(), "b.example".to_owned()])
        );
        assert!(flags(&["--xmpp-user-domains=not a domain"])
            .unwrap()
            .resolve(&f)
            .is_err());
    }

    #[test]
    fn flags_beat_the_file() {
        let f = file("[xmpp]\ncomponent_domain = \"a.example\"\ncomponent_secret = \"file-secret\"\nserver = \"h:1\"").unwrap();
        let s = flags(&[
            "--xmpp-component-domain=b.example",
            "--xmpp-component-secret-file=/flag",
            "--xmpp-server=127.0.0.1:6000",
        ])
        .unwrap()
        .resolve(&f)
        .unwrap()
        .unwrap();
        assert_eq!(s.component_domain, "b.example");
        assert_eq!(s.secret, SecretSource::File("/flag".into()));
        assert_eq!(s.server, "127.0.0.1:6000");
    }

    #[test]
    fn a_secret_and_its_file_are_refused_together_and_one_is_needed() {
        let e = file("[xmpp]\ncomponent_secret = \"a\"\ncomponent_secret_file = \"/p\"")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("both component_secret and component_secret_file"),
            "{e}"
        );
        let e = flags(&[
            "--xmpp-component-secret=x",
            "--xmpp-component-secret-file=/p",
        ])
        .expect_err("conflicting flags");
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        let e = flags(&["--xmpp-component-domain=c.example"])
            .unwrap()
            .resolve(&XmppFile::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("component_secret"), "{e}");
        assert!(file("[xmpp]\nunknown = 1").is_err());
    }

    #[test]
    fn bad_values_name_the_key() {
        for (args, key) in [
            (
                vec!["--xmpp-component-domain=a b", "--xmpp-component-secret=x"],
                "xmpp.component_domain",
            ),
            (
                vec![
                    "--xmpp-component-domain=c.example",
                    "--xmpp-component-secret=x",
                    "--xmpp-server=nohost",
                ],
                "xmpp.server",
            ),
        ] {
            let e = flags(&args)
                .unwrap()
                .resolve(&XmppFile::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let f = flags(&[
            "--xmpp-component-domain=c.example",
            "--xmpp-component-secret=hunter2",
        ])
        .unwrap();
        let x = file("[xmpp]\ncomponent_secret = \"hunter2\"").unwrap();
        let s = f.resolve(&x).unwrap().unwrap();
        let shown = format!("{f:?} {x:?} {s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
