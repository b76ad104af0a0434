//! Serializable views of reconstructed state: what `replay state` prints and what an
//! HTTP surface returns. Password hashes are never shown, only whether one is set.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use conclave_engine::model::RoomConfig;
use conclave_engine::state::{Ban, Gate, InvitationState, Room};
use conclave_engine::{Address, BanScope, Principal, RoomName, State};
use serde::{Deserialize, Serialize};

use crate::fmt_time;

/// One session of a present person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub session: String,
    pub address: String,
    /// The identity's protocol (`sip`, `xmpp`, `web`, `mailto`).
    pub protocol: String,
    pub gateway: String,
    pub joined_at: String,
    /// As stored (a keyed hash when IP obfuscation is on).
    pub remote: Option<String>,
}

/// A present person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub principal: String,
    /// Affiliation in the room, if any.
    pub role: Option<String>,
    /// `open`, `self` (closed by the person) or `moderator` (server-enforced).
    pub audio: String,
    pub video: String,
    pub hand_raised: bool,
    pub sessions: Vec<SessionView>,
}

/// A ban that applies in the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanView {
    /// `room:<name>`, `account:<id>` or `server`.
    pub scope: String,
    pub subject: String,
    pub by: String,
    pub at: String,
    pub until: Option<String>,
    pub reason: Option<String>,
}

/// An invitation and its lifecycle state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationView {
    pub id: String,
    pub invitee: String,
    pub by: String,
    pub issued_at: String,
    pub expires_at: Option<String>,
    pub single_use: bool,
    /// `pending`, `accepted`, `denied`, `used`, `revoked`, `expired`.
    pub state: String,
}

/// Someone waiting in the lobby.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnockView {
    pub principal: String,
    pub address: String,
    pub session: String,
    pub gateway: String,
    pub at: String,
}

/// Room configuration, secrets reduced to whether they are set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigView {
    pub private: bool,
    pub locked: bool,
    pub max_members: Option<u32>,
    pub welcome_text: Option<String>,
    pub moderated_chat: bool,
    pub lobby: bool,
    pub default_role: Option<String>,
    pub owner_exit_destroys: bool,
    pub access_password: bool,
    pub reserved: bool,
    /// The room's title.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Members (not only moderators) may change the subject.
    #[serde(default)]
    pub members_change_subject: bool,
    /// Never expired for inactivity.
    #[serde(default)]
    pub persistent: bool,
    /// Every participant sees the others' real addresses.
    #[serde(default)]
    pub public_addresses: bool,
}

/// A room's subject: its text, who set it (`None`: an operator), when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectView {
    pub text: String,
    pub by: Option<String>,
    pub at: String,
}

/// One room as of a moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomView {
    pub room: String,
    /// The sequence number the view is as of.
    pub seq: u64,
    /// The time of that record.
    pub at: Option<String>,
    pub parent: Option<String>,
    pub children: Vec<String>,
    /// The account whose rendezvous room this is.
    pub account: Option<String>,
    pub created_at: String,
    pub last_activity: String,
    pub config: ConfigView,
    /// The subject, if one is set.
    #[serde(default)]
    pub subject: Option<SubjectView>,
    pub members: Vec<MemberView>,
    /// Every affiliation, present or not: principal -> role.
    pub affiliations: BTreeMap<String, String>,
    /// Moderators through the rendezvous account's list (Jami).
    pub account_moderators: Vec<String>,
    /// Room bans, plus account and server bans that stop people here.
    pub bans: Vec<BanView>,
    pub invitations: Vec<InvitationView>,
    pub lobby: Vec<KnockView>,
}

/// The whole server as of a moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerView {
    pub seq: u64,
    pub at: Option<String>,
    /// Sessions connected.
    pub online: u64,
    pub rooms: Vec<RoomView>,
    pub accounts: Vec<AccountView>,
    pub server_bans: Vec<BanView>,
    /// Autoban key (`identity:<address>` or `remote:<stored>`) and when it ends.
    pub autobans: BTreeMap<String, String>,
    pub log_days: i32,
    pub obfuscate_ips: bool,
}

