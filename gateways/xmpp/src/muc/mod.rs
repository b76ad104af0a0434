//! XEP-0045 multi-user chat over the engine, sans-IO.
//!
//! Stanzas come in ([`Muc::stanza`]), the engine's committed events come in
//! ([`Muc::event`]), command results come in ([`Muc::result`]); out come stanzas to
//! send and commands to execute ([`Action`]), drained with [`Muc::drain`]. The engine
//! state is handed in by reference with the time, so every behaviour is tested without a
//! server, an engine or a clock.
//!
//! The engine decides everything: a join, a message, a kick is a command, and what the
//! room's XMPP occupants see follows from the committed events, never from the request
//! (a message is reflected once it is journaled; a kick made over HTTP removes the XMPP
//! occupant as one made here does). What only XMPP has (nicknames, full JIDs, the
//! `<show>` of a presence) is kept here in [`occupants::Occupants`].

pub mod admin;
pub mod chat;
pub mod events;
pub mod jid;
pub mod join;
pub mod occupants;
pub mod owner;
pub mod recording;
pub mod roster;
pub mod stanzas;
pub mod voice;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use conclave_engine::ids::{Address, Principal, RoomName, SessionId};
use conclave_engine::service::{EngineError, Outcome};
use conclave_engine::{Actor, Command, Secret, State};

use crate::archive::{ArchiveError, ArchivedMessage, MamPage};
use crate::mam::MamQuery;
use crate::xml::Element;
use occupants::Occupants;

/// What the core reads besides the state: the room archive (the journal).
pub trait Archive {
    /// The last `max` messages of a room, oldest first.
    fn recent(&self, room: &RoomName, max: usize) -> Vec<ArchivedMessage>;
    /// One page of a XEP-0313 query on a room's archive.
    fn query(&self, room: &RoomName, q: &MamQuery) -> Result<MamPage, ArchiveError>;
}

/// What the core reads, per input: the committed state, the time, the archive.
pub struct Ctx<'a> {
    /// The engine's committed state.
    pub state: &'a State,
    /// Now.
    pub now: DateTime<Utc>,
    /// The journal's messages.
    pub archive: &'a dyn Archive,
}

/// One command to run for an XMPP user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// Hand the result back with this token.
    pub token: u64,
    /// Who acts: the user, or the gateway itself (`service:xmpp`) reporting that it
    /// lost a client.
    pub actor: Actor,
    /// What.
    pub command: Command,
    /// A room password to hash (argon2, off the core) and add to a `ConfigureRoom`'s
    /// changes as `AccessPassword`.
    pub password: Option<Secret>,
    /// The correlation id to journal, when the core needs to recognise the events.
    pub correlation: Option<String>,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a stanza.
    Send(Element),
    /// Run a command; hand the result to [`Muc::result`].
    Execute(Box<Exec>),
}

/// The core's settings.
#[derive(Debug, Clone)]
pub struct MucConfig {
    /// The component domain (`conference.localhost`).
    pub domain: String,
    /// The domains whose users may act (the XMPP server's own); empty = any.
    pub user_domains: Vec<String>,
}

impl MucConfig {
    /// Settings for `domain`, with its parent domain as the only user domain
    /// (`conference.localhost` serves `localhost`).
    pub fn new(domain: &str) -> Self {
        let domain = domain.to_ascii_lowercase();
        let parent = domain
            .split_once('.')
            .map(|(_, p)| p.to_owned())
            .filter(|p| p.contains('.') || !p.is_empty());
        MucConfig {
            user_domains: parent.into_iter().collect(),
            domain,
        }
    }
}

/// What a command in flight was for.
#[derive(Debug, Clone)]
enum Pending {
    /// A join at one of its steps.
    Join(join::JoinPending),
    /// A leave: on failure the client is told it is out anyway.
    Leave { room: RoomName, jid: String },
    /// A groupchat message or subject change; on failure the sender gets the error.
    Message { stanza: Element },
    /// Commands run one after the other for one stanza, stopping at the first refusal
    /// (answered with it); an IQ gets its empty result once every one succeeded.
    Chain {
        stanza: Element,
        actor: Address,
        rest: VecDeque<(Command, Option<Secret>)>,
    },
    /// An invitation or decline; on failure the sender gets the error.
    Notify { stanza: Element },
    /// A lease renewal: nothing to do with the answer.
    Renew,
}

/// Most correlation ids remembered for reflecting client message ids.
const MAX_CORRELATIONS: usize = 10_000;

