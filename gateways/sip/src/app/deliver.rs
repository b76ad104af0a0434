//! Sending a MESSAGE to a SIP identity: to each of its registered contacts (through the
//! peer each registration came from), or, unregistered, back to where it last sent from.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use conclave_engine::ids::Address;

use super::{lock, App, ClientOutcome};
use crate::transaction::{Peer, Transport};
use crate::wire::{self, RequestSpec};

/// Where each identity last sent a request from, bounded (oldest forgotten first).
#[derive(Debug)]
pub struct LastPeers {
    map: HashMap<Address, Peer>,
    order: VecDeque<Address>,
    cap: usize,
}

impl LastPeers {
    pub fn new(cap: usize) -> Self {
        LastPeers {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    pub fn remember(&mut self, who: &Address, peer: Peer) {
        if self.map.insert(who.clone(), peer).is_none() {
            self.order.push_back(who.clone());
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }

    pub fn get(&self, who: &Address) -> Option<&Peer> {
        self.map.get(who)
    }
}

/// Messages in flight at most; beyond it a delivery is dropped and counted (a slow or
/// dead contact must not grow memory without bound).
pub const MAX_IN_FLIGHT: usize = 4096;

/// Sends `body` from `from_uri` to every contact of `to`, in the background. Each
/// contact's outcome is counted; none stops the others.
pub fn spawn_message(app: &Arc<App>, to: &Address, from_uri: &str, body: String) {
    let targets = targets(app, to);
    if targets.is_empty() {
        app.metrics.count_delivery(&ClientOutcome::NotSent);
        return;
    }
    for (peer, ruri) in targets {
        let Ok(permit) = app.metrics.in_flight.clone().try_acquire_owned() else {
            app.metrics.count_delivery_dropped();
            continue;
        };
        let app = app.clone();
        let to = to.clone();
        let from_uri = from_uri.to_owned();
        let body = body.clone();
        tokio::spawn(async move {
            let outcome = send(&app, peer, &ruri, &to, &from_uri, body).await;
            app.metrics.count_delivery(&outcome);
            if !outcome.delivered() {
                tracing::debug!(to = %to, ?outcome, "SIP MESSAGE not delivered");
            }
            drop(permit);
        });
    }
}

/// Where messages for `to` go: each live binding's contact (RFC 3261 §10: the location
/// service maps the address of record to its contacts), or, when a contact names a host
/// rather than an address (this gateway resolves no names), the peer the registration
/// came from; unregistered, the peer the identity last sent from, with its own URI.
fn targets(app: &App, to: &Address) -> Vec<(Peer, String)> {
    let bindings = lock(&app.registrar).bindings(app.now(), to);
    if !bindings.is_empty() {
        return bindings
            .into_iter()
            .map(|b| (target_of(&b.contact, b.peer), b.contact))
            .collect();
    }
    lock(&app.peers)
        .get(to)
        .map(|p| vec![(*p, to.to_string())])
        .unwrap_or_default()
}

/// Where a binding's messages go: over TCP, back on the connection the registration came
/// in on (a phone does not listen for new connections: RFC 5626's connection reuse, as
/// Kamailio's TCP aliases do); over UDP, to the contact's address when it names one.
fn target_of(contact: &str, registered_from: Peer) -> Peer {
    if registered_from.transport == Transport::Tcp {
        return registered_from;
    }
    contact_peer(contact).unwrap_or(registered_from)
}

/// The peer a contact URI names when its host is an IP address: its port (5060 by
/// default) over its `transport` parameter (UDP by default; TCP goes over an open
/// connection from that address).
pub fn contact_peer(contact: &str) -> Option<Peer> {
    let uri = rsip::Uri::try_from(contact).ok()?;
    let ip: std::net::IpAddr = super::facts::host_string(&uri).parse().ok()?;
    let port = uri.port().map_or(5060, |p| *p.value());
    let transport = match uri.transport() {
        Some(rsip::Transport::Tcp) => Transport::Tcp,
        Some(rsip::Transport::Udp) | None => Transport::Udp,
        Some(_) => return None,
    };
    Some(Peer {
        transport,
        addr: std::net::SocketAddr::new(ip, port),
        connection: None,
    })
}

async fn send(
    app: &App,
    peer: Peer,
    ruri: &str,
    to: &Address,
    from_uri: &str,
    body: String,
) -> ClientOutcome {
    let Ok(uri) = rsip::Uri::try_from(ruri) else {
        return ClientOutcome::NotSent;
    };
    let Some(sent_by) = app.sent_by(peer.transport) else {
        return ClientOutcome::NotSent;
    };
    let tag = wire::new_tag();
    let call_id = wire::new_call_id(Some(&app.config.addressing.domain));
    let from = format!("<{from_uri}>");
    let to_value = format!("<{to}>");
    let request = wire::request(RequestSpec {
        method: rsip::Method::Message,
        uri,
        from: &from,
        from_tag: &tag,
        to: &to_value,
        to_tag: None,
        call_id: &call_id,
        cseq: 1,
        sent_by: &sent_by,
        transport: rsip_transport(peer.transport),
        contact: None,
        route: &[],
        body: Some(("text/plain;charset=UTF-8", body.into_bytes())),
        extra: Vec::new(),
    });
    app.outbox.request(peer, request).await
}

/// rsip's name of a transport, for Via.
pub fn rsip_transport(t: Transport) -> rsip::Transport {
    match t {
        Transport::Udp => rsip::Transport::Udp,
        Transport::Tcp => rsip::Transport::Tcp,
    }
}

impl App {
    /// Our `host:port` for a Via over `transport`.
    pub fn sent_by(&self, transport: Transport) -> Option<String> {
        let addr = match transport {
            Transport::Udp => self.local.udp,
            Transport::Tcp => self.local.tcp,
        }?;
        Some(addr.to_string())
    }
}
