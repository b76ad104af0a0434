//! The XEP-0045 core without a server or an engine service: commands are decided and
//! applied with the engine's own `decide`/`evolve`, committed events are handed back,
//! and each test reads the stanzas that came out. Written from XEP-0045's examples.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use conclave_engine::event::EventKind;
use conclave_engine::ids::{Address, RoomName};
use conclave_engine::service::{Applied, EngineError, Outcome};
use conclave_engine::testing::FakeVerifier;
use conclave_engine::{
    decide, evolve, Actor, Command, Context, Event, Origin, Policy, RoomChange, State,
};
use conclave_gateway_xmpp::archive::{ArchiveError, ArchivedMessage, MamPage};
use conclave_gateway_xmpp::core::{NS_COMPONENT, NS_MUC, NS_STANZAS};
use conclave_gateway_xmpp::mam::MamQuery;
use conclave_gateway_xmpp::muc::stanzas::{NS_MUC_ADMIN, NS_MUC_OWNER, NS_MUC_USER};
use conclave_gateway_xmpp::muc::{Action, Archive, Ctx, Exec, Muc, MucConfig};
use conclave_gateway_xmpp::xml::{parse_element, Element};

const DOMAIN: &str = "conference.localhost";

struct History(Vec<ArchivedMessage>);

impl Archive for History {
    fn recent(&self, room: &RoomName, max: usize) -> Vec<ArchivedMessage> {
        let _ = room;
        let skip = self.0.len().saturating_sub(max);
        self.0[skip..].to_vec()
    }
    fn query(&self, _: &RoomName, q: &MamQuery) -> Result<MamPage, ArchiveError> {
        let skip = self.0.len().saturating_sub(q.max);
        let messages = self.0[skip..].to_vec();
        Ok(MamPage {
            first: messages.first().map(|m| m.id.clone()),
            last: messages.last().map(|m| m.id.clone()),
            complete: skip == 0,
            count: Some(self.0.len()),
            messages,
        })
    }
}

/// The engine's state, the core, and what came out.
struct World {
    state: State,
    now: DateTime<Utc>,
    muc: Muc,
    history: History,
    out: Vec<Element>,
    seq: u64,
    /// Deliver committed events before the command's result (as a fast feed does).
    feed_first: bool,
}

impl World {
    fn new() -> World {
        World {
            state: State::new(Policy::default()),
            now: DateTime::from_timestamp(1_750_000_000, 0).unwrap(),
            muc: Muc::new(MucConfig::new(DOMAIN), 7),
            history: History(Vec::new()),
            out: Vec::new(),
            seq: 0,
            feed_first: false,
        }
    }

    /// A stanza from the server; returns what the core sent as a result, once every
    /// command it caused has run.
    fn recv(&mut self, xml: &str) -> Vec<Element> {
        let el = parse_element(xml, NS_COMPONENT, &[]).unwrap();
        {
            let cx = Ctx {
                state: &self.state,
                now: self.now,
                archive: &self.history,
            };
            self.muc.stanza(&el, &cx);
        }
        self.settle()
    }

    fn settle(&mut self) -> Vec<Element> {
        loop {
            let actions = self.muc.drain();
            if actions.is_empty() {
                break;
            }
            for a in actions {
                match a {
                    Action::Send(el) => self.out.push(el),
                    Action::Execute(e) => self.execute(*e),
                }
            }
        }
        std::mem::take(&mut self.out)
    }

    fn execute(&mut self, e: Exec) {
        let Exec {
            token,
            actor,
            mut command,
            password,
            correlation,
        } = e;
        if let (Some(p), Command::ConfigureRoom { changes, .. }) = (&password, &mut command) {
            changes.push(RoomChange::AccessPassword(Some(FakeVerifier::hash(
                p.expose(),
            ))));
        }
        let corr = correlation.unwrap_or_else(|| format!("c{token}"));
        let result = self.decide_apply(actor, &command, &corr, "xmpp");
        self.deliver(token, result, &corr);
    }

    fn decide_apply(
        &mut self,
        actor: Actor,
        command: &Command,
        corr: &str,
        gateway: &str,
    ) -> Result<Vec<Event>, EngineError> {
        let mut ctx = Context::new(actor, self.now, corr);
        ctx.origin = Origin {
            gateway: gateway.into(),
            protocol: gateway.into(),
            remote_addr: None,
        };
        match decide(&self.state, command, &ctx, &FakeVerifier) {
            Ok(events) => {
                for ev in &events {
                    evolve(&mut self.state, ev);
                }
                Ok(events)
            }
            Err(r) => {
                for ev in &r.record {
                    evolve(&mut self.state, ev);
                }
                Err(EngineError::Rejected {
                    rejection: r.rejection,
                    correlation_id: corr.into(),
                    recorded: Vec::new(),
                })
            }
        }
    }

