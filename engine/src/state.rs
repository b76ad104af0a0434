//! The whole server's current state: what `evolve` builds and `decide` reads.
//!
//! Rules about people are keyed by [`Principal`]: the account when the identity is
//! linked, else the bare address. Linking an identity moves everything keyed by the
//! address onto the account (see `evolve`), so a ban made against `sip:bob@…` also
//! stops `xmpp:bob@…` once both are linked to Bob's account.

use std::collections::BTreeSet;

/// The persistent ordered map of the state's collections that grow with the server
/// (rooms, accounts, identities, a room's members, roles, bans, invitations, lobby).
/// It reads like a `BTreeMap` (`get`, `iter`, `keys`, `values`, `len`, `range`), but a
/// clone shares its nodes and costs O(1); a change copies only the path to what
/// changed. Replay's snapshots are such clones, so a snapshot costs in proportion to
/// what changed since the previous one, not to the size of the state.
pub type Map<K, V> = imbl::OrdMap<K, V>;

/// Calls `f` on each value of `map` that `pick` selects. Only those are made unique
/// (copied if a clone shares them): the others stay shared with every snapshot.
pub fn update_where<K: Ord + Clone, V: Clone>(
    map: &mut Map<K, V>,
    pick: impl Fn(&K, &V) -> bool,
    mut f: impl FnMut(&mut V),
) {
    let keys: Vec<K> = map
        .iter()
        .filter(|(k, v)| pick(k, v))
        .map(|(k, _)| k.clone())
        .collect();
    for k in keys {
        if let Some(v) = map.get_mut(&k) {
            f(v);
        }
    }
}

/// Removes the entries `drop` selects (what `BTreeMap::retain` does with the opposite
/// predicate), touching nothing else.
pub fn remove_where<K: Ord + Clone, V: Clone>(map: &mut Map<K, V>, drop: impl Fn(&K, &V) -> bool) {
    let keys: Vec<K> = map
        .iter()
        .filter(|(k, v)| drop(k, v))
        .map(|(k, _)| k.clone())
        .collect();
    for k in keys {
        map.remove(&k);
    }
}

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::context::Actor;
use crate::event::AutobanKey;
use crate::ids::{AccountId, Address, InvitationId, Principal, RecordingId, RoomName, SessionId};
use crate::model::{BanScope, Role, RoomConfig};
use crate::policy::Policy;
use crate::recording::{RecordingErasure, RecordingFile};

/// A ban record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// Why.
    pub reason: Option<String>,
    /// Who banned.
    pub by: Actor,
    /// When.
    pub at: DateTime<Utc>,
    /// Until when; `None` = until lifted.
    pub until: Option<DateTime<Utc>>,
}

impl Ban {
    /// Whether the ban still holds at `now`.
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|u| u > now)
    }
}

/// An address ban record (keyed by the address as stored, or a network).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressBan {
    /// Its id, as listed and as `UnbanAddress` may name it.
    pub id: String,
    /// The person it was made from, if any.
    pub subject: Option<Principal>,
    /// Why.
    pub reason: Option<String>,
    /// Who banned.
    pub by: Actor,
    /// When.
    pub at: DateTime<Utc>,
    /// Until when; `None` = until lifted.
    pub until: Option<DateTime<Utc>>,
}

impl AddressBan {
    /// Whether the ban still holds at `now`.
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|u| u > now)
    }
}

/// An account (Jami account, registered user).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Account {
    /// Display name (personal content; `None` when unset or purged).
    pub display_name: Option<String>,
    /// Disabled accounts cannot join or be called.
    pub enabled: bool,
    /// Linked identities.
    pub identities: BTreeSet<Address>,
    /// Whether the allow-list is in force.
    pub contacts_restricted: bool,
    /// Who may reach the account when restricted.
    pub allowed_contacts: BTreeSet<Principal>,
    /// Moderators of the account's conferences.
    pub moderators: BTreeSet<Principal>,
    /// Bans from the account's conferences.
    pub bans: Map<Principal, Ban>,
    /// Address bans from the account's conferences, by address as stored.
    pub address_bans: Map<String, AddressBan>,
    /// The rendezvous room, when in rendezvous mode.
    pub rendezvous: Option<RoomName>,
}

