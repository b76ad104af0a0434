//! The UDP socket's receive side.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::{stateless_400, Inbound};
use crate::app::App;
use crate::transaction::{Peer, Transport};
use crate::wire;

/// Receives datagrams until stopped: each is parsed here, so the core task only sees
/// messages; a malformed request gets its stateless 400 straight away, anything else
/// unreadable is dropped (RFC 3261 §18.3). A full core queue drops the datagram: the
/// sender retransmits.
pub(crate) async fn receive(
    sock: Arc<UdpSocket>,
    to_core: mpsc::Sender<Inbound>,
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok(v) => v,
                Err(e) => {
                    // ICMP port unreachable and the like surface here; keep serving.
                    tracing::debug!(error = %e, "SIP UDP receive error");
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let bytes = buf.get(..n).unwrap_or_default();
        match wire::parse_datagram(bytes) {
            Ok(Some(message)) => {
                let peer = Peer {
                    transport: Transport::Udp,
                    addr: from,
                    connection: None,
                };
                if to_core.try_send(Inbound { peer, message }).is_err() {
                    tracing::debug!(%from, "SIP core queue full; datagram dropped");
                }
            }
            Ok(None) => {} // a keep-alive
            Err(e) => {
                app.metrics.count_malformed();
                tracing::debug!(%from, code = e.code(), "malformed SIP datagram");
                if let Some(answer) = stateless_400(bytes, &e) {
                    let _ = sock.try_send_to(&answer, from);
                }
            }
        }
    }
}
