//! The transaction user: what the gateway does with each request the transaction layer
//! hands up. Every decision about rooms and people is an engine command through the
//! gateway's scoped handle; this layer only translates.
//!
//! Handlers run as tasks (they wait for the engine and the media node) and answer
//! through the [`Outbox`]; the protocol state that must not be shared between tasks
//! (transactions) stays in the server's core task.

pub mod auth;
pub mod call;
pub mod calls;
pub mod deliver;
pub mod facts;
pub mod fanout;
pub mod leases;
pub mod message;
pub mod metrics;
pub mod outbox;
pub mod register;
pub mod reply;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use conclave_engine::context::{Actor, Origin};
use conclave_engine::service::{EngineError, GatewayHandle, Outcome, Request};
use conclave_engine::Command;
use conclave_media::MediaNode;
use tokio::sync::Notify;

use crate::config::SipConfig;
use crate::digest::Challenger;
use crate::imc::Imc;
use crate::registrar::{Registrar, RegistrarLimits};
use crate::transaction::{Peer, ServerKey};

pub use facts::Facts;
pub use outbox::{ClientOutcome, CoreCommand, Outbox};

/// The methods the gateway answers (the `Allow` header).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO, UPDATE, REGISTER";

/// The option tags it supports (the `Supported` header).
pub const SUPPORTED: &str = "timer";

/// Where the gateway listens, for the Via and Contact of what it sends.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalAddrs {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
}

/// The transaction user and everything it shares between handler tasks.
pub struct App {
    pub config: SipConfig,
    pub handle: GatewayHandle,
    pub imc: Imc,
    pub media: Option<MediaNode>,
    pub outbox: Outbox,
    pub local: LocalAddrs,
    pub registrar: Mutex<Registrar<Peer>>,
    /// Woken when a binding's expiry may have moved earlier.
    pub registrar_changed: Notify,
    pub challenger: Mutex<Challenger>,
    pub auth_failures: Mutex<auth::Failures>,
    pub peers: Mutex<deliver::LastPeers>,
    pub calls: Mutex<calls::Calls>,
    /// Woken when a call's deadline may have moved earlier.
    pub calls_changed: Notify,
    pub metrics: metrics::Metrics,
    pub renewals: Mutex<register::Renewals>,
}