/// The SIP digest credentials of one `sip:` identity (what the registrar checks a
/// REGISTER against). Kept only while the identity is linked to `account`: unlinking it,
/// linking it elsewhere or erasing the person removes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipCredential {
    /// The account the identity is linked to (whether it is enabled is the account's
    /// `enabled` flag, read through [`State::accounts`]).
    pub account: AccountId,
    /// The digest realm the HA1 values were computed for.
    pub realm: String,
    /// `MD5(user:realm:password)`, lowercase hex.
    pub ha1_md5: String,
    /// `SHA-256(user:realm:password)`, lowercase hex.
    pub ha1_sha256: String,
}

/// Whether a medium is open, closed by its owner, or closed by a moderator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// Open.
    #[default]
    Open,
    /// Closed by the person themself (they may reopen it).
    SelfClosed,
    /// Closed by a moderator (server-enforced; only a moderator reopens it).
    Moderator,
}

/// One session of a present person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// The identity used.
    pub address: Address,
    /// The gateway it came through.
    pub gateway: String,
    /// When it joined.
    pub joined_at: DateTime<Utc>,
    /// Stored remote address.
    pub remote: Option<String>,
    /// When its lease ends unless renewed (`None`: a session without a lease).
    pub lease_until: Option<DateTime<Utc>>,
}

/// A present person: their sessions and per-person media state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Member {
    /// Sessions, possibly over several protocols at once.
    pub sessions: Map<SessionId, Presence>,
    /// Audio state (applies to every session, SIP callers included).
    pub audio: Gate,
    /// Video state.
    pub video: Gate,
    /// Hand raised.
    pub hand_raised: bool,
}

/// A lobby entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Knock {
    /// The identity used.
    pub address: Address,
    /// The waiting session.
    pub session: SessionId,
    /// The gateway.
    pub gateway: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Invitation lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationState {
    /// Issued, not answered.
    Pending,
    /// Accepted (still usable if multi-use).
    Accepted,
    /// Declined.
    Denied,
    /// Used up (single use).
    Used,
    /// Withdrawn.
    Revoked,
    /// Past expiry.
    Expired,
}

/// An invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// To whom.
    pub invitee: Address,
    /// Issued by.
    pub by: Actor,
    /// When.
    pub issued_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Single use.
    pub single_use: bool,
    /// Lifecycle state.
    pub state: InvitationState,
    /// An email invitation's bearer secret, as its digest: joining presents the secret.
    /// `None` for personal invitations and for email invitations from before secrets
    /// (their id is the bearer token).
    pub secret_digest: Option<crate::command::SecretDigest>,
}

impl Invitation {
    /// Whether it can still admit someone at `now`.
    pub fn usable_at(&self, now: DateTime<Utc>) -> bool {
        matches!(
            self.state,
            InvitationState::Pending | InvitationState::Accepted
        ) && self.expires_at.is_none_or(|e| e > now)
    }

    /// Whether it is open (pending or accepted) regardless of time.
    pub fn is_open(&self) -> bool {
        matches!(
            self.state,
            InvitationState::Pending | InvitationState::Accepted
        )
    }
}

/// A room's subject (XEP-0045 subject, a topic): what it is, who set it, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// The text (sanitized, non-empty).
    pub text: String,
    /// The identity that set it; `None` when an operator or a service did.
    pub by: Option<Address>,
    /// When it was set.
    pub at: DateTime<Utc>,
}

/// The recording a room is running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveRecording {
    /// Its id.
    pub id: RecordingId,
    /// Whether video tracks are recorded too.
    pub video: bool,
}

/// A recording and its files, kept after it stops and after its room goes: files close
/// after the stop (or the destroy), and retention and erasure must still find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// The room it recorded.
    pub room: RoomName,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it stopped (a stop, or the room's end); `None` while it runs.
    pub stopped_at: Option<DateTime<Utc>>,
    /// Whether video tracks were recorded.
    pub video: bool,
    /// Who started it, as a person; `None` for an operator or a service.
    pub by: Option<Principal>,
    /// The files the media node closed, in order.
    pub files: Vec<RecordingFile>,
    /// Whether (and why) its files were erased.
    pub erased: Option<RecordingErasure>,
    /// Everyone present while it ran, as the principal and as the identity they were
    /// present with (the erasure of a person erases the recordings they took part in).
    pub participants: BTreeSet<Principal>,
}

