//! How the gateway reaches nats-server: authentication (user and password, token, nkey
//! seed or credentials file) and TLS (a CA to trust, a client certificate, TLS
//! required). [`NatsAuth`] and [`NatsTls`] are what the configuration says; [`Transport`]
//! is the checked form (secrets read from their files, PEM files parsed), checked once
//! at start so that a missing file or a malformed seed stops the server with a clear
//! message instead of surfacing later as a connection that never comes up, and then
//! applied to async-nats connect options ([`Transport::apply`]).

use std::fmt;
use std::path::{Path, PathBuf};

use async_nats::rustls::pki_types::pem::PemObject;
use async_nats::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use async_nats::{ConnectError, ConnectErrorKind, ConnectOptions};

use crate::error::NatsError;

/// A secret given in the configuration itself or as the path of a file that holds it.
/// A file's surrounding whitespace (the final newline) is not part of the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Value(String),
    File(PathBuf),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Value(_) => f.write_str("Secret::Value(..)"),
            Secret::File(p) => f.debug_tuple("Secret::File").field(p).finish(),
        }
    }
}

impl From<&str> for Secret {
    fn from(v: &str) -> Self {
        Secret::Value(v.to_owned())
    }
}

impl From<String> for Secret {
    fn from(v: String) -> Self {
        Secret::Value(v)
    }
}

impl Secret {
    /// The secret itself; `what` names it in errors (never the value).
    pub fn read(&self, what: &str) -> Result<String, NatsError> {
        let value = match self {
            Secret::Value(v) => v.clone(),
            Secret::File(path) => {
                warn_if_shared(path, what);
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        NatsError::Config(format!("{what}: cannot read {}: {e}", path.display()))
                    })?
                    .trim()
                    .to_owned()
            }
        };
        if value.is_empty() {
            return Err(NatsError::Config(format!("{what} is empty")));
        }
        Ok(value)
    }
}

/// Says so in the log when a file holding a secret can be read by other users.
fn warn_if_shared(path: &Path, what: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    "the {what} file is readable by other users (chmod 600 it)"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
}

/// How the server authenticates to nats-server: at most one way (user and password,
/// token, nkey seed, or a credentials file); none set is no authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsAuth {
    /// User name (with `password`).
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// The server's `authorization { token }` (not a Conclave service token).
    pub token: Option<Secret>,
    /// A user nkey seed (`SU…`), as `nk -gen user` prints it.
    pub nkey_seed: Option<Secret>,
    /// A `.creds` file (user JWT and nkey seed), as `nsc` writes it.
    pub credentials_file: Option<PathBuf>,
}

/// TLS towards nats-server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsTls {
    /// PEM certificates to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate (chain), for servers that verify clients; with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Refuse to talk to a server without TLS. Unset: required as soon as any of the
    /// files above is set (a `tls://` URL always requires it).
    pub required: Option<bool>,
}

/// The checked authentication.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Auth {
    None,
    UserPassword {
        user: String,
        password: String,
    },
    Token(String),
    /// The seed and its public key (which may be logged).
    NKey {
        seed: String,
        public: String,
    },
    Credentials {
        path: PathBuf,
        contents: String,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Auth {
    /// Names the way of authenticating without its secret, for logs and errors.
    pub(crate) fn describe(&self) -> String {
        match self {
            Auth::None => "no credentials".into(),
            Auth::UserPassword { user, .. } => format!("user {user:?} with a password"),
            Auth::Token(_) => "a token".into(),
            Auth::NKey { public, .. } => format!("nkey {public}"),
            Auth::Credentials { path, .. } => format!("credentials file {}", path.display()),
        }
    }
}

/// The checked TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tls {
    pub ca_file: Option<PathBuf>,
    pub client: Option<(PathBuf, PathBuf)>,
    pub required: bool,
}

/// Authentication and TLS, checked, ready to apply to connect options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transport {
    pub auth: Auth,
    pub tls: Tls,
}