/// Locks a mutex, whatever a panicking holder left behind (the data it guards stays
/// consistent between statements).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl App {
    pub fn new(
        config: SipConfig,
        handle: GatewayHandle,
        media: Option<MediaNode>,
        outbox: Outbox,
        local: LocalAddrs,
    ) -> App {
        let limits = RegistrarLimits {
            min_expires: config.min_expires,
            max_expires: config.max_expires,
            default_expires: config.default_expires,
            max_contacts_per_aor: config.max_contacts_per_aor,
            max_bindings: config.max_bindings,
        };
        let imc = Imc::new(
            handle.clone(),
            config.addressing.clone(),
            config.addressing.command_char,
        );
        App {
            challenger: Mutex::new(Challenger::new(config.nonce_key)),
            auth_failures: Mutex::new(auth::Failures::default()),
            imc,
            media,
            outbox,
            local,
            registrar: Mutex::new(Registrar::new(limits)),
            registrar_changed: Notify::new(),
            peers: Mutex::new(deliver::LastPeers::new(65_536)),
            calls: Mutex::new(calls::Calls::default()),
            calls_changed: Notify::new(),
            metrics: metrics::Metrics::default(),
            renewals: Mutex::new(register::Renewals::default()),
            handle,
            config,
        }
    }

    /// A new request from the transaction layer.
    pub async fn on_request(self: Arc<Self>, key: ServerKey, from: Peer, req: rsip::Request) {
        self.metrics.count_request(&req.method);
        let facts = match Facts::read(&req) {
            Ok(f) => f,
            Err(e) => {
                return self
                    .outbox
                    .respond(&key, reply::status(&req, 400, &e.0))
                    .await;
            }
        };
        if let Some(resp) = self.precheck(&req, &facts) {
            return self.outbox.respond(&key, resp).await;
        }
        use rsip::Method as M;
        match facts.method {
            M::Register => register::handle(&self, key, from, req, facts).await,
            M::Options => {
                let resp = reply::options(&req);
                self.outbox.respond(&key, resp).await
            }
            M::Message => message::handle(&self, key, from, req, facts).await,
            M::Invite if facts.to_tag.is_some() => call::reinvite(&self, key, req, facts).await,
            M::Invite => call::invite(self.clone(), key, from, req, facts).await,
            M::Bye => call::bye(&self, key, req, facts).await,
            M::Info => call::info(&self, key, req, facts).await,
            M::Update => call::update(&self, key, req, facts).await,
            // CANCEL is answered by the transaction layer; one that reaches here matched
            // nothing.
            M::Cancel => {
                self.outbox
                    .respond(
                        &key,
                        reply::status(&req, 481, "Call/Transaction Does Not Exist"),
                    )
                    .await
            }
            M::Ack => {}
            M::Subscribe | M::Notify | M::Publish | M::Refer | M::PRack => {
                let resp = reply::with_allow(reply::status(&req, 405, "Method Not Allowed"));
                self.outbox.respond(&key, resp).await
            }
        }
    }

    /// Checks every request passes before its method's handler: the URI names us, and
    /// no extension it requires is unknown (RFC 3261 §8.2.2).
    fn precheck(&self, req: &rsip::Request, facts: &Facts) -> Option<rsip::Response> {
        if !matches!(req.uri.scheme, None | Some(rsip::Scheme::Sip)) {
            return Some(reply::status(req, 416, "Unsupported URI Scheme"));
        }
        if !self.is_our_host(&facts.ruri_host) && facts.method != rsip::Method::Options {
            return Some(reply::status(
                req,
                404,
                "Not Found (not a domain of this server)",
            ));
        }
        let unknown: Vec<&str> = facts
            .require
            .iter()
            .map(String::as_str)
            .filter(|t| *t != "timer")
            .collect();
        if !unknown.is_empty() && facts.method != rsip::Method::Cancel {
            let mut resp = reply::status(req, 420, "Bad Extension");
            resp.headers.push(rsip::Header::Other(
                "Unsupported".into(),
                unknown.join(", "),
            ));
            return Some(resp);
        }
        None
    }

    /// Whether a Request-URI host is this server: its domain, or an IP literal (phones
    /// that dial the server by address).
    pub fn is_our_host(&self, host: &str) -> bool {
        host.eq_ignore_ascii_case(&self.config.addressing.domain)
            || host.parse::<std::net::IpAddr>().is_ok()
    }

    /// An ACK for a 2xx (dialog-level).
    pub async fn on_ack(self: Arc<Self>, req: rsip::Request) {
        call::ack(&self, req).await
    }

    /// A CANCEL matched an INVITE that is still pending.
    pub async fn on_cancelled(self: Arc<Self>, invite: ServerKey) {
        call::cancelled(&self, invite).await
    }

    /// Our 2xx to an INVITE was never acknowledged.
    pub async fn on_ack_timeout(self: Arc<Self>, invite: ServerKey) {
        call::ack_timeout(&self, invite).await
    }

    /// Runs `command` for `actor` through the scoped handle, with the SIP origin.
    pub async fn execute(
        &self,
        actor: &conclave_engine::ids::Address,
        remote: Option<SocketAddr>,
        correlation: &str,
        command: Command,
    ) -> Result<Outcome, EngineError> {
        let mut req = Request::new(
            command,
            Actor::Identity(actor.clone()),
            Origin {
                gateway: "sip".into(),
                protocol: "sip".into(),
                remote_addr: remote.map(|r| r.ip().to_string()),
            },
        );
        req.correlation_id = correlation_id(correlation);
        self.handle.execute(req).await
    }

    /// Journals a refusal the gateway decided itself (a codec, a session interval, a
    /// failed digest: no engine command was refused), in the background after the SIP
    /// answer went out. The engine keeps one record a minute per source, action and
    /// code, so a flood costs the journal nothing more.
    pub fn record_refusal(
        self: &Arc<Self>,
        who: &conclave_engine::ids::Address,
        remote: SocketAddr,
        call_id: &str,
        room: Option<conclave_engine::ids::RoomName>,
        action: &'static str,
        code: &'static str,
    ) {
        let app = self.clone();
        let who = who.clone();
        let call_id = call_id.to_owned();
        tokio::spawn(async move {
            let cmd = Command::RecordGatewayRefusal {
                room,
                action: action.into(),
                code: code.into(),
            };
            // Always refused: that is how it is journaled.
            let _ = app.execute(&who, Some(remote), &call_id, cmd).await;
        });
    }

    /// Seconds since the Unix epoch, from the engine's clock (digest nonces).
    pub fn unix_now(&self) -> u64 {
        u64::try_from(self.handle.engine().now().timestamp()).unwrap_or(0)
    }

    /// The monotonic now of the sans-IO parts.
    pub fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Sleeps until `next` (forever without one) or until `changed` is notified (a deadline
/// may have moved earlier). True when the deadline came: the caller then handles what is
/// due; false when it should look at its deadlines again.
pub async fn sleep_until_due(next: Option<Instant>, changed: &Notify) -> bool {
    let notified = changed.notified();
    match next {
        Some(at) => tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => true,
            _ = notified => false,
        },
        None => {
            notified.await;
            false
        }
    }
}

/// A correlation id from a Call-ID: the engine bounds ids, so a long or odd Call-ID is
/// hashed instead of refused.
fn correlation_id(call_id: &str) -> Option<String> {
    if call_id.is_empty() {
        return None;
    }
    let ok = call_id.len() <= 64
        && call_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Some(format!("sip-{call_id}"))
    } else {
        let h = blake3::hash(call_id.as_bytes());
        Some(format!("sip-{}", &h.to_hex()[..32]))
    }
}