/// A room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    /// Parent, for nested rooms.
    pub parent: Option<RoomName>,
    /// Nesting depth (0 = top level).
    pub depth: u32,
    /// Sub-rooms.
    pub children: BTreeSet<RoomName>,
    /// The account whose rendezvous room this is.
    pub account: Option<AccountId>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last activity (drives inactivity expiry).
    pub last_activity: DateTime<Utc>,
    /// Configuration.
    pub config: RoomConfig,
    /// Owner password hash when reserved (VROOM reserved rooms).
    pub reserved: Option<String>,
    /// Affiliations.
    pub affiliations: Map<Principal, Role>,
    /// Present people.
    pub members: Map<Principal, Member>,
    /// Room bans.
    pub bans: Map<Principal, Ban>,
    /// Room address bans, by address as stored (or network).
    pub address_bans: Map<String, AddressBan>,
    /// Invitations, all states (history until the room goes).
    pub invitations: Map<InvitationId, Invitation>,
    /// Lobby.
    pub lobby: Map<Principal, Knock>,
    /// The subject, if one is set.
    #[serde(default)]
    pub subject: Option<Subject>,
    /// The recording running, if any (its history is [`State::recordings`]).
    #[serde(default)]
    pub recording: Option<ActiveRecording>,
}

impl Room {
    /// A fresh room.
    pub fn new(
        parent: Option<RoomName>,
        depth: u32,
        at: DateTime<Utc>,
        config: RoomConfig,
    ) -> Self {
        Room {
            parent,
            depth,
            children: BTreeSet::new(),
            account: None,
            created_at: at,
            last_activity: at,
            config,
            reserved: None,
            affiliations: Map::new(),
            members: Map::new(),
            bans: Map::new(),
            address_bans: Map::new(),
            invitations: Map::new(),
            lobby: Map::new(),
            subject: None,
            recording: None,
        }
    }

    /// Number of owners.
    pub fn owner_count(&self) -> usize {
        self.affiliations
            .values()
            .filter(|r| **r == Role::Owner)
            .count()
    }

    /// Effective member limit: the room's, capped by the server's.
    pub fn max_members(&self, policy: &Policy) -> u32 {
        self.config
            .max_members
            .map_or(policy.max_members, |m| m.min(policy.max_members))
    }

    /// Number of sessions present.
    pub fn session_count(&self) -> usize {
        self.members.values().map(|m| m.sessions.len()).sum()
    }

    /// Who holds `session`, if anyone.
    pub fn session_holder(&self, session: &SessionId) -> Option<&Principal> {
        self.members
            .iter()
            .find(|(_, m)| m.sessions.contains_key(session))
            .map(|(p, _)| p)
    }

    /// Whether the room is reserved.
    pub fn is_reserved(&self) -> bool {
        self.reserved.is_some()
    }
}

/// The whole server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct State {
    /// Server policy (configuration plus journaled run-time changes).
    pub policy: Policy,
    /// Accounts.
    pub accounts: Map<AccountId, Account>,
    /// Identity → account links.
    pub identities: Map<Address, AccountId>,
    /// Rooms.
    pub rooms: Map<RoomName, Room>,
    /// The rooms under each of their names' keys ([`RoomName::keys`]): a new room whose
    /// name shares a key with a room here looks like it and is refused. Kept by `evolve`
    /// with `rooms`; a key holds more than one room only for rooms named before the rule.
    pub room_keys: Map<String, BTreeSet<RoomName>>,
    /// Server-wide bans.
    pub server_bans: Map<Principal, Ban>,
    /// Server-wide address bans, by address as stored (or network).
    pub server_address_bans: Map<String, AddressBan>,
    /// Active autobans and when they end.
    pub autobans: Map<AutobanKey, DateTime<Utc>>,
    /// Recent failed joins per key (pruned to the autoban window).
    pub failures: Map<AutobanKey, Vec<DateTime<Utc>>>,
    /// Total sessions on the server (kept by `evolve`, checked against `max_users`).
    pub online: u64,
    /// SIP digest credentials by `sip:` identity (each one linked to its account).
    pub sip_credentials: Map<Address, SipCredential>,
    /// Every recording ever started, by id (a room's are [`State::recordings_of`]).
    #[serde(default)]
    pub recordings: Map<RecordingId, Recording>,
}

