//! Who may act for a SIP identity.
//!
//! An identity with SIP credentials (set by an operator, stored as HA1 digests) acts
//! only with a valid digest response: every request it sends is challenged with `401`
//! until it carries one (phones then reuse the nonce with a growing `nc`). An identity
//! without credentials acts only when the operator opened registration, and only in the
//! server's own domain (a guest of the domain, as a web guest is). The From header alone
//! is never trusted for an identity that has credentials.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conclave_engine::ids::{Address, Principal};

use super::facts::header_values;
use super::{lock, reply, App};
use crate::digest::{DigestError, StoredHa1};
use crate::transaction::{Peer, ServerKey};

/// Failed digest answers one source address may send per window before every request
/// of it that needs authentication is refused outright (an online password guesser gets
/// 20 guesses a minute, not thousands).
pub const MAX_FAILURES: u32 = 20;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
const MAX_TRACKED: usize = 65_536;

/// Failed digest answers per source address in the current window, bounded.
#[derive(Debug, Default)]
pub struct Failures {
    by_ip: HashMap<IpAddr, (u32, Instant)>,
}

impl Failures {
    /// Whether `ip` used up its failures for the window.
    fn throttled(&self, ip: IpAddr, now: Instant) -> bool {
        self.by_ip.get(&ip).is_some_and(|(n, since)| {
            *n >= MAX_FAILURES && now.duration_since(*since) < FAILURE_WINDOW
        })
    }

    fn failed(&mut self, ip: IpAddr, now: Instant) {
        if self.by_ip.len() >= MAX_TRACKED && !self.by_ip.contains_key(&ip) {
            self.by_ip
                .retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
            if self.by_ip.len() >= MAX_TRACKED {
                return;
            }
        }
        let entry = self.by_ip.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= FAILURE_WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }
}

/// Whether the request may act for its From identity; when not, it has been answered.
///
/// Only then is `peer` remembered as where the identity last sent from (where messages
/// for it go while it has no registration): a forged From must not redirect anyone's
/// messages.
///
/// A refusal other than the first challenge (a wrong answer, an identity without
/// credentials, a disabled account, a throttled address) is journaled, once a minute per
/// source (`App::record_refusal`), with the digest error's code.
pub async fn authenticate(
    app: &Arc<App>,
    key: &ServerKey,
    peer: Peer,
    req: &rsip::Request,
    who: &Address,
) -> bool {
    let from = peer.addr.ip();
    let action = action_of(&req.method);
    if lock(&app.auth_failures).throttled(from, app.now()) {
        app.metrics.count_auth_refusal();
        app.record_refusal(who, peer.addr, "", None, action, "sip.auth_throttled");
        let resp = reply::header(
            reply::status(
                req,
                403,
                "Forbidden (too many failed authentications; retry later)",
            ),
            "Retry-After",
            FAILURE_WINDOW.as_secs().to_string(),
        );
        app.outbox.respond(key, resp).await;
        return false;
    }
    match check(app, from, req, who) {
        Ok(()) => {
            lock(&app.peers).remember(who, peer);
            true
        }
        Err((resp, code)) => {
            app.metrics.count_auth_refusal();
            app.outbox.respond(key, resp).await;
            if let Some(code) = code {
                app.record_refusal(who, peer.addr, "", None, action, code);
            }
            false
        }
    }
}

/// The action a refusal of `method` is journaled under.
fn action_of(method: &rsip::Method) -> &'static str {
    match method {
        rsip::Method::Register => "sip_register",
        rsip::Method::Invite => "sip_invite",
        rsip::Method::Message => "sip_message",
        _ => "sip_request",
    }
}

/// A refusal: the answer, and the code it is journaled with (`None`: not journaled, the
/// first challenge of a normal exchange).
type Refusal = (rsip::Response, Option<&'static str>);

fn check(app: &App, from: IpAddr, req: &rsip::Request, who: &Address) -> Result<(), Refusal> {
    let (credential, disabled) = app.handle.engine().read(|s| {
        let cred = s.sip_credential(who).cloned();
        let disabled = s
            .account_of(&Principal::Address(who.clone()))
            .is_some_and(|a| !a.enabled);
        (cred, disabled)
    });
    if disabled {
        return Err((
            reply::status(req, 403, "Forbidden (account disabled)"),
            Some("account.disabled"),
        ));
    }
    let realm = credential
        .as_ref()
        .map_or(app.config.realm.clone(), |c| c.realm.clone());
    let authorization = header_values(&req.headers, "Authorization", None);
    let Some(credential) = credential else {
        if app.config.open_registration
            && who
                .domain()
                .is_some_and(|d| d.eq_ignore_ascii_case(&app.config.addressing.domain))
        {
            return Ok(());
        }
        // Challenge first, so that a stranger learns nothing about which identities
        // have credentials; refuse once they answered the challenge.
        if authorization.is_empty() {
            return Err((challenge(app, req, &realm, false), None));
        }
        lock(&app.auth_failures).failed(from, app.now());
        return Err((
            reply::status(req, 403, "Forbidden (no SIP credentials for this identity)"),
            Some("sip.no_credentials"),
        ));
    };
    let Some(value) = authorization.first() else {
        return Err((challenge(app, req, &realm, false), None));
    };
    let method = req.method.to_string();
    let now = app.unix_now();
    let uri_ok = |uri: &str| equivalent_uri(app, &req.uri, uri);
    let result = lock(&app.challenger).verify_with(value, &method, uri_ok, &realm, now, |user| {
        (user == who.local()).then(|| StoredHa1 {
            md5: credential.ha1_md5.clone(),
            sha256: credential.ha1_sha256.clone(),
        })
    });
    match result {
        Ok(v) if app.config.digest_algorithms.contains(&v.algorithm) => Ok(()),
        Ok(v) => {
            tracing::info!(identity = %who, algorithm = v.algorithm.as_str(), "SIP digest with an algorithm not offered");
            Err((challenge(app, req, &realm, false), Some("digest.algorithm")))
        }
        Err(DigestError::Stale) => Err((challenge(app, req, &realm, true), None)),
        Err(e) => {
            tracing::info!(identity = %who, code = e.code(), "SIP digest refused");
            lock(&app.auth_failures).failed(from, app.now());
            Err((challenge(app, req, &realm, false), Some(e.code())))
        }
    }
}

/// Whether a digest `uri` names what the Request-URI names (RFC 3261 §22.4): the same
/// text, or a sip: URI with the same user part whose host is this server (its domain or
/// an address), whatever port or parameters it carries.
fn equivalent_uri(app: &App, request_uri: &rsip::Uri, uri: &str) -> bool {
    if uri.eq_ignore_ascii_case(&request_uri.to_string()) {
        return true;
    }
    let Ok(theirs) = rsip::Uri::try_from(uri) else {
        return false;
    };
    matches!(theirs.scheme, None | Some(rsip::Scheme::Sip))
        && theirs.user().unwrap_or_default() == request_uri.user().unwrap_or_default()
        && app.is_our_host(&super::facts::host_string(&theirs))
}

fn challenge(app: &App, req: &rsip::Request, realm: &str, stale: bool) -> rsip::Response {
    let values = lock(&app.challenger).challenge_with(
        realm,
        app.unix_now(),
        stale,
        &app.config.digest_algorithms,
    );
    let mut resp = reply::status(req, 401, "Unauthorized");
    for v in values {
        resp.headers
            .push(rsip::Header::Other("WWW-Authenticate".into(), v));
    }
    resp
}
