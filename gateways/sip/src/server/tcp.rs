//! TCP: accepting, framing (RFC 3261 §18.3: Content-Length delimits messages on a
//! stream), and writing back on the connection a request came in on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};

use super::Inbound;
use crate::app::{lock, App};
use crate::transaction::{Peer, Transport};
use crate::wire::StreamFramer;

/// Messages queued for one connection's writer, at most (a peer that does not read
/// loses its connection rather than growing our memory).
const WRITE_QUEUE: usize = 256;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_connections: usize,
    pub idle: Duration,
}

/// The open connections' writers, by connection id and by peer address.
#[derive(Debug, Clone, Default)]
pub(crate) struct Connections {
    inner: Arc<Mutex<ConnMap>>,
}

#[derive(Debug, Default)]
struct ConnMap {
    by_id: HashMap<u64, (SocketAddr, mpsc::Sender<Vec<u8>>)>,
    by_addr: HashMap<SocketAddr, u64>,
}

impl Connections {
    fn add(&self, id: u64, addr: SocketAddr, tx: mpsc::Sender<Vec<u8>>) {
        let mut m = lock(&self.inner);
        m.by_id.insert(id, (addr, tx));
        m.by_addr.insert(addr, id);
    }

    fn remove(&self, id: u64) {
        let mut m = lock(&self.inner);
        if let Some((addr, _)) = m.by_id.remove(&id) {
            if m.by_addr.get(&addr) == Some(&id) {
                m.by_addr.remove(&addr);
            }
        }
    }

    /// Queues `bytes` on the peer's connection (the one it came in on, else any open
    /// one from its address). Without one the message is dropped: the transaction's
    /// timer reports the failure.
    pub(crate) fn send(&self, to: &Peer, bytes: Vec<u8>) {
        let m = lock(&self.inner);
        let id = to.connection.or_else(|| m.by_addr.get(&to.addr).copied());
        match id.and_then(|id| m.by_id.get(&id)) {
            Some((_, tx)) => {
                if tx.try_send(bytes).is_err() {
                    tracing::debug!(to = %to.addr, "SIP TCP write queue full; message dropped");
                }
            }
            None => tracing::debug!(to = %to.addr, "no SIP TCP connection to the peer"),
        }
    }
}

pub(crate) async fn accept(
    listener: TcpListener,
    to_core: mpsc::Sender<Inbound>,
    connections: Connections,
    app: Arc<App>,
    limits: Limits,
    open: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut next_id: u64 = 1;
    loop {
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "SIP TCP accept failed");
                    // Out of descriptors: give the others a moment to close.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::info!(%addr, "SIP TCP connection refused: at the connection limit");
            continue;
        };
        let id = next_id;
        next_id += 1;
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        connections.add(id, addr, tx);
        open.fetch_add(1, Ordering::Relaxed);
        let to_core = to_core.clone();
        let connections = connections.clone();
        let app = app.clone();
        let open = open.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            serve(stream, addr, id, to_core, rx, app, limits.idle, stop).await;
            connections.remove(id);
            open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    stream: TcpStream,
    addr: SocketAddr,
    id: u64,
    to_core: mpsc::Sender<Inbound>,
    mut writes: mpsc::Receiver<Vec<u8>>,
    app: Arc<App>,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    let peer = Peer {
        transport: Transport::Tcp,
        addr,
        connection: Some(id),
    };
    loop {
        tokio::select! {
            r = tokio::time::timeout(idle, reader.read(&mut buf)) => {
                let n = match r {
                    Ok(Ok(0)) | Err(_) => return,
                    Ok(Ok(n)) => n,
                    Ok(Err(_)) => return,
                };
                framer.push(buf.get(..n).unwrap_or_default());
                while let Some(next) = framer.next() {
                    match next {
                        Ok(message) => {
                            if to_core.send(Inbound { peer, message }).await.is_err() {
                                return;
                            }
                        }
                        Err(rejected) => {
                            app.metrics.count_malformed();
                            tracing::debug!(%addr, code = rejected.error.code(), "malformed SIP on TCP");
                            if let Some(answer) = &rejected.answer {
                                let _ = writer.write_all(answer).await;
                            }
                            if rejected.fatal || framer.is_closed() {
                                return;
                            }
                        }
                    }
                }
                if framer.is_closed() {
                    return;
                }
            }
            w = writes.recv() => match w {
                Some(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                None => return,
            },
            _ = stop.changed() => return,
        }
    }
}