    fn deliver(&mut self, token: u64, result: Result<Vec<Event>, EngineError>, corr: &str) {
        let events = result.clone().unwrap_or_default();
        let outcome = result.map(|events| Outcome {
            correlation_id: corr.into(),
            events: events
                .into_iter()
                .map(|event| {
                    self.seq += 1;
                    Applied {
                        seq: self.seq,
                        stream: String::new(),
                        event,
                    }
                })
                .collect(),
            head: self.seq,
        });
        if self.feed_first {
            self.feed(&events, corr);
            self.result(token, &outcome);
        } else {
            self.result(token, &outcome);
            self.feed(&events, corr);
        }
    }

    fn result(&mut self, token: u64, outcome: &Result<Outcome, EngineError>) {
        let cx = Ctx {
            state: &self.state,
            now: self.now,
            archive: &self.history,
        };
        self.muc.result(token, outcome, &cx);
    }

    fn feed(&mut self, events: &[Event], corr: &str) {
        for ev in events {
            if let EventKind::MessagePosted {
                message,
                address,
                body: Some(body),
                ..
            } = &ev.kind
            {
                self.history.0.push(ArchivedMessage {
                    seq: self.seq,
                    id: message.as_str().to_owned(),
                    at: ev.at,
                    from: address.clone(),
                    body: body.clone(),
                });
            }
            let cx = Ctx {
                state: &self.state,
                now: self.now,
                archive: &self.history,
            };
            self.muc.event(ev, Some(corr), &cx);
        }
    }

    /// A command made elsewhere (HTTP, SIP, the operator): its events reach the core
    /// through the feed only.
    fn elsewhere(&mut self, actor: Actor, command: Command) -> Vec<Element> {
        let events = self
            .decide_apply(actor, &command, "elsewhere", "web")
            .unwrap();
        self.feed(&events, "elsewhere");
        self.settle()
    }

    /// `user` (`alice` → `alice@localhost/pc`) joins `room` as `nick`.
    fn join(&mut self, user: &str, room: &str, nick: &str) -> Vec<Element> {
        self.recv(&format!(
            "<presence from='{user}@localhost/pc' to='{room}@{DOMAIN}/{nick}'><x xmlns='{NS_MUC}'/></presence>"
        ))
    }

    /// `user` submits `fields` (XEP-0004 `<field>`s) as room r's configuration.
    fn configure(&mut self, user: &str, fields: &str) -> Vec<Element> {
        self.recv(&format!(
            "<iq type='set' id='cfg' from='{user}@localhost/pc' to='r@{DOMAIN}'><query xmlns='{NS_MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'>{fields}</x></query></iq>"
        ))
    }

    /// `user` creates `room` and accepts the default configuration.
    fn create(&mut self, user: &str, room: &str, nick: &str) {
        self.join(user, room, nick);
        let out = self.recv(&format!(
            "<iq type='set' id='inst' from='{user}@localhost/pc' to='{room}@{DOMAIN}'><query xmlns='{NS_MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query></iq>"
        ));
        assert!(iq_result(&out), "{out:?}");
    }

    fn room(&self, name: &str) -> &conclave_engine::state::Room {
        self.state
            .rooms
            .get(&RoomName::lookup(name).unwrap())
            .unwrap()
    }
}

/// Whether an IQ result is among the stanzas.
fn iq_result(out: &[Element]) -> bool {
    out.iter()
        .any(|e| e.name == "iq" && e.get_attr("type") == Some("result"))
}

fn jid(user: &str) -> String {
    format!("{user}@localhost/pc")
}

fn to<'a>(out: &'a [Element], user: &str) -> Vec<&'a Element> {
    let j = jid(user);
    out.iter()
        .filter(|e| e.get_attr("to") == Some(&j))
        .collect()
}