impl State {
    /// An empty server with the given policy.
    pub fn new(policy: Policy) -> Self {
        State {
            policy,
            ..State::default()
        }
    }

    /// The person behind an identity: its account if linked, else the address.
    pub fn principal_of(&self, address: &Address) -> Principal {
        match self.identities.get(address) {
            Some(a) => Principal::Account(a.clone()),
            None => Principal::Address(address.clone()),
        }
    }

    /// Canonical form of a principal named in a command (an address that is linked
    /// becomes its account).
    pub fn canonical(&self, p: &Principal) -> Principal {
        match p {
            Principal::Address(a) => self.principal_of(a),
            Principal::Account(_) => p.clone(),
        }
    }

    /// The rooms whose names look like `name` (share one of its keys), `name` included
    /// if it is a room.
    pub fn rooms_like(&self, name: &RoomName) -> BTreeSet<&RoomName> {
        name.keys()
            .iter()
            .filter_map(|k| self.room_keys.get(k))
            .flatten()
            .collect()
    }

    /// Files a new room under its name's keys (`evolve`, with `rooms`).
    pub(crate) fn index_room(&mut self, name: &RoomName) {
        for key in name.keys() {
            self.room_keys.entry(key).or_default().insert(name.clone());
        }
    }

    /// Takes a removed room out of the keys (`evolve`, with `rooms`).
    pub(crate) fn unindex_room(&mut self, name: &RoomName) {
        for key in name.keys() {
            if let Some(rooms) = self.room_keys.get_mut(&key) {
                rooms.remove(name);
                if rooms.is_empty() {
                    self.room_keys.remove(&key);
                }
            }
        }
    }

    /// The account of a principal, if it has one.
    pub fn account_of(&self, p: &Principal) -> Option<&Account> {
        match p {
            Principal::Account(a) => self.accounts.get(a),
            Principal::Address(_) => None,
        }
    }

    /// The ban that stops `p` in `room` at `now`, if any: room, account (for rendezvous
    /// rooms) and server scope, in that order. Expired bans still listed are returned
    /// too (with their scope) so that callers can lift them.
    pub fn bans_for(&self, room_name: &RoomName, p: &Principal) -> Vec<(BanScope, &Ban)> {
        let mut out = Vec::new();
        if let Some(room) = self.rooms.get(room_name) {
            if let Some(b) = room.bans.get(p) {
                out.push((BanScope::Room(room_name.clone()), b));
            }
            if let Some(acc) = &room.account {
                if let Some(b) = self.accounts.get(acc).and_then(|a| a.bans.get(p)) {
                    out.push((BanScope::Account(acc.clone()), b));
                }
            }
        }
        if let Some(b) = self.server_bans.get(p) {
            out.push((BanScope::Server, b));
        }
        out
    }

    /// The address bans that apply in a room: its own, its account's (rendezvous rooms)
    /// and the server's, in that order, each with its scope and key. Expired ones still
    /// listed are returned too, so that callers can lift them.
    pub fn address_bans_for(&self, room_name: &RoomName) -> Vec<(BanScope, &String, &AddressBan)> {
        let mut out = Vec::new();
        if let Some(room) = self.rooms.get(room_name) {
            let scope = BanScope::Room(room_name.clone());
            out.extend(room.address_bans.iter().map(|(k, b)| (scope.clone(), k, b)));
            if let Some(acc) = &room.account {
                if let Some(a) = self.accounts.get(acc) {
                    let scope = BanScope::Account(acc.clone());
                    out.extend(a.address_bans.iter().map(|(k, b)| (scope.clone(), k, b)));
                }
            }
        }
        out.extend(
            self.server_address_bans
                .iter()
                .map(|(k, b)| (BanScope::Server, k, b)),
        );
        out
    }

    /// The address bans of one scope (`None`: no such room or account).
    pub fn address_bans_in(&self, scope: &BanScope) -> Option<&Map<String, AddressBan>> {
        match scope {
            BanScope::Room(r) => self.rooms.get(r).map(|r| &r.address_bans),
            BanScope::Account(a) => self.accounts.get(a).map(|a| &a.address_bans),
            BanScope::Server => Some(&self.server_address_bans),
        }
    }

