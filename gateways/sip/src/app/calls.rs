//! The calls in progress: one entry per INVITE dialog, found by its dialog id, by the
//! INVITE's server transaction (CANCEL, missing ACK) or by its media leg (DTMF, RTP
//! timeout). Bounded per remote address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use conclave_engine::ids::{Address, RoomName, SessionId};
use conclave_media::LegId;

use crate::info::DtmfCommands;
use crate::sdp::LocalMedia;
use crate::transaction::{Peer, ServerKey};

/// A dialog's id as the caller chose it: Call-ID and the caller's From tag (our To tag
/// is checked separately).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub remote_tag: String,
}

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// INVITE received, not answered yet.
    Proceeding,
    /// 200 sent, waiting for the ACK.
    Accepted,
    /// ACK received.
    Confirmed,
}

/// One call.
#[derive(Debug)]
pub struct Call {
    pub id: DialogId,
    pub local_tag: String,
    pub phase: Phase,
    /// Set when a CANCEL arrived before the answer.
    pub cancelled: bool,
    pub invite: Option<ServerKey>,
    /// The INVITE, until it is answered (to answer a CANCEL with 487).
    pub invite_request: Option<rsip::Request>,
    pub room: RoomName,
    pub session: SessionId,
    pub who: Address,
    pub peer: Peer,
    /// Where in-dialog requests go (the caller's Contact), and their route set.
    pub remote_target: String,
    pub route: Vec<String>,
    /// The caller's From and our To, tags stripped (To and From of our requests).
    pub remote_uri: String,
    pub local_uri: String,
    pub local_cseq: u32,
    pub remote_cseq: u32,
    pub leg: Option<LegId>,
    pub media: Option<LocalMedia>,
    /// Offer in our 200 (an INVITE without SDP): the answer comes in the ACK.
    pub offered_in_answer: bool,
    /// RFC 4028: when the session ends unless refreshed.
    pub expires_at: Option<Instant>,
    pub dtmf: DtmfCommands,
    /// The mute state last applied to the leg.
    pub muted: bool,
}

/// What [`Calls::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Yes,
    /// Its address holds as many calls as allowed, or the dialog exists.
    Refused,
    /// A CANCEL for its INVITE came first: not kept.
    Cancelled,
}

/// CANCELs that matched an INVITE the transaction user had not registered yet, kept
/// until the INVITE's handler gets there (bounded: the oldest are forgotten).
const MAX_EARLY_CANCELS: usize = 1024;

/// Every call.
#[derive(Debug, Default)]
pub struct Calls {
    calls: HashMap<DialogId, Call>,
    early_cancels: std::collections::VecDeque<ServerKey>,
    by_invite: HashMap<ServerKey, DialogId>,
    by_leg: HashMap<LegId, DialogId>,
    per_address: HashMap<IpAddr, usize>,
}

impl Calls {
    /// Adds a call unless its address holds `max_per_address` already or the dialog
    /// exists.
    pub fn insert(&mut self, call: Call, max_per_address: usize) -> Inserted {
        if let Some(k) = &call.invite {
            if let Some(pos) = self.early_cancels.iter().position(|c| c == k) {
                self.early_cancels.remove(pos);
                return Inserted::Cancelled;
            }
        }
        let ip = call.peer.addr.ip();
        if self.calls.contains_key(&call.id)
            || self.per_address.get(&ip).copied().unwrap_or(0) >= max_per_address
        {
            return Inserted::Refused;
        }
        *self.per_address.entry(ip).or_default() += 1;
        if let Some(k) = &call.invite {
            self.by_invite.insert(k.clone(), call.id.clone());
        }
        if let Some(l) = call.leg {
            self.by_leg.insert(l, call.id.clone());
        }
        self.calls.insert(call.id.clone(), call);
        Inserted::Yes
    }

    /// Notes a CANCEL whose INVITE has no call yet: [`Calls::insert`] refuses it then.
    pub fn cancel_early(&mut self, invite: ServerKey) {
        if self.early_cancels.len() >= MAX_EARLY_CANCELS {
            self.early_cancels.pop_front();
        }
        self.early_cancels.push_back(invite);
    }

    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Call> {
        self.calls.get_mut(id)
    }

    /// Records the media leg of a call.
    pub fn set_leg(&mut self, id: &DialogId, leg: LegId) {
        if let Some(c) = self.calls.get_mut(id) {
            c.leg = Some(leg);
            self.by_leg.insert(leg, id.clone());
        }
    }

    pub fn by_invite(&self, key: &ServerKey) -> Option<DialogId> {
        self.by_invite.get(key).cloned()
    }

    pub fn by_leg(&self, leg: LegId) -> Option<DialogId> {
        self.by_leg.get(&leg).cloned()
    }

    pub fn remove(&mut self, id: &DialogId) -> Option<Call> {
        let call = self.calls.remove(id)?;
        if let Some(k) = &call.invite {
            self.by_invite.remove(k);
        }
        if let Some(l) = call.leg {
            self.by_leg.remove(&l);
        }
        let ip = call.peer.addr.ip();
        if let Some(n) = self.per_address.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_address.remove(&ip);
            }
        }
        Some(call)
    }

    /// The calls in `room`.
    pub fn in_room(&self, room: &RoomName) -> Vec<DialogId> {
        self.calls
            .values()
            .filter(|c| &c.room == room)
            .map(|c| c.id.clone())
            .collect()
    }

    /// The earliest session-timer deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.calls.values().filter_map(|c| c.expires_at).min()
    }

    /// Calls whose session timer ran out by `now`.
    pub fn expired(&self, now: Instant) -> Vec<DialogId> {
        self.calls
            .values()
            .filter(|c| c.expires_at.is_some_and(|at| at <= now))
            .map(|c| c.id.clone())
            .collect()
    }

    /// Every call.
    pub fn all(&self) -> impl Iterator<Item = &Call> {
        self.calls.values()
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}
