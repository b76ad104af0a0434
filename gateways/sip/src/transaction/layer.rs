//! The transaction layer: messages and time in, outputs polled, next deadline computed.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rsip::prelude::UntypedHeader;
use rsip::{Header, Request, Response, SipMessage};

use super::client::{ClientState, ClientTx};
use super::keys::{info, method_name, Info};
use super::server::{ServerState, ServerTx};
use super::types::{ClientKey, Output, Peer, ServerKey, TimerConfig};
use crate::wire::{self, WireError, STATELESS_TAG_PREFIX};

type TxId = u64;

#[derive(Debug)]
enum Tx {
    Server(ServerTx),
    Client(ClientTx),
}

impl Tx {
    fn deadline(&self) -> Option<Instant> {
        match self {
            Tx::Server(s) => s.deadline(),
            Tx::Client(c) => c.deadline(),
        }
    }
}

/// RFC 3261 §17 transactions (with RFC 6026's Accepted state), sans-IO.
#[derive(Debug)]
pub struct TransactionLayer {
    config: TimerConfig,
    next_id: TxId,
    txs: HashMap<TxId, Tx>,
    servers: HashMap<ServerKey, TxId>,
    clients: HashMap<ClientKey, TxId>,
    /// INVITEs whose 2xx awaits its ACK, by (Call-ID, CSeq number).
    awaiting_ack: HashMap<(String, u32), TxId>,
    /// Each live transaction's next deadline, exactly once.
    timers: BTreeSet<(Instant, TxId)>,
    scheduled: HashMap<TxId, Instant>,
    outputs: VecDeque<Output>,
    /// Live server transactions per source address.
    per_address: HashMap<IpAddr, usize>,
}

impl TransactionLayer {
    pub fn new(config: TimerConfig) -> Self {
        Self {
            config,
            next_id: 0,
            txs: HashMap::new(),
            servers: HashMap::new(),
            clients: HashMap::new(),
            awaiting_ack: HashMap::new(),
            timers: BTreeSet::new(),
            scheduled: HashMap::new(),
            outputs: VecDeque::new(),
            per_address: HashMap::new(),
        }
    }

    /// Whether a new server transaction from `from` would pass a bound.
    fn full_for(&self, from: &Peer) -> bool {
        self.txs.len() >= self.config.max_transactions
            || self.per_address.get(&from.addr.ip()).copied().unwrap_or(0)
                >= self.config.max_transactions_per_address
    }

    /// Live transactions (server and client).
    pub fn transaction_count(&self) -> usize {
        self.txs.len()
    }

