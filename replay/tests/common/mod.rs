//! A scripted meeting on a real Engine, shared by the replay tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use chrono::TimeDelta;
use conclave_engine::command::Command;
use conclave_engine::service::{Engine, EngineConfig, EngineError, Request, TestClock};
use conclave_engine::testing::advance_blocking;
use conclave_engine::{
    AccountId, Actor, Address, BanScope, Credentials, EventKind, InvitationId, Origin, Principal,
    Role, RoomName, SessionId, State,
};

pub struct Meeting {
    pub dir: tempfile::TempDir,
    /// (journal head, committed state) observed between commands.
    pub live: Vec<(u64, State)>,
    pub used_invitation: InvitationId,
    pub expired_invitation: InvitationId,
    pub ban_seq: u64,
    pub denied_seq: u64,
}

impl Meeting {
    pub fn journal_dir(&self) -> PathBuf {
        self.dir.path().join("journal")
    }
}

pub fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

pub fn room() -> RoomName {
    RoomName::lookup("standup").unwrap()
}

fn origin(gateway: &str) -> Origin {
    Origin {
        gateway: gateway.into(),
        protocol: gateway.into(),
        remote_addr: Some("192.0.2.7:5060".into()),
    }
}

fn gateway_of(who: &str) -> &'static str {
    if who.starts_with("sip:") {
        "sip"
    } else if who.starts_with("xmpp:") {
        "xmpp"
    } else {
        "web"
    }
}

/// Runs commands on an engine whose clock the script moves: a millisecond before each
/// command, so every command has its own time (replay's "state at T" needs that), and
/// further by hand to let expiry happen; nothing waits in real time.
pub struct Script {
    pub engine: Engine,
    pub clock: TestClock,
    pub live: Vec<(u64, State)>,
}

impl Script {
    fn capture(&mut self) {
        loop {
            let h1 = self.engine.head();
            let s = self.engine.read(|s| s.clone());
            if self.engine.head() == h1 {
                self.live.push((h1, s));
                return;
            }
        }
    }

    pub fn admin(&mut self, c: Command) -> conclave_engine::service::Outcome {
        self.clock.advance(TimeDelta::milliseconds(1));
        let out = self
            .engine
            .execute_blocking(Request::new(c, Actor::Admin, origin("cli")))
            .unwrap();
        self.capture();
        out
    }

    pub fn by(
        &mut self,
        who: &str,
        c: Command,
    ) -> Result<conclave_engine::service::Outcome, EngineError> {
        self.clock.advance(TimeDelta::milliseconds(1));
        let out = self.engine.execute_blocking(Request::new(
            c,
            Actor::Identity(addr(who)),
            origin(gateway_of(who)),
        ));
        self.capture();
        out
    }

    pub fn join(
        &mut self,
        who: &str,
        session: &str,
        invitation: Option<InvitationId>,
    ) -> Result<conclave_engine::service::Outcome, EngineError> {
        self.by(
            who,
            Command::Join {
                room: room(),
                session: SessionId::parse(session).unwrap(),
                credentials: Credentials {
                    invitation,
                    ..Credentials::default()
                },
            },
        )
    }
}

fn invitation_of(out: &conclave_engine::service::Outcome) -> InvitationId {
    out.events
        .iter()
        .find_map(|a| match &a.event.kind {
            EventKind::InvitationIssued { invitation, .. } => Some(invitation.clone()),
            _ => None,
        })
        .expect("an invitation was issued")
}