/// An account as of a moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub account: String,
    /// `[purged]` when its content was removed.
    pub display_name: Option<String>,
    pub enabled: bool,
    pub identities: Vec<String>,
    pub moderators: Vec<String>,
    pub rendezvous: Option<String>,
}

pub(crate) fn gate(g: Gate) -> &'static str {
    match g {
        Gate::Open => "open",
        Gate::SelfClosed => "self",
        Gate::Moderator => "moderator",
    }
}

pub(crate) fn invitation_state(s: InvitationState) -> &'static str {
    match s {
        InvitationState::Pending => "pending",
        InvitationState::Accepted => "accepted",
        InvitationState::Denied => "denied",
        InvitationState::Used => "used",
        InvitationState::Revoked => "revoked",
        InvitationState::Expired => "expired",
    }
}

/// `room:<name>`, `account:<id>` or `server`.
pub fn scope_name(s: &BanScope) -> String {
    match s {
        BanScope::Room(r) => format!("room:{r}"),
        BanScope::Account(a) => format!("account:{a}"),
        BanScope::Server => "server".into(),
    }
}

/// A ban's scope, end and reason as reports and timelines show them:
/// `room:lobby until 2026-01-01T00:00:00Z: spam`.
pub fn ban_terms(scope: &BanScope, until: Option<DateTime<Utc>>, reason: Option<&str>) -> String {
    format!(
        "{}{}{}",
        scope_name(scope),
        until
            .map(|u| format!(" until {}", fmt_time(u)))
            .unwrap_or_default(),
        reason.map(|r| format!(": {r}")).unwrap_or_default()
    )
}

/// The protocol of an identity: its URI scheme.
pub fn protocol_of(a: &Address) -> &'static str {
    a.scheme().as_str()
}

fn ban_view(scope: &BanScope, subject: &Principal, b: &Ban) -> BanView {
    BanView {
        scope: scope_name(scope),
        subject: subject.to_string(),
        by: b.by.to_string(),
        at: fmt_time(b.at),
        until: b.until.map(fmt_time),
        reason: b.reason.clone(),
    }
}

fn config_view(c: &RoomConfig, reserved: bool) -> ConfigView {
    ConfigView {
        private: c.private,
        locked: c.locked,
        max_members: c.max_members,
        welcome_text: c.welcome_text.clone(),
        moderated_chat: c.moderated_chat,
        lobby: c.lobby,
        default_role: c.default_role.map(|r| r.as_str().to_owned()),
        owner_exit_destroys: c.owner_exit_destroys,
        access_password: c.access_password_hash.is_some(),
        reserved,
        name: c.name.clone(),
        description: c.description.clone(),
        members_change_subject: c.members_change_subject,
        persistent: c.persistent,
        public_addresses: c.public_addresses,
    }
}