fn codes(p: &Element) -> Vec<String> {
    p.get_child("x", NS_MUC_USER)
        .map(|x| {
            x.elements()
                .filter(|e| e.name == "status")
                .filter_map(|e| e.get_attr("code").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn item(p: &Element) -> (String, String) {
    let it = p
        .get_child("x", NS_MUC_USER)
        .and_then(|x| x.get_child("item", NS_MUC_USER))
        .expect("an item");
    (
        it.get_attr("affiliation").unwrap_or("").to_owned(),
        it.get_attr("role").unwrap_or("").to_owned(),
    )
}

fn condition(e: &Element) -> String {
    assert_eq!(e.get_attr("type"), Some("error"), "{e:?}");
    e.get_child("error", NS_COMPONENT)
        .and_then(|er| {
            er.elements()
                .find(|c| c.ns == NS_STANZAS && c.name != "text")
        })
        .map(|c| c.name.clone())
        .expect("a condition")
}

fn bodies(out: &[&Element]) -> Vec<String> {
    out.iter()
        .filter_map(|m| m.get_child("body", NS_COMPONENT))
        .map(Element::text_content)
        .collect()
}

#[test]
fn joining_a_missing_room_creates_it_locked_with_the_joiner_as_owner() {
    let mut w = World::new();
    let out = w.join("alice", "r", "Alice");
    let mine = to(&out, "alice");
    let own = mine
        .iter()
        .find(|p| p.name == "presence")
        .expect("own presence");
    assert_eq!(own.get_attr("from"), Some("r@conference.localhost/Alice"));
    assert!(codes(own).contains(&"110".to_owned()));
    assert!(codes(own).contains(&"201".to_owned()));
    assert_eq!(item(own), ("owner".into(), "moderator".into()));
    assert!(w.room("r").config.locked);
    let last = mine.last().unwrap();
    assert!(
        last.get_child("subject", NS_COMPONENT).is_some(),
        "subject comes last"
    );
}

#[test]
fn a_new_room_is_closed_to_others_until_its_owner_configures_it() {
    let mut w = World::new();
    w.join("alice", "r", "Alice");
    let out = w.join("bob", "r", "Bob");
    assert_eq!(condition(&out[0]), "item-not-found");
    w.recv(&format!(
        "<iq type='set' id='i' from='alice@localhost/pc' to='r@{DOMAIN}'><query xmlns='{NS_MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query></iq>"
    ));
    assert!(!w.room("r").config.locked);
    let out = w.join("bob", "r", "Bob");
    assert!(to(&out, "bob")
        .iter()
        .any(|p| codes(p).contains(&"110".into())));
}

#[test]
fn a_joiner_gets_every_occupant_before_its_own_presence_and_others_get_it() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    let out = w.join("bob", "r", "Bob");
    let bobs: Vec<&Element> = to(&out, "bob")
        .into_iter()
        .filter(|e| e.name == "presence")
        .collect();
    assert_eq!(
        bobs[0].get_attr("from"),
        Some("r@conference.localhost/Alice")
    );
    assert!(codes(bobs[1]).contains(&"110".into()));
    assert_eq!(item(bobs[1]), ("none".into(), "participant".into()));
    let alices = to(&out, "alice");
    assert_eq!(alices.len(), 1);
    assert_eq!(
        alices[0].get_attr("from"),
        Some("r@conference.localhost/Bob")
    );
    assert!(!codes(alices[0]).contains(&"110".into()));
}

#[test]
fn a_joiner_is_in_the_journal_before_anyone_sees_it() {
    let mut w = World::new();
    w.feed_first = true;
    w.create("alice", "r", "Alice");
    w.join("bob", "r", "Bob");
    assert_eq!(w.room("r").members.len(), 2);
    assert_eq!(w.muc.occupants().count(), 2);
}

#[test]
fn a_taken_nickname_is_a_conflict() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    let out = w.join("bob", "r", "Alice");
    assert_eq!(condition(&out[0]), "conflict");
    assert_eq!(w.room("r").members.len(), 1);
}

#[test]
fn a_nickname_change_is_unavailable_with_303_then_available() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.join("bob", "r", "Bob");
    let out = w.recv(&format!(
        "<presence from='bob@localhost/pc' to='r@{DOMAIN}/Robert'/>"
    ));
    let alices = to(&out, "alice");
    assert_eq!(alices[0].get_attr("type"), Some("unavailable"));
    assert!(codes(alices[0]).contains(&"303".into()));
    assert_eq!(
        alices[1].get_attr("from"),
        Some("r@conference.localhost/Robert")
    );
    let bobs = to(&out, "bob");
    assert!(codes(bobs[0]).contains(&"110".into()));
}

#[test]
fn groupchat_is_journaled_then_reflected_to_everyone_with_the_senders_id() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.join("bob", "r", "Bob");
    let out = w.recv(&format!(
        "<message type='groupchat' id='m1' from='bob@localhost/pc' to='r@{DOMAIN}'><body>hello</body></message>"
    ));
    for user in ["alice", "bob"] {
        let m = to(&out, user);
        assert_eq!(bodies(&m), vec!["hello".to_owned()]);
        assert_eq!(m[0].get_attr("id"), Some("m1"));
        assert_eq!(m[0].get_attr("from"), Some("r@conference.localhost/Bob"));
    }
    assert_eq!(w.history.0.len(), 1);
}

#[test]
fn a_stranger_cannot_send_to_the_room() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    let out = w.recv(&format!(
        "<message type='groupchat' from='mallory@localhost/x' to='r@{DOMAIN}'><body>spam</body></message>"
    ));
    assert_eq!(condition(&out[0]), "not-acceptable");
    assert!(w.history.0.is_empty());
}

#[test]
fn a_private_message_reaches_its_target_alone() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.join("bob", "r", "Bob");
    w.join("carol", "r", "Carol");
    let out = w.recv(&format!(
        "<message type='chat' from='bob@localhost/pc' to='r@{DOMAIN}/Carol'><body>psst</body></message>"
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].get_attr("to"), Some("carol@localhost/pc"));
    assert_eq!(out[0].get_attr("from"), Some("r@conference.localhost/Bob"));
    assert!(
        w.history.0.is_empty(),
        "private messages are not the room's"
    );
}

