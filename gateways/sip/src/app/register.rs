//! REGISTER: bindings, and the sessions they keep alive.
//!
//! A registration is the lease of its identity's IM sessions (its memberships of rooms
//! joined with IMC commands): while a binding lives, the gateway renews them; when the
//! last binding ends (un-REGISTER or expiry) it stops, and each session ends with its
//! lease, journaled (`lease_expired`).
//! Calls are not touched: a call's dialog is its own lease.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conclave_engine::ids::{Address, RoomName};
use conclave_engine::Command;

use super::facts::{contact_uri, header_values};
use super::{auth, lock, reply, App, Facts};
use crate::imc::im_session;
use crate::registrar::{ContactRequest, RegisterError, RegisterRequest};
use crate::transaction::{Peer, ServerKey};

/// When each identity's IM sessions were last renewed, so that a chatty client costs
/// one renewal per quarter lease, not one per request.
#[derive(Debug, Default)]
pub struct Renewals {
    last: HashMap<Address, Instant>,
}

impl Renewals {
    const MAX: usize = 65_536;

    /// Whether `who` is due a renewal now (and notes it as done).
    fn due(&mut self, who: &Address, now: Instant, every: Duration) -> bool {
        match self.last.get(who) {
            Some(at) if now.saturating_duration_since(*at) < every => false,
            _ => {
                if self.last.len() >= Self::MAX {
                    self.last
                        .retain(|_, at| now.saturating_duration_since(*at) < every);
                }
                if self.last.len() < Self::MAX {
                    self.last.insert(who.clone(), now);
                }
                true
            }
        }
    }

    fn forget(&mut self, who: &Address) {
        self.last.remove(who);
    }
}

pub async fn handle(app: &Arc<App>, key: ServerKey, from: Peer, req: rsip::Request, facts: Facts) {
    // The address of record is the To URI (RFC 3261 §10.3 step 5); a third party may
    // not register someone else.
    let to_aor = match rsip::message::HeadersExt::to_header(&req)
        .ok()
        .and_then(|h| rsip::prelude::ToTypedHeader::typed(h).ok())
        .and_then(|t| super::facts::identity_of(&t.uri))
    {
        Some(a) => a,
        None => {
            return app
                .outbox
                .respond(&key, reply::status(&req, 400, "To is not a sip: user"))
                .await
        }
    };
    if to_aor != facts.from {
        let resp = reply::status(&req, 403, "Forbidden (third-party registration)");
        app.outbox.respond(&key, resp).await;
        let code = "register.third_party";
        app.record_refusal(
            &facts.from,
            from.addr,
            &facts.call_id,
            None,
            "sip_register",
            code,
        );
        return;
    }
    if !auth::authenticate(app, &key, from, &req, &facts.from).await {
        return;
    }
    let register = match read_register(&req, &facts) {
        Ok(r) => r,
        Err(why) => {
            return app
                .outbox
                .respond(&key, reply::status(&req, 400, why))
                .await
        }
    };
    let now = app.now();
    let result = lock(&app.registrar).register(now, &facts.from, &register, from);
    app.registrar_changed.notify_one();
    match result {
        Ok(done) => {
            let mut resp = reply::status(&req, 200, "OK");
            for (contact, secs) in &done.contacts {
                resp = reply::header(resp, "Contact", format!("<{contact}>;expires={secs}"));
            }
            resp = reply::header(resp, "Date", app.handle.engine().now().to_rfc2822());
            app.outbox.respond(&key, resp).await;
            if done.ended {
                release_im_sessions(app, &facts.from);
            } else if !done.contacts.is_empty() {
                renew_im_sessions(app, &facts.from, None, true).await;
            }
        }
        Err(e) => {
            let code = e.code();
            let resp = match e {
                RegisterError::IntervalTooBrief { min } => reply::header(
                    reply::status(&req, 423, "Interval Too Brief"),
                    "Min-Expires",
                    min.to_string(),
                ),
                RegisterError::BadWildcard | RegisterError::OutOfOrder => {
                    reply::status(&req, 400, &e.to_string())
                }
                RegisterError::TooManyContacts => {
                    reply::status(&req, 403, "Forbidden (too many contacts)")
                }
                RegisterError::Full => reply::header(
                    reply::status(&req, 503, "Service Unavailable"),
                    "Retry-After",
                    "60",
                ),
            };
            app.outbox.respond(&key, resp).await;
            app.record_refusal(
                &facts.from,
                from.addr,
                &facts.call_id,
                None,
                "sip_register",
                code,
            );
        }
    }
}