impl Transport {
    /// Reads the secrets and checks the files; fails on anything that cannot work.
    pub(crate) fn resolve(auth: &NatsAuth, tls: &NatsTls) -> Result<Transport, NatsError> {
        Ok(Transport {
            auth: resolve_auth(auth)?,
            tls: resolve_tls(tls)?,
        })
    }

    /// Adds the authentication and TLS options.
    pub(crate) fn apply(&self, mut opts: ConnectOptions) -> Result<ConnectOptions, NatsError> {
        opts = match &self.auth {
            Auth::None => opts,
            Auth::UserPassword { user, password } => {
                opts.user_and_password(user.clone(), password.clone())
            }
            Auth::Token(t) => opts.token(t.clone()),
            Auth::NKey { seed, .. } => opts.nkey(seed.clone()),
            Auth::Credentials { path, contents } => opts
                .credentials(contents)
                .map_err(|e| creds_error(path, &e))?,
        };
        if let Some(ca) = &self.tls.ca_file {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls.client {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(opts.require_tls(self.tls.required))
    }
}

fn creds_error(path: &Path, e: &dyn fmt::Display) -> NatsError {
    NatsError::Config(format!(
        "credentials file {}: not a NATS credentials file (user JWT and nkey seed): {e}",
        path.display()
    ))
}

fn resolve_auth(a: &NatsAuth) -> Result<Auth, NatsError> {
    let bad = |m: String| Err(NatsError::Config(m));
    let mut ways = Vec::new();
    if a.user.is_some() || a.password.is_some() {
        ways.push("user and password");
    }
    if a.token.is_some() {
        ways.push("token");
    }
    if a.nkey_seed.is_some() {
        ways.push("nkey seed");
    }
    if a.credentials_file.is_some() {
        ways.push("credentials file");
    }
    if ways.len() > 1 {
        return bad(format!(
            "NATS authentication: configure one way to authenticate, not {}",
            ways.join(" and ")
        ));
    }
    if let Some(t) = &a.token {
        return Ok(Auth::Token(t.read("NATS token")?));
    }
    if let Some(s) = &a.nkey_seed {
        let seed = s.read("NATS nkey seed")?;
        // Never put the seed (or the library's message, which might quote it) in an error.
        let pair = nkeys::KeyPair::from_seed(&seed).map_err(|_| {
            NatsError::Config(
                "NATS nkey seed: not an nkey seed (expected the `SU…` line `nk -gen user` prints)"
                    .into(),
            )
        })?;
        if !seed.starts_with("SU") {
            return bad(
                "NATS nkey seed: a user seed (`SU…`) is needed, not an operator, account or \
                 server seed"
                    .into(),
            );
        }
        return Ok(Auth::NKey {
            public: pair.public_key(),
            seed,
        });
    }
    if let Some(path) = &a.credentials_file {
        warn_if_shared(path, "NATS credentials");
        let contents = std::fs::read_to_string(path).map_err(|e| {
            NatsError::Config(format!(
                "NATS credentials file: cannot read {}: {e}",
                path.display()
            ))
        })?;
        // Parsed now, so that a broken file fails the start rather than every connect.
        ConnectOptions::new()
            .credentials(&contents)
            .map_err(|e| creds_error(path, &e))?;
        return Ok(Auth::Credentials {
            path: path.clone(),
            contents,
        });
    }
    match (&a.user, &a.password) {
        (Some(user), Some(p)) => {
            if user.is_empty() {
                return bad("NATS user: empty".into());
            }
            Ok(Auth::UserPassword {
                user: user.clone(),
                password: p.read("NATS password")?,
            })
        }
        (Some(_), None) => bad("NATS authentication: a user needs a password".into()),
        (None, Some(_)) => bad("NATS authentication: a password needs a user".into()),
        (None, None) => Ok(Auth::None),
    }
}

fn resolve_tls(t: &NatsTls) -> Result<Tls, NatsError> {
    if let Some(ca) = &t.ca_file {
        let certs = read_pem(ca, "CA file", |b| {
            CertificateDer::pem_slice_iter(b).collect::<Result<Vec<_>, _>>()
        })?
        .map_err(|e| tls_error(ca, "CA file", &e.to_string()))?;
        if certs.is_empty() {
            return Err(tls_error(ca, "CA file", "holds no PEM certificate"));
        }
    }
    let client = match (&t.cert_file, &t.key_file) {
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            return Err(NatsError::Config(
                "NATS TLS: a client certificate needs both a certificate file and a key file"
                    .into(),
            ))
        }
        (Some(cert), Some(key)) => {
            let certs = read_pem(cert, "certificate file", |b| {
                CertificateDer::pem_slice_iter(b).collect::<Result<Vec<_>, _>>()
            })?
            .map_err(|e| tls_error(cert, "certificate file", &e.to_string()))?;
            if certs.is_empty() {
                return Err(tls_error(
                    cert,
                    "certificate file",
                    "holds no PEM certificate",
                ));
            }
            warn_if_shared(key, "TLS key");
            read_pem(key, "key file", |b| {
                PrivateKeyDer::from_pem_slice(b).map(|_| ())
            })?
            .map_err(|e| tls_error(key, "key file", &format!("no usable PEM private key ({e})")))?;
            Some((cert.clone(), key.clone()))
        }
    };
    let any_file = t.ca_file.is_some() || client.is_some();
    Ok(Tls {
        ca_file: t.ca_file.clone(),
        client,
        required: t.required.unwrap_or(any_file),
    })
}

fn read_pem<T>(path: &Path, what: &str, parse: impl FnOnce(&[u8]) -> T) -> Result<T, NatsError> {
    let bytes = std::fs::read(path).map_err(|e| tls_error(path, what, &e.to_string()))?;
    Ok(parse(&bytes))
}

fn tls_error(path: &Path, what: &str, reason: &str) -> NatsError {
    NatsError::Config(format!("NATS TLS {what} {}: {reason}", path.display()))
}

/// A connection failure as an error with a stable code: `nats.auth` (credentials
/// refused or unusable), `nats.tls` (TLS setup or handshake) or `nats.connect`
/// (anything else: refused, unreachable, timed out). `url` is already redacted.
pub(crate) fn connect_error(e: &ConnectError, auth: &Auth, url: &str) -> NatsError {
    match e.kind() {
        ConnectErrorKind::AuthorizationViolation => refused(auth, url),
        ConnectErrorKind::Authentication => NatsError::Auth(format!(
            "authenticating to the NATS server at {url} with {} failed: {e}",
            auth.describe()
        )),
        ConnectErrorKind::Tls => NatsError::Tls(format!("TLS with {url}: {e}")),
        _ if is_tls_failure(e) => {
            NatsError::Tls(format!("the TLS handshake with {url} failed: {e}"))
        }
        _ => NatsError::Connect {
            url: url.to_owned(),
            reason: e.to_string(),
        },
    }
}

fn refused(auth: &Auth, url: &str) -> NatsError {
    NatsError::Auth(format!(
        "the NATS server at {url} refused the credentials ({}): authorization violation",
        auth.describe()
    ))
}

/// Whether the error chain holds a rustls error (a failed handshake arrives as an I/O
/// error wrapping one).
fn is_tls_failure(e: &ConnectError) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<async_nats::rustls::Error>() {
            return true;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<async_nats::rustls::Error>())
            {
                return true;
            }
        }
        source = s.source();
    }
    false
}