#[test]
fn a_kick_removes_the_occupant_with_307_for_everyone() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.join("bob", "r", "Bob");
    let out = w.recv(&format!(
        "<iq type='set' id='k' from='alice@localhost/pc' to='r@{DOMAIN}'><query xmlns='{NS_MUC_ADMIN}'><item nick='Bob' role='none'><reason>flood</reason></item></query></iq>"
    ));
    let bobs = to(&out, "bob");
    assert_eq!(bobs[0].get_attr("type"), Some("unavailable"));
    assert!(codes(bobs[0]).contains(&"307".into()));
    assert!(codes(bobs[0]).contains(&"110".into()));
    assert!(to(&out, "alice")
        .iter()
        .any(|e| codes(e).contains(&"307".into())));
    assert!(to(&out, "alice")
        .iter()
        .any(|e| e.name == "iq" && e.get_attr("type") == Some("result")));
    assert_eq!(w.muc.occupants().count(), 1);
}

#[test]
fn a_ban_removes_with_301_and_keeps_the_person_out() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.join("bob", "r", "Bob");
    let out = w.recv(&format!(
        "<iq type='set' id='b' from='alice@localhost/pc' to='r@{DOMAIN}'><query xmlns='{NS_MUC_ADMIN}'><item jid='bob@localhost' affiliation='outcast'/></query></iq>"
    ));
    let bobs = to(&out, "bob");
    assert!(codes(bobs[0]).contains(&"301".into()));
    assert_eq!(item(bobs[0]).0, "outcast");
    let out = w.join("bob", "r", "Bob");
    assert_eq!(condition(&out[0]), "forbidden");
}

#[test]
fn a_kick_made_over_http_removes_the_xmpp_occupant_too() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.join("bob", "r", "Bob");
    let out = w.elsewhere(
        Actor::Admin,
        Command::Kick {
            room: RoomName::lookup("r").unwrap(),
            subject: conclave_engine::ids::Principal::Address(
                Address::parse("xmpp:bob@localhost").unwrap(),
            ),
            reason: None,
        },
    );
    assert!(to(&out, "bob")
        .iter()
        .any(|e| codes(e).contains(&"307".into())));
}

#[test]
fn a_visitor_needs_voice_in_a_moderated_room() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.configure("alice", "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var='muc#roomconfig_moderatedroom'><value>1</value></field>");
    let out = w.join("bob", "r", "Bob");
    let own = to(&out, "bob")
        .into_iter()
        .find(|p| codes(p).contains(&"110".into()))
        .unwrap();
    assert_eq!(item(own).1, "visitor");
    let out = w.recv(&format!(
        "<message type='groupchat' id='v' from='bob@localhost/pc' to='r@{DOMAIN}'><body>hi</body></message>"
    ));
    assert_eq!(condition(&out[0]), "forbidden");
    w.recv(&format!(
        "<iq type='set' id='g' from='alice@localhost/pc' to='r@{DOMAIN}'><query xmlns='{NS_MUC_ADMIN}'><item nick='Bob' role='participant'/></query></iq>"
    ));
    let out = w.recv(&format!(
        "<message type='groupchat' id='v2' from='bob@localhost/pc' to='r@{DOMAIN}'><body>hi</body></message>"
    ));
    assert_eq!(bodies(&to(&out, "alice")), vec!["hi".to_owned()]);
}

#[test]
fn a_password_protected_room_wants_the_right_password() {
    let mut w = World::new();
    w.join("alice", "r", "Alice");
    let out = w.configure("alice", "<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field><field var='muc#roomconfig_roomsecret'><value>s3cret</value></field>");
    assert!(iq_result(&out), "{out:?}");
    let out = w.join("bob", "r", "Bob");
    assert_eq!(condition(&out[0]), "not-authorized");
    let out = w.recv(&format!(
        "<presence from='bob@localhost/pc' to='r@{DOMAIN}/Bob'><x xmlns='{NS_MUC}'><password>wrong</password></x></presence>"
    ));
    assert_eq!(condition(&out[0]), "not-authorized");
    let out = w.recv(&format!(
        "<presence from='bob@localhost/pc' to='r@{DOMAIN}/Bob'><x xmlns='{NS_MUC}'><password>s3cret</password></x></presence>"
    ));
    assert!(to(&out, "bob")
        .iter()
        .any(|p| codes(p).contains(&"110".into())));
}

#[test]
fn a_members_only_room_refuses_a_stranger_with_registration_required() {
    let mut w = World::new();
    w.join("alice", "r", "Alice");
    w.configure(
        "alice",
        "<field var='muc#roomconfig_membersonly'><value>1</value></field>",
    );
    let out = w.join("bob", "r", "Bob");
    assert_eq!(condition(&out[0]), "registration-required");
}