/// Alice (sip) owns `standup`; Bob has an account with a SIP and an XMPP identity and
/// joins over both; Carol is on the web; Mallory (xmpp) is muted, banned and denied on
/// rejoin; Dave joins with an invitation and is kicked; Erin's invitation expires.
pub fn script_meeting() -> Meeting {
    let dir = tempfile::tempdir().unwrap();
    // Start at the wall clock's time, so that "now" in the tests is after the meeting.
    let clock = TestClock::new(chrono::Utc::now() - TimeDelta::minutes(10));
    let config = EngineConfig::new(dir.path()).with_clock(clock.clone());
    let mut s = Script {
        engine: Engine::open(config).unwrap(),
        clock,
        live: Vec::new(),
    };
    s.capture();
    let bob = AccountId::parse("bob").unwrap();
    s.admin(Command::CreateAccount {
        account: bob.clone(),
        display_name: Some("BobBuilder".into()),
    });
    for id in ["sip:bob@example.org", "xmpp:bob@example.org"] {
        s.admin(Command::LinkIdentity {
            account: bob.clone(),
            address: addr(id),
        });
    }
    s.admin(Command::CreateRoom {
        room: room(),
        parent: None,
        private: false,
        owner: Some(Principal::Address(addr("sip:alice@example.org"))),
        max_members: None,
        welcome_text: Some("welcome".into()),
        access_password_hash: None,
        server_password: None,
    });
    s.join("sip:alice@example.org", "a1", None).unwrap();
    s.join("sip:bob@example.org", "b1", None).unwrap();
    s.join("xmpp:bob@example.org", "b2", None).unwrap();
    s.join("web:carol", "c1", None).unwrap();
    s.join("xmpp:mallory@example.org", "m1", None).unwrap();
    s.by(
        "sip:alice@example.org",
        Command::GrantRole {
            room: room(),
            subject: Principal::Account(bob.clone()),
            role: Role::Moderator,
        },
    )
    .unwrap();
    s.by(
        "xmpp:bob@example.org",
        Command::MuteAudio {
            room: room(),
            subject: Principal::Address(addr("xmpp:mallory@example.org")),
        },
    )
    .unwrap();
    s.by(
        "web:carol",
        Command::PostMessage {
            room: room(),
            body: "hello from carol".into(),
        },
    )
    .unwrap();
    let ban = s
        .by(
            "xmpp:bob@example.org",
            Command::Ban {
                scope: BanScope::Room(room()),
                subject: Principal::Address(addr("xmpp:mallory@example.org")),
                reason: Some("spam".into()),
                until: None,
            },
        )
        .unwrap();
    let ban_seq = ban.events[0].seq;
    let denied = s.join("xmpp:mallory@example.org", "m2", None).unwrap_err();
    let EngineError::Rejected { recorded, .. } = denied else {
        panic!("expected a rejection, got {denied:?}")
    };
    let denied_seq = recorded[0];
    let inv = s
        .by(
            "sip:alice@example.org",
            Command::Invite {
                room: room(),
                invitee: addr("xmpp:dave@example.org"),
                ttl_secs: Some(3600),
                single_use: true,
                secret: None,
            },
        )
        .unwrap();
    let used_invitation = invitation_of(&inv);
    s.join("xmpp:dave@example.org", "d1", Some(used_invitation.clone()))
        .unwrap();
    let inv = s
        .by(
            "sip:alice@example.org",
            Command::Invite {
                room: room(),
                invitee: addr("web:erin"),
                ttl_secs: Some(1),
                single_use: true,
                secret: None,
            },
        )
        .unwrap();
    let expired_invitation = invitation_of(&inv);
    s.by(
        "sip:bob@example.org",
        Command::Leave {
            room: room(),
            session: SessionId::parse("b1").unwrap(),
        },
    )
    .unwrap();
    s.by(
        "web:carol",
        Command::Leave {
            room: room(),
            session: SessionId::parse("c1").unwrap(),
        },
    )
    .unwrap();
    // Move the clock past Erin's invitation's lifetime: the engine expires it.
    let due = advance_blocking(&s.engine, &s.clock, TimeDelta::seconds(2)).unwrap();
    assert!(
        due.iter()
            .any(|a| a.event.type_name() == "invalidate_invitation"),
        "the invitation expired"
    );
    assert!(s.engine.read(|st| {
        st.rooms[&room()].invitations[&expired_invitation].state
            == conclave_engine::state::InvitationState::Expired
    }));
    s.capture();
    s.by(
        "sip:alice@example.org",
        Command::Kick {
            room: room(),
            subject: Principal::Address(addr("xmpp:dave@example.org")),
            reason: Some("done".into()),
        },
    )
    .unwrap();
    // A refused moderation attempt.
    let _ = s.by(
        "web:carol",
        Command::MuteAudio {
            room: room(),
            subject: Principal::Address(addr("sip:alice@example.org")),
        },
    );
    let live = std::mem::take(&mut s.live);
    s.engine.shutdown();
    drop(s);
    Meeting {
        dir,
        live,
        used_invitation,
        expired_invitation,
        ban_seq,
        denied_seq,
    }
}