    /// Whether any ban (active or not yet lifted) stops `p` in the room.
    pub fn is_banned_in(&self, room: &RoomName, p: &Principal, now: DateTime<Utc>) -> bool {
        self.bans_for(room, p).iter().any(|(_, b)| b.active_at(now))
    }

    /// Whether an autoban holds for `key` at `now`.
    pub fn autobanned(&self, key: &AutobanKey, now: DateTime<Utc>) -> bool {
        self.autobans.get(key).is_some_and(|u| *u > now)
    }

    /// The affiliation of `p` in a room.
    pub fn affiliation(&self, room: &RoomName, p: &Principal) -> Option<Role> {
        self.rooms
            .get(room)
            .and_then(|r| r.affiliations.get(p).copied())
    }

    /// Whether `p` moderates the room through its account's moderator list (Jami).
    pub fn is_account_moderator(&self, room: &Room, p: &Principal) -> bool {
        room.account
            .as_ref()
            .and_then(|a| self.accounts.get(a))
            .is_some_and(|acc| acc.moderators.contains(p))
    }

    // ---- queries the service and admin tools use ----

    /// Rooms with their member counts (Kamailio `imc_list_rooms`).
    pub fn list_rooms(&self) -> impl Iterator<Item = (&RoomName, &Room)> {
        self.rooms.iter()
    }

    /// Members of a room with their sessions (Kamailio `imc_list_members`).
    pub fn list_members(&self, room: &RoomName) -> Option<&Map<Principal, Member>> {
        self.rooms.get(room).map(|r| &r.members)
    }

    /// Whether a right granted to `identity` in `room` still stands: the room exists, the
    /// person is neither banned there (room, account or server scope) nor on a disabled
    /// account, and, for a right bound to a session, that session is present in the
    /// room or waiting in its lobby. Gateways revoke what they issued on such a right
    /// (a web token, later a dialog or an occupancy) once this turns false, whichever
    /// gateway's command ended it.
    pub fn grant_holds(
        &self,
        room: &RoomName,
        identity: &Address,
        session: Option<&SessionId>,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(r) = self.rooms.get(room) else {
            return false;
        };
        let p = self.principal_of(identity);
        if self.is_banned_in(room, &p, now) || self.account_of(&p).is_some_and(|a| !a.enabled) {
            return false;
        }
        let Some(session) = session else {
            return true;
        };
        let present = r.members.get(&p).is_some_and(|m| {
            m.sessions
                .get(session)
                .is_some_and(|presence| &presence.address == identity)
        });
        present
            || r.lobby
                .get(&p)
                .is_some_and(|k| &k.session == session && &k.address == identity)
    }

    /// The SIP digest credentials of an identity, if an operator set some. The
    /// registrar also refuses a REGISTER when the account is disabled
    /// (`accounts[&cred.account].enabled`).
    pub fn sip_credential(&self, address: &Address) -> Option<&SipCredential> {
        self.sip_credentials.get(address)
    }

    /// The `sip:` identities of an account that have digest credentials.
    pub fn sip_credentials_of<'a>(
        &'a self,
        account: &'a AccountId,
    ) -> impl Iterator<Item = (&'a Address, &'a SipCredential)> + 'a {
        self.accounts
            .get(account)
            .into_iter()
            .flat_map(|acc| acc.identities.iter())
            .filter_map(|a| self.sip_credentials.get(a).map(|c| (a, c)))
    }

    /// The recordings of a room, oldest first (by start, then id).
    pub fn recordings_of<'a>(
        &'a self,
        room: &'a RoomName,
    ) -> Vec<(&'a RecordingId, &'a Recording)> {
        let mut out: Vec<_> = self
            .recordings
            .iter()
            .filter(|(_, r)| &r.room == room)
            .collect();
        out.sort_by(|a, b| (a.1.started_at, a.0).cmp(&(b.1.started_at, b.0)));
        out
    }

    /// Rooms with at least one member (Kamailio `active_rooms` statistic).
    pub fn active_rooms(&self) -> usize {
        self.rooms
            .values()
            .filter(|r| !r.members.is_empty())
            .count()
    }
}
