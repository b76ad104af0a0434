//! The XMPP gateway: Conclave attached to a real XMPP server (prosody, ejabberd…) as an
//! XEP-0114 external component, the way Jitsi's focus attaches to prosody.
//!
//! The component answers service discovery on its domain ([`core`]) and serves every
//! Conclave room as an XEP-0045 multi-user chat room ([`muc`]); both are sans-IO, and
//! the connection ([`connection`]) is the thin shell around them that also follows the
//! engine's committed feed and runs the commands the MUC core asks for.
//!
//! The XEP-0114 handshake is written here over Tokio rather than with tokio-xmpp: it
//! is a few lines (a stream header and one SHA-1), and owning the framing is what lets
//! the gateway bound every stanza at [`framer::MAX_STANZA`] before parsing it.

pub mod archive;
pub mod connection;
pub mod core;
pub mod dataform;
pub mod error;
pub mod framer;
pub mod history;
pub mod mam;
pub mod muc;
pub mod roomconfig;
pub mod xml;

use std::fmt;
use std::time::Duration;

pub use connection::{Status, XmppGateway};
pub use error::XmppError;

/// The component secret; never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ComponentSecret(String);

impl ComponentSecret {
    /// Wraps a secret.
    pub fn new(secret: String) -> Self {
        ComponentSecret(secret)
    }

    /// The secret itself, for the handshake only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ComponentSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ComponentSecret(..)")
    }
}

/// How to reach the XMPP server and who to be there.
#[derive(Debug, Clone)]
pub struct XmppConfig {
    /// The component's domain, e.g. `conference.localhost`.
    pub component_domain: String,
    /// The shared secret the server has for that component.
    pub secret: ComponentSecret,
    /// The server's component port, `host:port`.
    pub server: String,
    /// First wait after a failure; doubled each time up to `backoff_max`.
    pub backoff_min: Duration,
    /// The longest wait between attempts.
    pub backoff_max: Duration,
    /// Bound on connecting, the handshake and each write.
    pub io_timeout: Duration,
    /// The domains whose users may use the rooms (the XMPP server's own); `None`: the
    /// component domain's parent (`conference.localhost` serves `localhost`).
    pub user_domains: Option<Vec<String>>,
}

impl XmppConfig {
    /// A configuration with the default timings (0.5 s doubling up to 30 s; 10 s I/O).
    pub fn new(component_domain: String, secret: ComponentSecret, server: String) -> Self {
        XmppConfig {
            component_domain,
            secret,
            server,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            io_timeout: Duration::from_secs(10),
            user_domains: None,
        }
    }
}