fn read_register(req: &rsip::Request, facts: &Facts) -> Result<RegisterRequest, &'static str> {
    let expires = match header_values(&req.headers, "Expires", None).first() {
        Some(v) => Some(v.trim().parse::<u32>().map_err(|_| "invalid Expires")?),
        None => None,
    };
    let mut wildcard = false;
    let mut contacts = Vec::new();
    for value in header_values(&req.headers, "Contact", Some("m")) {
        for part in split_contacts(&value) {
            if part.trim() == "*" {
                wildcard = true;
                continue;
            }
            let uri = contact_uri(part);
            if uri.is_empty() || uri.len() > 512 {
                return Err("invalid Contact");
            }
            let params = part.rsplit_once('>').map_or(part, |(_, p)| p);
            let expires = params.split(';').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("expires")
                    .then(|| v.trim().parse::<u32>().ok())
                    .flatten()
            });
            contacts.push(ContactRequest { uri, expires });
        }
    }
    if contacts.len() > 16 {
        return Err("too many Contact values");
    }
    Ok(RegisterRequest {
        wildcard,
        contacts,
        expires,
        call_id: facts.call_id.clone(),
        cseq: facts.cseq,
    })
}

/// Splits a Contact header value at the commas between contacts (not those inside
/// `<...>` or quotes).
fn split_contacts(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth <= 0 => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

/// The rooms where `who` holds its IM session.
pub fn im_rooms(app: &App, who: &Address) -> Vec<RoomName> {
    let session = im_session(who);
    app.handle.engine().read(|s| {
        let principal = s.principal_of(who);
        s.list_rooms()
            .filter(|(_, room)| {
                room.members
                    .get(&principal)
                    .is_some_and(|m| m.sessions.contains_key(&session))
            })
            .map(|(name, _)| name.clone())
            .collect()
    })
}

/// Renews `who`'s IM sessions: at once when `force`, else at most once per quarter
/// lease.
pub async fn renew_im_sessions(
    app: &App,
    who: &Address,
    remote: Option<std::net::SocketAddr>,
    force: bool,
) {
    let lease = app.handle.engine().read(|s| s.policy.session_lease_secs);
    if lease == 0 {
        return;
    }
    let every = Duration::from_secs(u64::from(lease / 4).max(1));
    if !lock(&app.renewals).due(who, app.now(), every) && !force {
        return;
    }
    let session = im_session(who);
    for room in im_rooms(app, who) {
        let cmd = Command::RenewSession {
            room,
            session: session.clone(),
        };
        if let Err(e) = app.execute(who, remote, "", cmd).await {
            tracing::debug!(identity = %who, error = %e, "IM session renewal refused");
        }
    }
}

/// Lets `who`'s IM sessions go: its registration is gone, so the gateway no longer
/// renews them and each ends with its lease, journaled (`lease_expired`). Not a `Leave`:
/// that would be the member's own `#exit`, which closes a room its owner leaves, and a
/// phone whose registration lapsed has not asked for that.
pub fn release_im_sessions(app: &App, who: &Address) {
    lock(&app.renewals).forget(who);
    tracing::info!(identity = %who, "SIP registration ended; its IM sessions end with their lease");
}

/// Releases the IM sessions of every identity whose bindings expired; runs for the
/// server's life, sleeping until the next expiry.
pub async fn expiry_loop(app: Arc<App>) {
    loop {
        let next = lock(&app.registrar).poll_timeout();
        if !super::sleep_until_due(next, &app.registrar_changed).await {
            continue;
        }
        let ended = lock(&app.registrar).expire(app.now());
        for who in ended {
            tracing::info!(identity = %who, "SIP registration expired");
            release_im_sessions(&app, &who);
        }
    }
}