#[test]
fn history_comes_with_delay_stamps_then_the_subject() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    for i in 0..3 {
        w.recv(&format!(
            "<message type='groupchat' from='alice@localhost/pc' to='r@{DOMAIN}'><body>m{i}</body></message>"
        ));
    }
    let out = w.recv(&format!(
        "<presence from='bob@localhost/pc' to='r@{DOMAIN}/Bob'><x xmlns='{NS_MUC}'><history maxstanzas='2'/></x></presence>"
    ));
    let msgs: Vec<&Element> = to(&out, "bob")
        .into_iter()
        .filter(|e| e.name == "message")
        .collect();
    assert_eq!(bodies(&msgs), vec!["m1".to_owned(), "m2".to_owned()]);
    assert!(msgs[0].get_child("delay", "urn:xmpp:delay").is_some());
    assert!(msgs
        .last()
        .unwrap()
        .get_child("subject", NS_COMPONENT)
        .is_some());
}

#[test]
fn a_moderator_changes_the_subject_and_a_participant_may_not() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.join("bob", "r", "Bob");
    let out = w.recv(&format!(
        "<message type='groupchat' from='alice@localhost/pc' to='r@{DOMAIN}'><subject>Plans</subject></message>"
    ));
    let m = to(&out, "bob");
    assert_eq!(
        m[0].get_child("subject", NS_COMPONENT)
            .map(Element::text_content),
        Some("Plans".to_owned())
    );
    let out = w.recv(&format!(
        "<message type='groupchat' from='bob@localhost/pc' to='r@{DOMAIN}'><subject>Mine</subject></message>"
    ));
    assert_eq!(condition(&out[0]), "forbidden");
}

#[test]
fn leaving_tells_everyone_and_the_leaver_with_110() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.join("bob", "r", "Bob");
    let out = w.recv(&format!(
        "<presence type='unavailable' from='bob@localhost/pc' to='r@{DOMAIN}/Bob'/>"
    ));
    assert!(codes(to(&out, "bob")[0]).contains(&"110".into()));
    assert_eq!(to(&out, "alice")[0].get_attr("type"), Some("unavailable"));
    assert_eq!(w.room("r").members.len(), 1);
}

#[test]
fn people_on_other_protocols_are_occupants_too() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    let sip = Address::parse("sip:carol@example.org").unwrap();
    let out = w.elsewhere(
        Actor::Identity(sip.clone()),
        Command::Join {
            room: RoomName::lookup("r").unwrap(),
            session: conclave_engine::ids::SessionId::parse("call-1").unwrap(),
            credentials: Default::default(),
        },
    );
    assert_eq!(
        to(&out, "alice")[0].get_attr("from"),
        Some("r@conference.localhost/carol")
    );
    let out = w.elsewhere(
        Actor::Identity(sip),
        Command::PostMessage {
            room: RoomName::lookup("r").unwrap(),
            body: "from the phone".into(),
        },
    );
    let m = to(&out, "alice");
    assert_eq!(bodies(&m), vec!["from the phone".to_owned()]);
    assert_eq!(m[0].get_attr("from"), Some("r@conference.localhost/carol"));
}

#[test]
fn destroy_tells_occupants_the_reason_and_the_new_venue() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.join("bob", "r", "Bob");
    let out = w.recv(&format!(
        "<iq type='set' id='d' from='alice@localhost/pc' to='r@{DOMAIN}'><query xmlns='{NS_MUC_OWNER}'><destroy jid='new@{DOMAIN}'><reason>moved</reason></destroy></query></iq>"
    ));
    let p = to(&out, "bob")[0];
    let d = p
        .get_child("x", NS_MUC_USER)
        .and_then(|x| x.get_child("destroy", NS_MUC_USER))
        .expect("destroy");
    assert_eq!(d.get_attr("jid"), Some("new@conference.localhost"));
    assert!(w.state.rooms.is_empty());
}

#[test]
fn a_mediated_invitation_reaches_the_invitee_and_a_decline_the_inviter() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    let out = w.recv(&format!(
        "<message from='alice@localhost/pc' to='r@{DOMAIN}'><x xmlns='{NS_MUC_USER}'><invite to='bob@localhost'/></x></message>"
    ));
    let inv = out
        .iter()
        .find(|e| e.get_attr("to") == Some("bob@localhost"))
        .expect("invitation");
    assert!(inv
        .get_child("x", NS_MUC_USER)
        .and_then(|x| x.get_child("invite", NS_MUC_USER))
        .is_some_and(|i| i.get_attr("from") == Some("alice@localhost")));
    let out = w.recv(&format!(
        "<message from='bob@localhost/pc' to='r@{DOMAIN}'><x xmlns='{NS_MUC_USER}'><decline to='alice@localhost'/></x></message>"
    ));
    assert!(out
        .iter()
        .any(|e| e.get_attr("to") == Some("alice@localhost")
            && e.get_child("x", NS_MUC_USER)
                .and_then(|x| x.get_child("decline", NS_MUC_USER))
                .is_some()));
}