/// The MUC core.
pub struct Muc {
    config: MucConfig,
    occupants: Occupants,
    /// Non-XMPP people shown to a room's XMPP occupants, with the nickname shown.
    others: BTreeMap<RoomName, BTreeMap<Principal, String>>,
    pending: HashMap<u64, Pending>,
    /// Joins waiting for their `Joined` event, by session.
    joining: HashMap<(RoomName, SessionId), join::JoinPending>,
    /// Clients that left while their join was in flight: (room, full JID).
    leave_after_join: HashSet<(RoomName, String)>,
    /// Rooms this gateway created and locked until their owner configures them.
    awaiting_config: HashSet<RoomName>,
    /// Reason and alternate venue of destroys asked here, shown when the room goes.
    destroying: HashMap<RoomName, (Option<String>, Option<String>)>,
    /// Reconnect pings in flight: id → (room, client). Cleared at each reconnect.
    pings: HashMap<String, (RoomName, String)>,
    /// The configuration notices sent for the last configuring command.
    notices: Option<((RoomName, String), std::collections::BTreeSet<u16>)>,
    /// Correlation id → what the stanza said that the engine does not keep and its
    /// event must show: a message's client id (reflected as sent), an invitation's
    /// reason.
    notes: HashMap<String, String>,
    note_order: VecDeque<String>,
    corr_prefix: String,
    next_token: u64,
    out: Vec<Action>,
}