impl RoomView {
    /// The view of `name` in `state`; `None` if the room does not exist there.
    pub fn of(
        state: &State,
        name: &RoomName,
        seq: u64,
        at: Option<DateTime<Utc>>,
    ) -> Option<RoomView> {
        let room: &Room = state.rooms.get(name)?;
        let members = room
            .members
            .iter()
            .map(|(p, m)| MemberView {
                principal: p.to_string(),
                role: room.affiliations.get(p).map(|r| r.as_str().to_owned()),
                audio: gate(m.audio).into(),
                video: gate(m.video).into(),
                hand_raised: m.hand_raised,
                sessions: m
                    .sessions
                    .iter()
                    .map(|(sid, s)| SessionView {
                        session: sid.to_string(),
                        address: s.address.to_string(),
                        protocol: protocol_of(&s.address).into(),
                        gateway: s.gateway.clone(),
                        joined_at: fmt_time(s.joined_at),
                        remote: s.remote.clone(),
                    })
                    .collect(),
            })
            .collect();
        let mut bans: Vec<BanView> = room
            .bans
            .iter()
            .map(|(p, b)| ban_view(&BanScope::Room(name.clone()), p, b))
            .collect();
        let mut account_moderators = Vec::new();
        if let Some(acc_id) = &room.account {
            if let Some(acc) = state.accounts.get(acc_id) {
                let scope = BanScope::Account(acc_id.clone());
                bans.extend(acc.bans.iter().map(|(p, b)| ban_view(&scope, p, b)));
                account_moderators = acc.moderators.iter().map(|p| p.to_string()).collect();
            }
        }
        bans.extend(
            state
                .server_bans
                .iter()
                .map(|(p, b)| ban_view(&BanScope::Server, p, b)),
        );
        Some(RoomView {
            room: name.to_string(),
            seq,
            at: at.map(fmt_time),
            parent: room.parent.as_ref().map(|p| p.to_string()),
            children: room.children.iter().map(|c| c.to_string()).collect(),
            account: room.account.as_ref().map(|a| a.to_string()),
            created_at: fmt_time(room.created_at),
            last_activity: fmt_time(room.last_activity),
            config: config_view(&room.config, room.is_reserved()),
            subject: room.subject.as_ref().map(|s| SubjectView {
                text: s.text.clone(),
                by: s.by.as_ref().map(ToString::to_string),
                at: fmt_time(s.at),
            }),
            members,
            affiliations: room
                .affiliations
                .iter()
                .map(|(p, r)| (p.to_string(), r.as_str().to_owned()))
                .collect(),
            account_moderators,
            bans,
            invitations: room
                .invitations
                .iter()
                .map(|(id, i)| InvitationView {
                    id: id.to_string(),
                    invitee: i.invitee.to_string(),
                    by: i.by.to_string(),
                    issued_at: fmt_time(i.issued_at),
                    expires_at: i.expires_at.map(fmt_time),
                    single_use: i.single_use,
                    state: invitation_state(i.state).into(),
                })
                .collect(),
            lobby: room
                .lobby
                .iter()
                .map(|(p, k)| KnockView {
                    principal: p.to_string(),
                    address: k.address.to_string(),
                    session: k.session.to_string(),
                    gateway: k.gateway.clone(),
                    at: fmt_time(k.at),
                })
                .collect(),
        })
    }
}

impl ServerView {
    /// The view of the whole `state`.
    pub fn of(state: &State, seq: u64, at: Option<DateTime<Utc>>) -> ServerView {
        ServerView {
            seq,
            at: at.map(fmt_time),
            online: state.online,
            rooms: state
                .rooms
                .keys()
                .filter_map(|r| RoomView::of(state, r, seq, at))
                .collect(),
            accounts: state
                .accounts
                .iter()
                .map(|(id, a)| AccountView {
                    account: id.to_string(),
                    display_name: a.display_name.clone(),
                    enabled: a.enabled,
                    identities: a.identities.iter().map(|i| i.to_string()).collect(),
                    moderators: a.moderators.iter().map(|m| m.to_string()).collect(),
                    rendezvous: a.rendezvous.as_ref().map(|r| r.to_string()),
                })
                .collect(),
            server_bans: state
                .server_bans
                .iter()
                .map(|(p, b)| ban_view(&BanScope::Server, p, b))
                .collect(),
            autobans: state
                .autobans
                .iter()
                .map(|(k, u)| (autoban_key(k), fmt_time(*u)))
                .collect(),
            log_days: state.policy.log_days,
            obfuscate_ips: state.policy.obfuscate_ips,
        }
    }
}

/// `identity:<address>` or `remote:<stored address>`.
pub fn autoban_key(k: &conclave_engine::AutobanKey) -> String {
    match k {
        conclave_engine::AutobanKey::Identity(a) => format!("identity:{a}"),
        conclave_engine::AutobanKey::Remote(r) => format!("remote:{r}"),
    }
}