#[test]
fn users_of_other_servers_are_refused() {
    let mut w = World::new();
    let out = w.recv(&format!(
        "<presence from='eve@evil.example/x' to='r@{DOMAIN}/Eve'><x xmlns='{NS_MUC}'/></presence>"
    ));
    assert_eq!(condition(&out[0]), "not-allowed");
    assert!(w.state.rooms.is_empty());
}

#[test]
fn hostile_nicknames_are_refused_before_the_engine() {
    let mut w = World::new();
    let long = "n".repeat(65);
    for nick in [long.as_str(), "a&#x7;b", "   "] {
        let out = w.recv(&format!(
            "<presence from='bob@localhost/pc' to='r@{DOMAIN}/{nick}'><x xmlns='{NS_MUC}'/></presence>"
        ));
        assert_eq!(condition(&out[0]), "jid-malformed", "{nick:?}");
    }
    assert!(w.state.rooms.is_empty());
}

#[test]
fn only_owners_see_the_configuration_form() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.join("bob", "r", "Bob");
    let get = |u: &str| {
        format!("<iq type='get' id='f' from='{u}@localhost/pc' to='r@{DOMAIN}'><query xmlns='{NS_MUC_OWNER}'/></iq>")
    };
    let out = w.recv(&get("bob"));
    assert_eq!(condition(&out[0]), "forbidden");
    let out = w.recv(&get("alice"));
    assert!(out[0]
        .get_child("query", NS_MUC_OWNER)
        .and_then(|q| q.get_child("x", "jabber:x:data"))
        .is_some());
}

#[test]
fn errors_are_never_answered() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    let out = w.recv(&format!(
        "<message type='error' from='bob@localhost/pc' to='r@{DOMAIN}'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    ));
    assert!(out.is_empty());
}

#[test]
fn after_a_reconnect_every_occupant_is_told_the_room_again_own_presence_last() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.join("bob", "r", "Bob");
    {
        let cx = Ctx {
            state: &w.state,
            now: w.now,
            archive: &w.history,
        };
        w.muc.resync(&cx);
    }
    let out = w.settle();
    for (user, other) in [("alice", "Bob"), ("bob", "Alice")] {
        let mine: Vec<&Element> = to(&out, user)
            .into_iter()
            .filter(|e| e.name == "presence")
            .collect();
        assert_eq!(mine.len(), 2, "{mine:?}");
        assert_eq!(
            mine[0].get_attr("from"),
            Some(format!("r@conference.localhost/{other}").as_str())
        );
        assert!(codes(mine[1]).contains(&"110".into()));
    }
}

#[test]
fn the_gateway_renews_the_lease_of_every_session_it_holds() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.join("bob", "r", "Bob");
    w.muc.renew_all();
    let renewals = w
        .muc
        .drain()
        .into_iter()
        .filter(|a| matches!(a, Action::Execute(e) if matches!(e.command, Command::RenewSession { .. })))
        .count();
    assert_eq!(renewals, 2);
}

#[test]
fn a_mam_query_is_answered_from_the_archive_with_a_fin() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    for i in 0..3 {
        w.recv(&format!(
            "<message type='groupchat' from='alice@localhost/pc' to='r@{DOMAIN}'><body>m{i}</body></message>"
        ));
    }
    let out = w.recv(&format!(
        "<iq type='set' id='q' from='alice@localhost/pc' to='r@{DOMAIN}'><query xmlns='urn:xmpp:mam:2' queryid='x'/></iq>"
    ));
    let results: Vec<&Element> = out.iter().filter(|e| e.name == "message").collect();
    assert_eq!(results.len(), 3);
    let fin = out.last().unwrap();
    assert_eq!(fin.get_attr("type"), Some("result"));
    assert!(fin.get_child("fin", "urn:xmpp:mam:2").is_some());
}

#[test]
fn a_voice_request_reaches_the_moderators_and_their_approval_gives_voice() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.configure(
        "alice",
        "<field var='muc#roomconfig_moderatedroom'><value>1</value></field>",
    );
    w.join("bob", "r", "Bob");
    let request = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field><field var='muc#role'><value>participant</value></field></x>";
    let out = w.recv(&format!(
        "<message from='bob@localhost/pc' to='r@{DOMAIN}'>{request}</message>"
    ));
    let form = to(&out, "alice")
        .into_iter()
        .find_map(|m| m.get_child("x", "jabber:x:data"))
        .expect("the request form");
    assert!(form
        .elements()
        .any(|f| f.get_attr("var") == Some("muc#roomnick")
            && f.elements().any(|v| v.text_content() == "Bob")));
    let approve = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field><field var='muc#role'><value>participant</value></field><field var='muc#roomnick'><value>Bob</value></field><field var='muc#request_allow'><value>true</value></field></x>";
    let out = w.recv(&format!(
        "<message from='alice@localhost/pc' to='r@{DOMAIN}'>{approve}</message>"
    ));
    let own = to(&out, "bob")
        .into_iter()
        .find(|p| p.name == "presence")
        .expect("bob's new presence");
    assert_eq!(item(own).1, "participant");
    let bob =
        conclave_engine::ids::Principal::Address(Address::parse("xmpp:bob@localhost").unwrap());
    assert!(!w.room("r").members[&bob].hand_raised);
}