impl Muc {
    /// A core for `config`; `nonce` makes its correlation ids unique to this process.
    pub fn new(config: MucConfig, nonce: u64) -> Self {
        Muc {
            config,
            occupants: Occupants::default(),
            others: BTreeMap::new(),
            pending: HashMap::new(),
            joining: HashMap::new(),
            awaiting_config: HashSet::new(),
            leave_after_join: HashSet::new(),
            destroying: HashMap::new(),
            notices: None,
            pings: HashMap::new(),
            notes: HashMap::new(),
            note_order: VecDeque::new(),
            corr_prefix: format!("xmpp-{nonce:016x}"),
            next_token: 1,
            out: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &MucConfig {
        &self.config
    }

    /// The XMPP occupants.
    pub fn occupants(&self) -> &Occupants {
        &self.occupants
    }

    /// Takes what the shell must do, in order.
    pub fn drain(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    /// Commands in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Handles a stanza addressed to a room or an occupant (the component domain's
    /// own stanzas are [`crate::core::Core`]'s). Returns `false` when the stanza was not
    /// for the MUC at all.
    pub fn stanza(&mut self, el: &Element, cx: &Ctx<'_>) -> bool {
        let Some(to) = el.get_attr("to").and_then(jid::Jid::parse) else {
            return false;
        };
        if to.node.is_none() || !to.domain.eq_ignore_ascii_case(&self.config.domain) {
            return false;
        }
        let kind = el.get_attr("type").unwrap_or("");
        // Errors are never answered (no bouncing between two entities); a client's
        // bounce of what the room sent it says it is gone (see `disconnect`).
        let Some(from_s) = el.get_attr("from") else {
            return true;
        };
        let Some(from) = jid::Jid::parse(from_s) else {
            return true;
        };
        let address = match self.user(&from) {
            Ok(a) => a,
            Err(condition) => {
                if kind != "error" && !(el.name == "iq" && kind == "result") {
                    self.send(stanzas::error_reply(el, "cancel", condition, None));
                }
                return true;
            }
        };
        match el.name.as_str() {
            "presence" => join::presence(self, el, &from, &to, address, cx),
            "message" => chat::message(self, el, &to, address, cx),
            "iq" => match kind {
                "get" | "set" => self.iq(el, &from, &to, address, cx),
                _ => self.pong(el),
            },
            _ => {}
        }
        true
    }

    fn iq(
        &mut self,
        el: &Element,
        from: &jid::Jid<'_>,
        to: &jid::Jid<'_>,
        address: Address,
        cx: &Ctx<'_>,
    ) {
        let payload = el.elements().next();
        let Some(q) = payload else {
            self.send(stanzas::error_reply(el, "modify", "bad-request", None));
            return;
        };
        if to.resource.is_some() {
            // IQs to an occupant (vCard, version) are not relayed: real JIDs stay
            // private, and nothing here needs it.
            self.send(stanzas::error_reply(
                el,
                "cancel",
                "service-unavailable",
                None,
            ));
            return;
        }
        let room = match self.room_of(to, cx) {
            Ok(r) => r,
            Err(text) => {
                self.send(stanzas::error_reply(
                    el,
                    "modify",
                    "jid-malformed",
                    Some(&text),
                ));
                return;
            }
        };
        let kind = el.get_attr("type").unwrap_or("");
        match (q.name.as_str(), q.ns.as_str(), kind) {
            ("query", crate::core::NS_DISCO_INFO, "get") => roster::disco_info(self, el, &room, cx),
            ("query", crate::core::NS_DISCO_ITEMS, "get") => {
                roster::disco_items(self, el, &room, from, cx)
            }
            ("query", stanzas::NS_MUC_ADMIN, _) => admin::iq(self, el, q, &room, address, cx),
            ("query", stanzas::NS_MUC_OWNER, _) => owner::iq(self, el, q, &room, address, cx),
            ("jibri", recording::NS_JIBRI, _) => recording::iq(self, el, q, &room, address),
            ("query", "urn:xmpp:mam:2", "set") => {
                roster::mam(self, el, &room, from, cx);
            }
            ("query", "urn:xmpp:mam:2", "get") => {
                let form = crate::mam::query_form();
                self.send(stanzas::iq_result(el).child(form));
            }
            _ => self.send(stanzas::error_reply(
                el,
                "cancel",
                "service-unavailable",
                None,
            )),
        }
    }

    /// The identity of a user sending to the MUC, or the condition refusing them.
    fn user(&self, from: &jid::Jid<'_>) -> Result<Address, &'static str> {
        let domain_ok = self.config.user_domains.is_empty()
            || self
                .config
                .user_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(from.domain));
        if !domain_ok {
            return Err("not-allowed");
        }
        jid::user_address(from).ok_or("jid-malformed")
    }

    /// The room a room JID names.
    fn room_of(&self, to: &jid::Jid<'_>, cx: &Ctx<'_>) -> Result<RoomName, String> {
        let node = to.node.unwrap_or_default();
        jid::room_for_node(node, cx.state.rooms.keys())
    }

    /// The room's bare JID.
    pub fn room_jid(&self, room: &RoomName) -> String {
        format!(
            "{}@{}",
            crate::core::escape_node(room.as_str()),
            self.config.domain
        )
    }

    /// An occupant's room JID.
    pub fn occupant_jid(&self, room: &RoomName, nick: &str) -> String {
        format!("{}/{nick}", self.room_jid(room))
    }

    fn send(&mut self, el: Element) {
        self.out.push(Action::Send(el));
    }

    fn exec(&mut self, actor: Address, command: Command, pending: Pending) -> u64 {
        self.exec_with(actor, command, None, None, pending)
    }

    fn exec_with(
        &mut self,
        actor: Address,
        command: Command,
        password: Option<Secret>,
        correlation: Option<String>,
        pending: Pending,
    ) -> u64 {
        self.exec_as(
            Actor::Identity(actor),
            command,
            password,
            correlation,
            pending,
        )
    }

    fn exec_as(
        &mut self,
        actor: Actor,
        command: Command,
        password: Option<Secret>,
        correlation: Option<String>,
        pending: Pending,
    ) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        self.pending.insert(token, pending);
        self.out.push(Action::Execute(Box::new(Exec {
            token,
            actor,
            command,
            password,
            correlation,
        })));
        token
    }

    /// The client `jid` is gone without leaving (its server bounced a stanza, or did not
    /// know it after a reconnect): the gateway ends its session, journaled as
    /// `disconnected`, and the room sees it leave (XEP-0045's ghost removal, 333).
    fn disconnect(&mut self, room: &RoomName, jid: &str) {
        let Some(o) = self
            .occupants
            .room(room)
            .and_then(|r| r.by_jid(jid))
            .cloned()
        else {
            return;
        };
        let pending = Pending::Leave {
            room: room.clone(),
            jid: jid.to_owned(),
        };
        self.exec_as(
            Actor::Service("xmpp".into()),
            Command::Leave {
                room: room.clone(),
                session: o.session,
            },
            None,
            None,
            pending,
        );
    }

    /// A fresh correlation id that carries `note` to the command's events.
    fn correlate(&mut self, note: Option<&str>) -> String {
        let corr = format!("{}-{}", self.corr_prefix, self.next_token);
        if let Some(text) = note {
            if self.note_order.len() >= MAX_CORRELATIONS {
                if let Some(old) = self.note_order.pop_front() {
                    self.notes.remove(&old);
                }
            }
            self.notes.insert(corr.clone(), text.to_owned());
            self.note_order.push_back(corr.clone());
        }
        corr
    }

    /// The note a command's events carry (taken: each is used once).
    fn take_note(&mut self, corr: Option<&str>) -> Option<String> {
        corr.and_then(|c| self.notes.remove(c))
    }

    /// A command's result.
    pub fn result(&mut self, token: u64, result: &Result<Outcome, EngineError>, cx: &Ctx<'_>) {
        let Some(p) = self.pending.remove(&token) else {
            return;
        };
        match p {
            Pending::Join(jp) => join::result(self, jp, result, cx),
            Pending::Leave { room, jid } => {
                if result.is_err() {
                    join::gone(self, &room, &jid, &[], None, cx);
                }
            }
            Pending::Message { stanza } | Pending::Notify { stanza } => {
                if let Err(e) = result {
                    let text = error_text(e);
                    self.send(stanzas::mapped_error(
                        &stanza,
                        e.mapping().xmpp,
                        text.as_deref(),
                    ));
                }
            }
            Pending::Chain {
                stanza,
                actor,
                mut rest,
            } => match result {
                Err(e) => {
                    let text = error_text(e);
                    self.send(stanzas::mapped_error(
                        &stanza,
                        e.mapping().xmpp,
                        text.as_deref(),
                    ));
                }
                Ok(_) => match rest.pop_front() {
                    None if stanza.name == "iq" => self.send(stanzas::iq_result(&stanza)),
                    None => {}
                    Some((command, password)) => {
                        let next = Pending::Chain {
                            stanza,
                            actor: actor.clone(),
                            rest,
                        };
                        self.exec_with(actor, command, password, None, next);
                    }
                },
            },
            Pending::Renew => {}
        }
    }

    /// The sessions to keep alive (renewed every quarter lease by the shell).
    pub fn renew_all(&mut self) {
        let list: Vec<(RoomName, Address, SessionId)> = self
            .occupants
            .iter()
            .map(|(r, o)| (r.clone(), o.address.clone(), o.session.clone()))
            .collect();
        for (room, actor, session) in list {
            self.exec(
                actor,
                Command::RenewSession { room, session },
                Pending::Renew,
            );
        }
    }

    /// After the component (re)connects: every occupant is told the room as the
    /// projection has it now, own presence last, so clients that missed events while
    /// the server was away are right again.
    pub fn resync(&mut self, cx: &Ctx<'_>) {
        self.pings.clear();
        let rooms: Vec<RoomName> = self.occupants.rooms().map(|(r, _)| r.clone()).collect();
        for room in rooms {
            let gone: Vec<String> = self
                .occupants
                .room(&room)
                .map(|r| {
                    r.iter()
                        .filter(|o| !roster::session_present(cx.state, &room, o))
                        .map(|o| o.jid.clone())
                        .collect()
                })
                .unwrap_or_default();
            for jid in gone {
                join::gone(self, &room, &jid, &[stanzas::status::SHUTDOWN], None, cx);
            }
            roster::refresh_others(self, &room, cx);
            let jids: Vec<String> = self
                .occupants
                .room(&room)
                .map(|r| r.iter().map(|o| o.jid.clone()).collect())
                .unwrap_or_default();
            for jid in jids {
                roster::send_roster(self, &room, &jid, &[], cx);
                self.ping(&room, &jid);
            }
        }
    }

    /// Asks the client `jid` whether it is still there (XEP-0199), after a reconnect:
    /// if the XMPP server restarted, clients that did not come back must not stay in
    /// rooms as ghosts renewed forever.
    fn ping(&mut self, room: &RoomName, jid: &str) {
        let id = format!("{}-ping-{}", self.corr_prefix, self.next_token);
        self.next_token += 1;
        self.pings
            .insert(id.clone(), (room.clone(), jid.to_owned()));
        let ping = Element::new("iq", crate::core::NS_COMPONENT)
            .attr("type", "get")
            .attr("id", &id)
            .attr("from", &self.room_jid(room))
            .attr("to", jid)
            .child(Element::new("ping", "urn:xmpp:ping"));
        self.send(ping);
    }

    /// The answer to a reconnect ping: a client whose server says it is not there is
    /// gone; any other answer (a result, or the client's own error) shows it is.
    fn pong(&mut self, el: &Element) {
        let Some((room, jid)) = el.get_attr("id").and_then(|id| self.pings.remove(id)) else {
            return;
        };
        if el.get_attr("from") != Some(jid.as_str()) {
            self.pings.insert(
                el.get_attr("id").unwrap_or_default().to_owned(),
                (room, jid),
            );
            return;
        }
        if el.get_attr("type") == Some("error") && stanzas::says_gone(el) {
            self.disconnect(&room, &jid);
        }
    }

    /// A committed event, with the correlation id it was journaled under.
    pub fn event(&mut self, e: &conclave_engine::Event, correlation: Option<&str>, cx: &Ctx<'_>) {
        events::event(self, e, correlation, cx);
    }
}

/// The text of an error for the user: a refusal's message; nothing for failures of the
/// server (the log has them under the correlation id).
fn error_text(e: &EngineError) -> Option<String> {
    match e {
        EngineError::Rejected { rejection, .. } => Some(rejection.to_string()),
        _ => None,
    }
}