    /// Outputs not yet polled.
    pub fn pending_outputs(&self) -> usize {
        self.outputs.len()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest deadline of any transaction.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Parses a datagram and dispatches it; a refused request gets its stateless answer
    /// (`400`, `501`, `505`) here. The error is returned for logs and metrics.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: Peer,
        bytes: &[u8],
    ) -> Result<(), WireError> {
        match wire::parse_datagram(bytes) {
            Ok(Some(msg)) => {
                self.handle_message(now, from, msg);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(error) => {
                if let Some(answer) = wire::stateless_answer(bytes, &error) {
                    self.send_raw(from, answer);
                }
                Err(error)
            }
        }
    }

    /// Queues bytes for sending (e.g. a `Rejected::answer` from the stream framer).
    pub fn send_raw(&mut self, to: Peer, bytes: Vec<u8>) {
        self.outputs.push_back(Output::Transmit { to, bytes });
    }

    /// Sends a message outside any transaction.
    pub fn send_stateless(&mut self, to: Peer, msg: SipMessage) {
        self.send_raw(to, wire::to_bytes(&msg));
    }

    /// A checked message from the network (see `wire::parse_datagram`).
    pub fn handle_message(&mut self, now: Instant, from: Peer, msg: SipMessage) {
        match msg {
            SipMessage::Request(request) => self.on_request(now, from, request),
            SipMessage::Response(response) => self.on_response(now, response),
        }
    }

    fn on_request(&mut self, now: Instant, from: Peer, request: Request) {
        let Some(info) = info(&request.headers) else {
            tracing::debug!("sip: request without readable Via/CSeq/Call-ID dropped");
            return;
        };
        let method = method_name(request.method);
        if info.cseq_method != method {
            self.answer_stateless(from, &request, 400, "CSeq Method Mismatch");
            return;
        }
        match method {
            "ACK" => self.on_ack(now, from, &info, request),
            "CANCEL" => self.on_cancel(now, from, &info, &request),
            _ => self.on_other(now, from, &info, method, request),
        }
    }

    fn on_ack(&mut self, now: Instant, from: Peer, info: &Info, request: Request) {
        let key = info.server_key("ACK");
        if let Some(&id) = self.servers.get(&key) {
            if let Some(Tx::Server(tx)) = self.txs.get_mut(&id) {
                match tx.state {
                    ServerState::Completed => {
                        // The ACK of our non-2xx: Timer I (T4 on UDP, zero on TCP).
                        tx.state = ServerState::Confirmed;
                        tx.retransmit_at = None;
                        let wait = if tx.peer.transport.is_reliable() {
                            Duration::ZERO
                        } else {
                            self.config.t4
                        };
                        tx.end_at = Some(now + wait);
                        self.reschedule(id);
                        if wait.is_zero() {
                            self.remove(id);
                        }
                        return;
                    }
                    ServerState::Accepted => {
                        // A 2xx ACK reusing the INVITE's branch: for the TU (RFC 6026).
                        self.acked(id);
                    }
                    _ => return,
                }
            }
        } else if info
            .to_tag
            .as_deref()
            .is_some_and(|t| t.starts_with(STATELESS_TAG_PREFIX))
        {
            // The ACK of one of our stateless answers (503, 400...): no dialog.
            return;
        } else if let Some(&id) = self.awaiting_ack.get(&(info.call_id.clone(), info.cseq)) {
            self.acked(id);
        }
        self.outputs.push_back(Output::Ack { from, request });
    }

    /// The 2xx of INVITE `id` was acknowledged: stop retransmitting it.
    fn acked(&mut self, id: TxId) {
        if let Some(Tx::Server(tx)) = self.txs.get_mut(&id) {
            if tx.state == ServerState::Accepted {
                tx.acked = true;
                tx.retransmit_at = None;
                self.reschedule(id);
            }
        }
    }

    fn on_cancel(&mut self, now: Instant, from: Peer, info: &Info, request: &Request) {
        let key = info.server_key("CANCEL");
        if let Some(&id) = self.servers.get(&key) {
            self.retransmitted(id);
            return;
        }
        let invite_key = info.server_key("INVITE");
        let Some(&invite_id) = self.servers.get(&invite_key) else {
            self.answer_stateless(from, request, 481, "");
            return;
        };
        if self.full_for(&from) {
            self.overloaded(from, request);
            return;
        }
        let id = self.insert_server(now, from, key, false);
        self.respond_id(
            now,
            id,
            wire::response(request, 200, "", Some(&wire::new_tag())),
        );
        if let Some(Tx::Server(invite)) = self.txs.get_mut(&invite_id) {
            if invite.awaits_final() && !invite.cancelled {
                invite.cancelled = true;
                self.outputs
                    .push_back(Output::Cancelled { invite: invite_key });
            }
        }
    }

    fn on_other(
        &mut self,
        now: Instant,
        from: Peer,
        info: &Info,
        method: &'static str,
        request: Request,
    ) {
        let key = info.server_key(method);
        if let Some(&id) = self.servers.get(&key) {
            self.retransmitted(id);
            return;
        }
        if self.full_for(&from) {
            self.overloaded(from, &request);
            return;
        }
        let invite = method == "INVITE";
        let id = self.insert_server(now, from, key.clone(), invite);
        if info.max_forwards == Some(0) && method != "OPTIONS" {
            // §8.2.2 / §16.3: the layer answers; OPTIONS reaches the TU (§11).
            let tag = wire::new_tag();
            self.respond_id(now, id, wire::response(&request, 483, "", Some(&tag)));
            return;
        }
        if invite {
            // §17.2.1: a 100 at once rather than a 200 ms timer; cheap and it stops
            // the client's INVITE retransmissions.
            self.respond_id(now, id, wire::response(&request, 100, "", None));
        }
        self.outputs
            .push_back(Output::Request { key, from, request });
    }

    /// A retransmitted request: resend the last response, if the state wants it.
    fn retransmitted(&mut self, id: TxId) {
        let Some(Tx::Server(tx)) = self.txs.get(&id) else {
            return;
        };
        let resend = match tx.state {
            ServerState::Proceeding | ServerState::Completed => tx.last.clone(),
            ServerState::Trying | ServerState::Confirmed | ServerState::Accepted => None,
        };
        if let Some(bytes) = resend {
            let to = tx.peer;
            self.outputs.push_back(Output::Transmit { to, bytes });
        }
    }

    fn insert_server(&mut self, now: Instant, peer: Peer, key: ServerKey, invite: bool) -> TxId {
        let id = self.next_id;
        self.next_id += 1;
        // Nobody answering: non-INVITE gives up at 64*T1 (the client has, by Timer F);
        // INVITE after the guard (the layer answers 408).
        let guard = if invite {
            self.config.invite_guard
        } else {
            self.config.t64()
        };
        let tx = ServerTx {
            key: key.clone(),
            peer,
            invite,
            state: if invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            last: None,
            retransmit_at: None,
            interval: self.config.t1,
            end_at: Some(now + guard),
            acked: false,
            cancelled: false,
            ack_index: None,
        };
        self.txs.insert(id, Tx::Server(tx));
        self.servers.insert(key, id);
        *self.per_address.entry(peer.addr.ip()).or_default() += 1;
        self.reschedule(id);
        id
    }

    fn answer_stateless(&mut self, to: Peer, request: &Request, code: u16, reason: &str) {
        if request.method == rsip::Method::Ack {
            return;
        }
        let tag = wire::new_stateless_tag();
        let response = wire::response(request, code, reason, Some(&tag));
        self.send_stateless(to, response.into());
    }

    /// Over a bound: `503` with Retry-After (the time a transaction lives, 64*T1, after
    /// which the bound has room again), nothing stored, the TU not told.
    fn overloaded(&mut self, to: Peer, request: &Request) {
        let tag = wire::new_stateless_tag();
        let mut response = wire::response(request, 503, "", Some(&tag));
        let wait = self.config.t64().as_secs().max(1).to_string();
        response
            .headers
            .push(Header::RetryAfter(rsip::headers::RetryAfter::new(wait)));
        self.send_stateless(to, response.into());
    }

    /// The TU answers a server transaction. Ignored when the transaction is gone or
    /// already has its final response.
    pub fn respond(&mut self, now: Instant, key: &ServerKey, response: Response) {
        match self.servers.get(key) {
            Some(&id) => self.respond_id(now, id, response),
            None => tracing::debug!(
                branch = key.branch(),
                "sip: response for a gone transaction"
            ),
        }
    }

    fn respond_id(&mut self, now: Instant, id: TxId, response: Response) {
        let code = response.status_code.code();
        let call_ack = if (200..300).contains(&code) {
            info(&response.headers).map(|i| (i.call_id, i.cseq))
        } else {
            None
        };
        let t1 = self.config.t1;
        let t64 = self.config.t64();
        let Some(Tx::Server(tx)) = self.txs.get_mut(&id) else {
            return;
        };
        let reliable = tx.peer.transport.is_reliable();
        let allowed = match tx.state {
            ServerState::Trying | ServerState::Proceeding => true,
            // Further 2xx from the TU while Accepted pass through (RFC 6026).
            ServerState::Accepted => (200..300).contains(&code),
            ServerState::Completed | ServerState::Confirmed => false,
        };
        if !allowed || !(100..700).contains(&code) {
            return;
        }
        let bytes = wire::to_bytes(&SipMessage::Response(response));
        let to = tx.peer;
        tx.last = Some(bytes.clone());
        let mut remove = false;
        let mut index = None;
        match (tx.invite, code) {
            (_, 100..=199) => {
                tx.state = ServerState::Proceeding;
            }
            (true, 200..=299) => {
                if tx.state != ServerState::Accepted {
                    // RFC 6026 Timer L, and §13.3.1.4 retransmission (done here on
                    // every transport, as the RFC says) until the ACK, 64*T1 at most.
                    tx.state = ServerState::Accepted;
                    tx.interval = t1;
                    tx.retransmit_at = Some(now + t1);
                    tx.end_at = Some(now + t64);
                    index = call_ack.clone();
                    tx.ack_index = call_ack;
                }
            }
            (true, _) => {
                tx.state = ServerState::Completed;
                tx.interval = t1;
                tx.retransmit_at = (!reliable).then(|| now + t1);
                tx.end_at = Some(now + t64);
            }
            (false, _) => {
                tx.state = ServerState::Completed;
                tx.retransmit_at = None;
                if reliable {
                    remove = true;
                } else {
                    tx.end_at = Some(now + t64);
                }
            }
        }
        self.outputs.push_back(Output::Transmit { to, bytes });
        if let Some(k) = index {
            self.awaiting_ack.insert(k, id);
        }
        if remove {
            self.remove(id);
        } else {
            self.reschedule(id);
        }
    }

    /// Starts a non-INVITE client transaction for `request` (built with
    /// `wire::request`: its top Via carries the branch). Over the bound, or without a
    /// readable Via branch and CSeq, the request is not sent and `Timeout` follows at
    /// once.
    pub fn send_request(&mut self, now: Instant, to: Peer, request: Request) -> ClientKey {
        let method = method_name(request.method);
        let key = match info(&request.headers) {
            Some(i) => i.client_key(),
            None => ClientKey {
                branch: wire::new_branch(),
                method,
            },
        };
        let usable = method != "INVITE"
            && method != "ACK"
            && key.method == method
            && !self.clients.contains_key(&key)
            && self.txs.len() < self.config.max_transactions
            && info(&request.headers).is_some();
        if !usable {
            self.outputs.push_back(Output::Timeout { key: key.clone() });
            return key;
        }
        let bytes = wire::to_bytes(&SipMessage::Request(request));
        let id = self.next_id;
        self.next_id += 1;
        let tx = ClientTx {
            key: key.clone(),
            peer: to,
            bytes: bytes.clone(),
            state: ClientState::Trying,
            retransmit_at: (!to.transport.is_reliable()).then(|| now + self.config.t1),
            interval: self.config.t1,
            end_at: Some(now + self.config.t64()),
        };
        self.txs.insert(id, Tx::Client(tx));
        self.clients.insert(key.clone(), id);
        self.reschedule(id);
        self.outputs.push_back(Output::Transmit { to, bytes });
        key
    }

    fn on_response(&mut self, now: Instant, response: Response) {
        let Some(info) = info(&response.headers) else {
            return;
        };
        let key = info.client_key();
        let Some(&id) = self.clients.get(&key) else {
            return;
        };
        let code = response.status_code.code();
        let t2 = self.config.t2;
        let t4 = self.config.t4;
        let Some(Tx::Client(tx)) = self.txs.get_mut(&id) else {
            return;
        };
        match (tx.state, code) {
            (ClientState::Completed, _) => return,
            (_, 100..=199) => {
                tx.state = ClientState::Proceeding;
                tx.interval = t2;
            }
            (_, 200..=699) => {
                tx.state = ClientState::Completed;
                tx.retransmit_at = None;
                // Timer K: T4 on UDP, zero on TCP.
                tx.end_at = Some(if tx.peer.transport.is_reliable() {
                    now
                } else {
                    now + t4
                });
            }
            _ => return,
        }
        let done = tx.state == ClientState::Completed && tx.peer.transport.is_reliable();
        self.outputs.push_back(Output::Response { key, response });
        if done {
            self.remove(id);
        } else {
            self.reschedule(id);
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, id));
            self.scheduled.remove(&id);
            self.fire(now, id);
        }
    }

    fn fire(&mut self, now: Instant, id: TxId) {
        let t2 = self.config.t2;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        let mut out = Vec::new();
        let mut remove = false;
        let mut guard_408 = None;
        match tx {
            Tx::Server(tx) => {
                if tx.retransmit_at.is_some_and(|at| at <= now) {
                    if let Some(bytes) = tx.last.clone() {
                        out.push(Output::Transmit { to: tx.peer, bytes });
                    }
                    tx.interval = (tx.interval * 2).min(t2);
                    tx.retransmit_at = Some(now + tx.interval);
                }
                if tx.end_at.is_some_and(|at| at <= now) {
                    match tx.state {
                        ServerState::Proceeding if tx.invite => guard_408 = Some(tx.key.clone()),
                        ServerState::Accepted if !tx.acked => {
                            out.push(Output::AckTimeout {
                                invite: tx.key.clone(),
                            });
                            remove = true;
                        }
                        _ => remove = true,
                    }
                }
            }
            Tx::Client(tx) => {
                if tx.retransmit_at.is_some_and(|at| at <= now) {
                    out.push(Output::Transmit {
                        to: tx.peer,
                        bytes: tx.bytes.clone(),
                    });
                    if tx.state == ClientState::Trying {
                        tx.interval = (tx.interval * 2).min(t2);
                    }
                    tx.retransmit_at = Some(now + tx.interval);
                }
                if tx.end_at.is_some_and(|at| at <= now) {
                    if tx.state != ClientState::Completed {
                        out.push(Output::Timeout {
                            key: tx.key.clone(),
                        });
                    }
                    remove = true;
                }
            }
        }
        self.outputs.extend(out);
        if remove {
            self.remove(id);
            return;
        }
        if let Some(key) = guard_408 {
            self.guard_expired(now, id, key);
        }
        self.reschedule(id);
    }

    /// The TU never answered an INVITE: answer `408` so the transaction can end.
    fn guard_expired(&mut self, now: Instant, id: TxId, key: ServerKey) {
        let Some(Tx::Server(tx)) = self.txs.get(&id) else {
            return;
        };
        // Rebuild a response from our own 100 (same Via/From/To/Call-ID/CSeq).
        let base = tx
            .last
            .as_deref()
            .and_then(|b| wire::parse_message(b, wire::Framing::Stream).ok());
        match base {
            Some(SipMessage::Response(mut r)) => {
                r.status_code = wire::status(408, "");
                let tag = wire::new_tag();
                for h in r.headers.iter_mut() {
                    if let Header::To(to) = h {
                        if !wire::has_tag(to.value()) {
                            *to = rsip::headers::To::new(format!("{};tag={tag}", to.value()));
                        }
                    }
                }
                self.respond_id(now, id, r);
            }
            _ => {
                tracing::debug!(branch = key.branch(), "sip: stuck INVITE dropped");
                self.remove(id);
            }
        }
    }

    fn reschedule(&mut self, id: TxId) {
        if let Some(old) = self.scheduled.remove(&id) {
            self.timers.remove(&(old, id));
        }
        if let Some(at) = self.txs.get(&id).and_then(Tx::deadline) {
            self.timers.insert((at, id));
            self.scheduled.insert(id, at);
        }
    }

    fn remove(&mut self, id: TxId) {
        if let Some(old) = self.scheduled.remove(&id) {
            self.timers.remove(&(old, id));
        }
        match self.txs.remove(&id) {
            Some(Tx::Server(tx)) => {
                self.servers.remove(&tx.key);
                let ip = tx.peer.addr.ip();
                if let Some(n) = self.per_address.get_mut(&ip) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.per_address.remove(&ip);
                    }
                }
                if let Some(k) = tx.ack_index {
                    if self.awaiting_ack.get(&k) == Some(&id) {
                        self.awaiting_ack.remove(&k);
                    }
                }
            }
            Some(Tx::Client(tx)) => {
                self.clients.remove(&tx.key);
            }
            None => {}
        }
    }
}