/// Stanzas a hostile client can send, with holes for arbitrary text.
const HOSTILE: &[&str] = &[
    "<presence from='{A}@localhost/{B}' to='{C}@conference.localhost/{D}'><x xmlns='http://jabber.org/protocol/muc'><password>{E}</password><history maxstanzas='{F}' seconds='{F}' since='{E}'/></x></presence>",
    "<presence type='{E}' from='bob@localhost/pc' to='r@conference.localhost/{D}'/>",
    "<message type='{E}' id='{F}' from='bob@localhost/pc' to='r@conference.localhost'><body>{A}</body><subject>{B}</subject></message>",
    "<message type='chat' from='bob@localhost/pc' to='r@conference.localhost/{D}'><body>{A}</body></message>",
    "<message from='bob@localhost/pc' to='r@conference.localhost'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='{A}'><reason>{B}</reason></invite><decline to='{C}'/></x></message>",
    "<iq type='set' id='{F}' from='alice@localhost/pc' to='r@conference.localhost'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='{D}' jid='{A}' role='{E}' affiliation='{B}'><reason>{C}</reason></item></query></iq>",
    "<iq type='set' id='{F}' from='alice@localhost/pc' to='r@conference.localhost'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='{E}'><field var='muc#roomconfig_{A}'><value>{B}</value></field><field var='muc#roomconfig_maxusers'><value>{F}</value></field></x><destroy jid='{C}'><reason>{D}</reason></destroy></query></iq>",
    "<iq type='{E}' id='{F}' from='alice@localhost/pc' to='r@conference.localhost'><query xmlns='urn:xmpp:mam:2' queryid='{A}'><x xmlns='jabber:x:data' type='submit'><field var='with'><value>{B}</value></field><field var='start'><value>{C}</value></field></x><set xmlns='http://jabber.org/protocol/rsm'><max>{F}</max><before>{D}</before></set></query></iq>",
    "<message from='bob@localhost/pc' to='r@conference.localhost'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field><field var='muc#roomnick'><value>{D}</value></field><field var='muc#request_allow'><value>{E}</value></field></x></message>",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Whatever a client puts in a stanza, the core answers without panicking, with a
    /// bounded number of stanzas, and every answer it sends is well-formed XML.
    #[test]
    fn hostile_stanzas_get_bounded_well_formed_answers(
        seed in 0..HOSTILE.len(),
        holes in proptest::collection::vec("\\PC{0,24}", 6),
    ) {
        let mut w = World::new();
        w.create("alice", "r", "Alice");
        w.join("bob", "r", "Bob");
        let esc = |s: &str| conclave_gateway_xmpp::xml::escape(s);
        let xml = HOSTILE[seed]
            .replace("{A}", &esc(&holes[0]))
            .replace("{B}", &esc(&holes[1]))
            .replace("{C}", &esc(&holes[2]))
            .replace("{D}", &esc(&holes[3]))
            .replace("{E}", &esc(&holes[4]))
            .replace("{F}", &esc(&holes[5]));
        let Ok(el) = parse_element(&xml, NS_COMPONENT, &[]) else {
            return Ok(());
        };
        {
            let cx = Ctx { state: &w.state, now: w.now, archive: &w.history };
            w.muc.stanza(&el, &cx);
        }
        let out = w.settle();
        proptest::prop_assert!(out.len() <= 64, "{} stanzas", out.len());
        for o in &out {
            proptest::prop_assert!(parse_element(&o.to_xml(NS_COMPONENT), NS_COMPONENT, &[]).is_ok());
        }
    }
}

fn resync(w: &mut World) -> Vec<Element> {
    {
        let cx = Ctx {
            state: &w.state,
            now: w.now,
            archive: &w.history,
        };
        w.muc.resync(&cx);
    }
    w.settle()
}

fn ping_to<'a>(out: &'a [Element], user: &str) -> &'a Element {
    to(out, user)
        .into_iter()
        .find(|e| e.name == "iq" && e.get_child("ping", "urn:xmpp:ping").is_some())
        .expect("a ping")
}