/// The same for what async-nats reports through its event callback while it retries:
/// only the kind of the failure (a probe with [`connect_error`] gives the detail).
pub(crate) fn kind_error(kind: &str, auth: &Auth, url: &str) -> NatsError {
    match kind {
        "authorization violation" => refused(auth, url),
        "failed signing nonce" => NatsError::Auth(format!(
            "cannot authenticate to the NATS server at {url} with {}",
            auth.describe()
        )),
        "TLS error" => NatsError::Tls(format!("TLS with {url} failed")),
        other => NatsError::Connect {
            url: url.to_owned(),
            reason: other.to_owned(),
        },
    }
}

/// The URL(s) with any `user:password@` replaced, fit for logs.
pub fn redacted_url(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let one = one.trim();
            let (scheme, rest) = match one.find("://") {
                Some(i) => one.split_at(i + 3),
                None => ("", one),
            };
            let host_end = rest.find('/').unwrap_or(rest.len());
            match rest[..host_end].rfind('@') {
                Some(at) => format!("{scheme}***@{}", &rest[at + 1..]),
                None => one.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        p
    }

    fn err(a: &NatsAuth) -> String {
        match resolve_auth(a) {
            Err(NatsError::Config(m)) => m,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn no_settings_is_no_authentication_and_no_tls() {
        let t = Transport::resolve(&NatsAuth::default(), &NatsTls::default()).unwrap();
        assert_eq!(t.auth, Auth::None);
        assert_eq!(
            t.tls,
            Tls {
                ca_file: None,
                client: None,
                required: false
            }
        );
        let opts = format!("{:?}", t.apply(ConnectOptions::new()).unwrap());
        assert!(opts.contains("\"tls_required\": false"), "{opts}");
    }

    #[test]
    fn user_and_password_inline_or_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = NatsAuth {
            user: Some("conclave".into()),
            password: Some("s3cret".into()),
            ..Default::default()
        };
        assert_eq!(
            resolve_auth(&a).unwrap(),
            Auth::UserPassword {
                user: "conclave".into(),
                password: "s3cret".into()
            }
        );
        let a = NatsAuth {
            password: Some(Secret::File(file(dir.path(), "pw", "  from-file\n"))),
            ..a
        };
        assert!(matches!(
            resolve_auth(&a).unwrap(),
            Auth::UserPassword { password, .. } if password == "from-file"
        ));
        assert!(err(&NatsAuth {
            user: Some("x".into()),
            ..Default::default()
        })
        .contains("needs a password"));
        assert!(err(&NatsAuth {
            password: Some("x".into()),
            ..Default::default()
        })
        .contains("needs a user"));
        let missing = err(&NatsAuth {
            user: Some("x".into()),
            password: Some(Secret::File(dir.path().join("absent"))),
            ..Default::default()
        });
        assert!(missing.contains("NATS password: cannot read"), "{missing}");
        let empty = err(&NatsAuth {
            user: Some("x".into()),
            password: Some(Secret::File(file(dir.path(), "empty", "\n"))),
            ..Default::default()
        });
        assert!(empty.contains("empty"), "{empty}");
    }

    #[test]
    fn one_way_to_authenticate_at_a_time() {
        let m = err(&NatsAuth {
            token: Some("t".into()),
            user: Some("u".into()),
            password: Some("p".into()),
            ..Default::default()
        });
        assert!(m.contains("not user and password and token"), "{m}");
        let m = err(&NatsAuth {
            token: Some("t".into()),
            credentials_file: Some("/x".into()),
            ..Default::default()
        });
        assert!(m.contains("token and credentials file"), "{m}");
    }

    #[test]
    fn token_inline_or_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = NatsAuth {
            token: Some(Secret::File(file(dir.path(), "t", "tok-123\n"))),
            ..Default::default()
        };
        let t = Transport::resolve(&a, &NatsTls::default()).unwrap();
        assert_eq!(t.auth, Auth::Token("tok-123".into()));
        assert_eq!(t.auth.describe(), "a token");
        assert!(t.apply(ConnectOptions::new()).is_ok());
    }

    #[test]
    fn nkey_seeds_are_checked_and_never_shown() {
        let pair = nkeys::KeyPair::new_user();
        let seed = pair.seed().unwrap();
        let a = NatsAuth {
            nkey_seed: Some(Secret::Value(seed.clone())),
            ..Default::default()
        };
        let auth = resolve_auth(&a).unwrap();
        assert_eq!(
            auth,
            Auth::NKey {
                seed: seed.clone(),
                public: pair.public_key()
            }
        );
        let shown = format!("{auth:?} {}", auth.describe());
        assert!(shown.contains(&pair.public_key()) && !shown.contains(&seed));
        assert!(format!("{a:?}").contains("Secret::Value(..)"));

        let bad = err(&NatsAuth {
            nkey_seed: Some("SUnot-a-seed".into()),
            ..Default::default()
        });
        assert!(
            bad.contains("not an nkey seed") && !bad.contains("SUnot"),
            "{bad}"
        );
        let account = nkeys::KeyPair::new_account().seed().unwrap();
        let m = err(&NatsAuth {
            nkey_seed: Some(Secret::Value(account)),
            ..Default::default()
        });
        assert!(m.contains("a user seed"), "{m}");
        // From a file, as `nk -gen user > user.nk` writes it.
        let dir = tempfile::tempdir().unwrap();
        let a = NatsAuth {
            nkey_seed: Some(Secret::File(file(
                dir.path(),
                "user.nk",
                &format!("{seed}\n"),
            ))),
            ..Default::default()
        };
        let t = Transport::resolve(&a, &NatsTls::default()).unwrap();
        assert!(t.apply(ConnectOptions::new()).is_ok());
    }

    /// A credentials file as `nsc generate creds` writes it (the client does not check
    /// the JWT's signature; the server does).
    fn creds(seed: &str) -> String {
        format!(
            "-----BEGIN NATS USER JWT-----\n\
             eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVQSJ9.c2ln\n\
             ------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
             *************************************************************\n"
        )
    }

    #[test]
    fn credentials_files_are_parsed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let seed = nkeys::KeyPair::new_user().seed().unwrap();
        let path = file(dir.path(), "user.creds", &creds(&seed));
        let a = NatsAuth {
            credentials_file: Some(path.clone()),
            ..Default::default()
        };
        let t = Transport::resolve(&a, &NatsTls::default()).unwrap();
        assert!(matches!(&t.auth, Auth::Credentials { path: p, .. } if *p == path));
        assert_eq!(
            t.auth.describe(),
            format!("credentials file {}", path.display())
        );
        assert!(t.apply(ConnectOptions::new()).is_ok());

        let broken = file(dir.path(), "broken.creds", "not a creds file\n");
        let m = err(&NatsAuth {
            credentials_file: Some(broken),
            ..Default::default()
        });
        assert!(m.contains("not a NATS credentials file"), "{m}");
        let m = err(&NatsAuth {
            credentials_file: Some(dir.path().join("absent.creds")),
            ..Default::default()
        });
        assert!(m.contains("cannot read"), "{m}");
    }

    // A self-signed certificate and its key (P-256), for parsing only.
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBfjCCASOgAwIBAgIUYHtJs/YMmO5BkPKSG3BEm/S/PGUwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MB4XDTI2MTEzMDE4NDgyOVoXDTM2MTEyNzE4
NDgyOVowFDESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAELFDc3XbdHlVT6OusJe//Tsz8WInpQXLhlf2HI2BPJZf3XfyYB6/4Quj2
sW2UWuXLaBnholIqn70o82Gc8o15s6NTMFEwHQYDVR0OBBYEFGlNihE1v0nfV5FP
W3GwfeLdf7F6MB8GA1UdIwQYMBaAFGlNihE1v0nfV5FPW3GwfeLdf7F6MA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAL4J0T2P5+PMHRJr3hJRQkvM
DHwzYlV5SGazjGEUhWbvAiEA/T+nS/oSVl7RG7w9RTCQkhpujkVpyVzAO1SCA8HV
Unk=
-----END CERTIFICATE-----
";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgKSYF4ckAHMWzEB96
LXgXyD0acEVCbKs4Fl0B91ULYPOhRANCAAQsUNzddt0eVVPo66wl7/9OzPxYielB
cuGV/YcjYE8ll/dd/JgHr/hC6PaxbZRa5ctoGeGiUiqfvSjzYZzyjXmz
-----END PRIVATE KEY-----
";

    #[test]
    fn tls_files_are_checked_and_imply_tls_required() {
        let dir = tempfile::tempdir().unwrap();
        let ca = file(dir.path(), "ca.pem", CERT);
        let cert = file(dir.path(), "client.pem", CERT);
        let key = file(dir.path(), "client.key", KEY);
        let t = NatsTls {
            ca_file: Some(ca.clone()),
            cert_file: Some(cert.clone()),
            key_file: Some(key.clone()),
            required: None,
        };
        let resolved = Transport::resolve(&NatsAuth::default(), &t).unwrap();
        assert_eq!(
            resolved.tls,
            Tls {
                ca_file: Some(ca.clone()),
                client: Some((cert.clone(), key.clone())),
                required: true
            }
        );
        let opts = format!("{:?}", resolved.apply(ConnectOptions::new()).unwrap());
        assert!(opts.contains("\"tls_required\": true"), "{opts}");
        assert!(opts.contains(&format!("{:?}", ca)), "{opts}");
        assert!(opts.contains(&format!("Some({:?})", cert)), "{opts}");
        assert!(opts.contains(&format!("Some({:?})", key)), "{opts}");

        // Explicitly not required: TLS only if the server asks for it.
        let optional = resolve_tls(&NatsTls {
            required: Some(false),
            ..t.clone()
        })
        .unwrap();
        assert!(!optional.required);
        // Required without any file: the system's roots.
        let bare = resolve_tls(&NatsTls {
            required: Some(true),
            ..Default::default()
        })
        .unwrap();
        assert!(bare.required && bare.ca_file.is_none());

        let tls_err = |t: &NatsTls| match resolve_tls(t) {
            Err(NatsError::Config(m)) => m,
            other => panic!("expected a configuration error, got {other:?}"),
        };
        let m = tls_err(&NatsTls {
            key_file: None,
            ..t.clone()
        });
        assert!(m.contains("both a certificate file and a key file"), "{m}");
        let m = tls_err(&NatsTls {
            ca_file: Some(file(dir.path(), "empty.pem", "nothing here\n")),
            ..Default::default()
        });
        assert!(m.contains("holds no PEM certificate"), "{m}");
        let m = tls_err(&NatsTls {
            ca_file: Some(dir.path().join("absent.pem")),
            ..Default::default()
        });
        assert!(m.contains("absent.pem"), "{m}");
        let m = tls_err(&NatsTls {
            key_file: Some(cert.clone()),
            ..t
        });
        assert!(m.contains("no usable PEM private key"), "{m}");
    }

    #[test]
    fn failures_are_named_by_kind() {
        let auth = Auth::UserPassword {
            user: "conclave".into(),
            password: "pw".into(),
        };
        let e = connect_error(
            &ConnectError::new(ConnectErrorKind::AuthorizationViolation),
            &auth,
            "nats://h:4222",
        );
        assert_eq!(e.code(), "nats.auth");
        let msg = e.to_string();
        assert!(
            msg.contains("refused the credentials (user \"conclave\" with a password)"),
            "{msg}"
        );
        assert!(!msg.contains("pw"));
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            async_nats::rustls::Error::General("bad certificate".into()),
        );
        let e = connect_error(
            &ConnectError::with_source(ConnectErrorKind::Io, io),
            &auth,
            "u",
        );
        assert_eq!(e.code(), "nats.tls");
        assert!(e.to_string().contains("bad certificate"), "{e}");
        let e = connect_error(
            &ConnectError::with_source(ConnectErrorKind::Io, "connection refused"),
            &auth,
            "u",
        );
        assert_eq!(e.code(), "nats.connect");
        assert_eq!(
            kind_error("authorization violation", &auth, "u").code(),
            "nats.auth"
        );
        assert_eq!(
            kind_error("failed signing nonce", &auth, "u").code(),
            "nats.auth"
        );
        assert_eq!(kind_error("TLS error", &auth, "u").code(), "nats.tls");
        assert_eq!(kind_error("IO error", &auth, "u").code(), "nats.connect");
    }

    #[test]
    fn urls_lose_their_credentials_in_logs() {
        assert_eq!(
            redacted_url("nats://127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
        assert_eq!(
            redacted_url("nats://u:p@a:4222, tls://tok@b:4222"),
            "nats://***@a:4222,tls://***@b:4222"
        );
        assert_eq!(redacted_url("u:p@host"), "***@host");
    }
}