#[test]
fn after_a_reconnect_a_client_its_server_no_longer_knows_is_removed_and_one_that_answers_stays() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.join("bob", "r", "Bob");
    let out = resync(&mut w);
    let (alice_ping, bob_ping) = (ping_to(&out, "alice"), ping_to(&out, "bob"));
    let reply = |p: &Element, body: &str| {
        format!(
            "<iq type='{body}' id='{}' from='{}' to='{}'>{}</iq>",
            p.get_attr("id").unwrap(),
            p.get_attr("to").unwrap(),
            p.get_attr("from").unwrap(),
            if body == "error" {
                "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
            } else {
                ""
            }
        )
    };
    let bob_gone = reply(bob_ping, "error");
    let alice_here = reply(alice_ping, "result");
    let out = w.recv(&bob_gone);
    let seen = to(&out, "alice");
    assert_eq!(seen[0].get_attr("type"), Some("unavailable"));
    assert!(codes(seen[0]).contains(&"333".into()), "{seen:?}");
    w.recv(&alice_here);
    assert_eq!(w.room("r").members.len(), 1);
    assert_eq!(w.muc.occupants().count(), 1);
}

#[test]
fn a_bounced_message_removes_the_ghost() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.join("bob", "r", "Bob");
    let out = w.recv(&format!(
        "<message type='error' from='bob@localhost/pc' to='r@{DOMAIN}'><error type='cancel'><recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    ));
    assert!(to(&out, "alice")
        .iter()
        .any(|e| codes(e).contains(&"333".into())));
    assert_eq!(w.room("r").members.len(), 1);
}

#[test]
fn a_join_from_an_occupant_sends_it_the_whole_room_again_and_nobody_else_anything() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.join("bob", "r", "Bob");
    let out = w.join("bob", "r", "Bob");
    assert!(to(&out, "alice").is_empty());
    let bobs = to(&out, "bob");
    assert!(bobs.iter().any(|p| codes(p).contains(&"110".into())));
    assert!(bobs
        .last()
        .unwrap()
        .get_child("subject", NS_COMPONENT)
        .is_some());
    assert_eq!(w.room("r").members.len(), 2);
}

#[test]
fn a_client_gone_before_its_join_was_answered_leaves_once_in() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    let join = parse_element(
        &format!("<presence from='bob@localhost/pc' to='r@{DOMAIN}/Bob'><x xmlns='{NS_MUC}'/></presence>"),
        NS_COMPONENT,
        &[],
    )
    .unwrap();
    let gone = parse_element(
        &format!("<presence type='unavailable' from='bob@localhost/pc' to='r@{DOMAIN}/Bob'/>"),
        NS_COMPONENT,
        &[],
    )
    .unwrap();
    {
        let cx = Ctx {
            state: &w.state,
            now: w.now,
            archive: &w.history,
        };
        w.muc.stanza(&join, &cx);
        // The unavailable arrives while the join command is still in flight.
        w.muc.stanza(&gone, &cx);
    }
    w.settle();
    assert_eq!(w.room("r").members.len(), 1);
    assert_eq!(w.muc.occupants().count(), 1);
}

#[test]
fn a_moderator_starts_and_stops_a_recording_with_jibris_iq_and_everyone_is_told() {
    let mut w = World::new();
    w.create("alice", "r", "Alice");
    w.join("bob", "r", "Bob");
    let jibri = |who: &str, action: &str| {
        format!(
            "<iq type='set' id='j' from='{who}@localhost/pc' to='r@{DOMAIN}'><jibri xmlns='http://jitsi.org/protocol/jibri' action='{action}' recording_mode='file'/></iq>"
        )
    };
    // A participant without moderation rights is refused, and nothing is recorded.
    let out = w.recv(&jibri("bob", "start"));
    let refusal = to(&out, "bob");
    assert_eq!(refusal[0].get_attr("type"), Some("error"), "{refusal:?}");
    assert!(w.state.rooms.values().all(|r| r.recording.is_none()));
    // The owner starts it: the IQ succeeds and every occupant reads the notice.
    let out = w.recv(&jibri("alice", "start"));
    assert!(out
        .iter()
        .any(|e| e.name == "iq" && e.get_attr("type") == Some("result")));
    assert_eq!(
        bodies(&to(&out, "bob")),
        vec!["This room is being recorded.".to_owned()]
    );
    assert!(w.state.rooms.values().any(|r| r.recording.is_some()));
    let out = w.recv(&jibri("alice", "stop"));
    assert_eq!(
        bodies(&to(&out, "bob")),
        vec!["The recording has stopped.".to_owned()]
    );
    // Live streaming is not offered.
    let out = w.recv(&format!(
        "<iq type='set' id='s' from='alice@localhost/pc' to='r@{DOMAIN}'><jibri xmlns='http://jitsi.org/protocol/jibri' action='start' recording_mode='stream'/></iq>"
    ));
    assert!(out[0]
        .get_child("error", NS_COMPONENT)
        .is_some_and(|e| e.get_child("feature-not-implemented", NS_STANZAS).is_some()));
}
