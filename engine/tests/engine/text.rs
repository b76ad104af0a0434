//! Text and names: one rule for the characters of everything people send (controls,
//! bidirectional controls, line separators, and in names bidirectional marks and invisible
//! characters are refused at the command boundary, so nothing with them is journaled),
//! and names that look the same are the same name (rooms, guest names).

use std::collections::BTreeSet;

use crate::common::*;
use conclave_engine::text::{CharClass, TextKind};
use conclave_engine::*;

// ---- every text-bearing field of every command ----

/// A text-bearing field of a command, to be filled with hostile text.
enum Slot<'a> {
    Text(&'a mut String),
    Room(&'a mut RoomName),
    Account(&'a mut AccountId),
    Session(&'a mut SessionId),
    Invitation(&'a mut InvitationId),
    Address(&'a mut Address),
    Principal(&'a mut Principal),
}

impl Slot<'_> {
    /// Puts `x{bad}y` in the field; false when its type cannot hold it at all (an
    /// `Address` is parsed, and parsing already refuses controls and whitespace).
    fn fill(self, bad: char) -> bool {
        let text = format!("x{bad}y");
        match self {
            Slot::Text(t) => *t = text,
            Slot::Room(r) => *r = RoomName::from_stored(text),
            Slot::Account(a) => *a = AccountId::from_stored(text),
            Slot::Session(s) => *s = SessionId::from_stored(text),
            Slot::Invitation(i) => *i = InvitationId::from_stored(text),
            Slot::Address(a) => match Address::parse(&format!("sip:{text}@example.org")) {
                Ok(parsed) => *a = parsed,
                Err(_) => return false,
            },
            // An account id can hold anything; the address form is covered by Address.
            Slot::Principal(p) => *p = Principal::Account(AccountId::from_stored(text)),
        }
        true
    }
}

type Slots<'a> = Vec<(&'static str, TextKind, Slot<'a>)>;

/// The command's index among all commands, and its text-bearing fields: the test's own
/// list, independent of the engine's. It names every field of every command (no `..`),
/// so a new command or field does not compile until it is classified here.
fn slots(cmd: &mut Command) -> (usize, Slots<'_>) {
    use Command as C;
    use TextKind::{Body, Line, Name};
    let mut s: Slots<'_> = Vec::new();
    let index = match cmd {
        C::CreateAccount {
            account,
            display_name,
        } => {
            s.push(("account", Name, Slot::Account(account)));
            if let Some(d) = display_name {
                s.push(("display_name", Name, Slot::Text(d)));
            }
            0
        }
        C::LinkIdentity { account, address } => {
            s.push(("account", Name, Slot::Account(account)));
            s.push(("address", Name, Slot::Address(address)));
            1
        }
        C::UnlinkIdentity { account, address } => {
            s.push(("account", Name, Slot::Account(account)));
            s.push(("address", Name, Slot::Address(address)));
            2
        }
        C::SetDisplayName {
            account,
            display_name,
        } => {
            s.push(("account", Name, Slot::Account(account)));
            if let Some(d) = display_name {
                s.push(("display_name", Name, Slot::Text(d)));
            }
            3
        }
        C::EnableAccount { account } => {
            s.push(("account", Name, Slot::Account(account)));
            4
        }
        C::DisableAccount { account } => {
            s.push(("account", Name, Slot::Account(account)));
            5
        }
        C::AllowContact { account, contact } => {
            s.push(("account", Name, Slot::Account(account)));
            s.push(("contact", Name, Slot::Principal(contact)));
            6
        }
        C::DisallowContact { account, contact } => {
            s.push(("account", Name, Slot::Account(account)));
            s.push(("contact", Name, Slot::Principal(contact)));
            7
        }
        C::OpenContacts { account } => {
            s.push(("account", Name, Slot::Account(account)));
            8
        }
        C::AddModerator { account, moderator } => {
            s.push(("account", Name, Slot::Account(account)));
            s.push(("moderator", Name, Slot::Principal(moderator)));
            9
        }
        C::RemoveModerator { account, moderator } => {
            s.push(("account", Name, Slot::Account(account)));
            s.push(("moderator", Name, Slot::Principal(moderator)));
            10
        }
        C::SetRendezvous { account, room } => {
            s.push(("account", Name, Slot::Account(account)));
            if let Some(r) = room {
                s.push(("room", Name, Slot::Room(r)));
            }
            11
        }
        C::CallAccount {
            account,
            session,
            credentials,
        } => {
            s.push(("account", Name, Slot::Account(account)));
            s.push(("session", Name, Slot::Session(session)));
            credential_slots(credentials, &mut s);
            12
        }
        C::CreateRoom {
            room,
            parent,
            private: _,
            owner,
            max_members: _,
            welcome_text,
            access_password_hash,
            server_password: _,
        } => {
            s.push(("room", Name, Slot::Room(room)));
            if let Some(p) = parent {
                s.push(("parent", Name, Slot::Room(p)));
            }
            if let Some(o) = owner {
                s.push(("owner", Name, Slot::Principal(o)));
            }
            if let Some(t) = welcome_text {
                s.push(("welcome_text", Body, Slot::Text(t)));
            }
            if let Some(h) = access_password_hash {
                s.push(("access_password_hash", Name, Slot::Text(h)));
            }
            13
        }
        C::ConfigureRoom { room, changes } => {
            s.push(("room", Name, Slot::Room(room)));
            for change in changes {
                match change {
                    RoomChange::WelcomeText(Some(t)) => {
                        s.push(("welcome_text", Body, Slot::Text(t)));
                    }
                    RoomChange::AccessPassword(Some(h)) => {
                        s.push(("access_password_hash", Name, Slot::Text(h)));
                    }
                    RoomChange::Name(Some(t)) => s.push(("name", Line, Slot::Text(t))),
                    RoomChange::Description(Some(t)) => {
                        s.push(("description", Body, Slot::Text(t)));
                    }
                    RoomChange::WelcomeText(None)
                    | RoomChange::AccessPassword(None)
                    | RoomChange::Name(None)
                    | RoomChange::Description(None)
                    | RoomChange::MembersChangeSubject(_)
                    | RoomChange::Persistent(_)
                    | RoomChange::PublicAddresses(_)
                    | RoomChange::Private(_)
                    | RoomChange::Locked(_)
                    | RoomChange::MaxMembers(_)
                    | RoomChange::ModeratedChat(_)
                    | RoomChange::Lobby(_)
                    | RoomChange::DefaultRole(_)
                    | RoomChange::OwnerExitDestroys(_)
                    | RoomChange::Invite(_) => {}
                }
            }
            14
        }
        C::LockRoom { room } => room_only(room, &mut s, 15),
        C::UnlockRoom { room } => room_only(room, &mut s, 16),
        C::ReserveRoom {
            room,
            owner_password_hash,
        } => {
            s.push(("room", Name, Slot::Room(room)));
            s.push(("owner_password_hash", Name, Slot::Text(owner_password_hash)));
            17
        }
        C::UnreserveRoom { room } => room_only(room, &mut s, 18),
        C::DestroyRoom { room } => room_only(room, &mut s, 19),
        C::Join {
            room,
            session,
            credentials,
        } => {
            s.push(("room", Name, Slot::Room(room)));
            s.push(("session", Name, Slot::Session(session)));
            credential_slots(credentials, &mut s);
            20
        }
        C::Leave { room, session } => room_session(room, session, &mut s, 21),
        C::RenewSession { room, session } => room_session(room, session, &mut s, 22),
        C::EndGatewaySessions { gateway } => {
            s.push(("gateway", Name, Slot::Text(gateway)));
            23
        }
        C::GrantRole {
            room,
            subject,
            role: _,
        } => room_subject(room, subject, &mut s, 24),
        C::RevokeRole { room, subject } => room_subject(room, subject, &mut s, 25),
        C::Invite {
            room,
            invitee,
            ttl_secs: _,
            single_use: _,
            secret: _,
        } => {
            s.push(("room", Name, Slot::Room(room)));
            s.push(("invitee", Name, Slot::Address(invitee)));
            26
        }
        C::AcceptInvitation { room, invitation } => room_invitation(room, invitation, &mut s, 27),
        C::DenyInvitation { room, invitation } => room_invitation(room, invitation, &mut s, 28),
        C::RevokeInvitation { room, invitation } => room_invitation(room, invitation, &mut s, 29),
        C::MuteAudio { room, subject } => room_subject(room, subject, &mut s, 30),
        C::UnmuteAudio { room, subject } => room_subject(room, subject, &mut s, 31),
        C::PauseVideo { room, subject } => room_subject(room, subject, &mut s, 32),
        C::ResumeVideo { room, subject } => room_subject(room, subject, &mut s, 33),
        C::Kick {
            room,
            subject,
            reason,
        } => {
            let index = room_subject(room, subject, &mut s, 34);
            if let Some(r) = reason {
                s.push(("reason", Line, Slot::Text(r)));
            }
            index
        }
        C::Ban {
            scope,
            subject,
            reason,
            until: _,
        } => {
            scope_slots(scope, &mut s);
            s.push(("subject", Name, Slot::Principal(subject)));
            if let Some(r) = reason {
                s.push(("reason", Line, Slot::Text(r)));
            }
            35
        }
        C::Unban { scope, subject } => {
            scope_slots(scope, &mut s);
            s.push(("subject", Name, Slot::Principal(subject)));
            36
        }
        C::Knock { room, session, .. } => room_session(room, session, &mut s, 37),
        C::Admit { room, subject } => room_subject(room, subject, &mut s, 38),
        C::RejectKnock { room, subject } => room_subject(room, subject, &mut s, 39),
        C::RaiseHand { room } => room_only(room, &mut s, 40),
        C::LowerHand { room, subject } => {
            s.push(("room", Name, Slot::Room(room)));
            if let Some(p) = subject {
                s.push(("subject", Name, Slot::Principal(p)));
            }
            41
        }
        C::SetModeratedChat { room, enabled: _ } => room_only(room, &mut s, 42),
        C::PostMessage { room, body } => {
            s.push(("room", Name, Slot::Room(room)));
            s.push(("body", Body, Slot::Text(body)));
            43
        }
        C::SetServerPassword { hash } => {
            if let Some(h) = hash {
                s.push(("hash", Name, Slot::Text(h)));
            }
            44
        }
        C::SetLogDays { days: _ } => 45,
        C::SetObfuscateIps { enabled: _ } => 46,
        C::SetWelcomeText { text } => {
            s.push(("text", Body, Slot::Text(text)));
            47
        }
        C::LiftAutoban { key } => {
            match key {
                AutobanKey::Identity(a) => s.push(("key", Name, Slot::Address(a))),
                AutobanKey::Remote(r) => s.push(("key", Line, Slot::Text(r))),
            }
            48
        }
        C::RecordContentPurge {
            subject,
            before: _,
            records: _,
            up_to_seq: _,
        } => {
            if let Some(p) = subject {
                s.push(("subject", Name, Slot::Principal(p)));
            }
            49
        }
        C::BanAddress {
            scope,
            target,
            reason,
            until: _,
        } => {
            scope_slots(scope, &mut s);
            match target {
                model::AddressTarget::Of(p) => s.push(("subject", Name, Slot::Principal(p))),
                model::AddressTarget::Ip(ip) => s.push(("ip", Line, Slot::Text(ip))),
            }
            if let Some(r) = reason {
                s.push(("reason", Line, Slot::Text(r)));
            }
            50
        }
        C::UnbanAddress { scope, address } => {
            scope_slots(scope, &mut s);
            s.push(("address", Line, Slot::Text(address)));
            51
        }
        C::SetSipCredential {
            account,
            address,
            realm,
            ha1_md5,
            ha1_sha256,
        } => {
            s.push(("account", Name, Slot::Account(account)));
            s.push(("address", Name, Slot::Address(address)));
            s.push(("realm", Name, Slot::Text(realm)));
            s.push(("ha1_md5", Name, Slot::Text(ha1_md5)));
            s.push(("ha1_sha256", Name, Slot::Text(ha1_sha256)));
            52
        }
        C::ClearSipCredential { account, address } => {
            s.push(("account", Name, Slot::Account(account)));
            s.push(("address", Name, Slot::Address(address)));
            53
        }
        C::RecordGatewayRefusal { room, action, code } => {
            // A room only referred to (journaled only if it exists): a line's rule.
            if let Some(r) = room {
                s.push(("room", Line, Slot::Room(r)));
            }
            s.push(("action", Name, Slot::Text(action)));
            s.push(("code", Name, Slot::Text(code)));
            54
        }
        C::SetSubject { room, subject } => {
            s.push(("room", Name, Slot::Room(room)));
            if let Some(t) = subject {
                s.push(("subject", Body, Slot::Text(t)));
            }
            55
        }
        C::StartRecording { room, video: _ } => room_only(room, &mut s, 56),
        C::StopRecording { room } => room_only(room, &mut s, 57),
        // Internal commands naming a recording (the room may be gone): the room is only
        // referred to; the file's name and hash are ASCII, checked by `decide`.
        C::RecordRecordingFile {
            room,
            recording: _,
            file: _,
        } => {
            s.push(("room", Line, Slot::Room(room)));
            58
        }
        C::EraseRecording {
            room,
            recording: _,
            reason: _,
        } => {
            s.push(("room", Line, Slot::Room(room)));
            59
        }
    };
    (index, s)
}
const COMMANDS: usize = 60;

fn room_only<'a>(room: &'a mut RoomName, s: &mut Slots<'a>, index: usize) -> usize {
    s.push(("room", TextKind::Name, Slot::Room(room)));
    index
}

fn room_session<'a>(
    room: &'a mut RoomName,
    session: &'a mut SessionId,
    s: &mut Slots<'a>,
    index: usize,
) -> usize {
    s.push(("room", TextKind::Name, Slot::Room(room)));
    s.push(("session", TextKind::Name, Slot::Session(session)));
    index
}

fn room_subject<'a>(
    room: &'a mut RoomName,
    subject: &'a mut Principal,
    s: &mut Slots<'a>,
    index: usize,
) -> usize {
    s.push(("room", TextKind::Name, Slot::Room(room)));
    s.push(("subject", TextKind::Name, Slot::Principal(subject)));
    index
}

fn room_invitation<'a>(
    room: &'a mut RoomName,
    invitation: &'a mut InvitationId,
    s: &mut Slots<'a>,
    index: usize,
) -> usize {
    s.push(("room", TextKind::Name, Slot::Room(room)));
    s.push(("invitation", TextKind::Name, Slot::Invitation(invitation)));
    index
}

fn credential_slots<'a>(c: &'a mut Credentials, s: &mut Slots<'a>) {
    // Password attempts go to the verifier and are never journaled.
    let Credentials {
        server_password: _,
        password: _,
        owner_password: _,
        invitation,
        invitation_secret: _,
    } = c;
    if let Some(i) = invitation {
        s.push(("invitation", TextKind::Name, Slot::Invitation(i)));
    }
}

fn scope_slots<'a>(scope: &'a mut BanScope, s: &mut Slots<'a>) {
    match scope {
        BanScope::Room(r) => s.push(("scope", TextKind::Name, Slot::Room(r))),
        BanScope::Account(a) => s.push(("scope", TextKind::Name, Slot::Account(a))),
        BanScope::Server => {}
    }
}

fn inv(id: &str) -> InvitationId {
    InvitationId::parse(id).unwrap()
}

/// One command of every kind, with every optional text field filled.
fn samples() -> Vec<Command> {
    use Command as C;
    let r = || room("standup");
    let creds = || Credentials {
        invitation: Some(inv("inv1")),
        ..Credentials::default()
    };
    vec![
        C::CreateAccount {
            account: aid("alice"),
            display_name: Some("Alice".into()),
        },
        C::LinkIdentity {
            account: aid("alice"),
            address: sip("alice"),
        },
        C::UnlinkIdentity {
            account: aid("alice"),
            address: sip("alice"),
        },
        C::SetDisplayName {
            account: aid("alice"),
            display_name: Some("Alice".into()),
        },
        C::EnableAccount {
            account: aid("alice"),
        },
        C::DisableAccount {
            account: aid("alice"),
        },
        C::AllowContact {
            account: aid("alice"),
            contact: who("bob"),
        },
        C::DisallowContact {
            account: aid("alice"),
            contact: who("bob"),
        },
        C::OpenContacts {
            account: aid("alice"),
        },
        C::AddModerator {
            account: aid("alice"),
            moderator: who("bob"),
        },
        C::RemoveModerator {
            account: aid("alice"),
            moderator: who("bob"),
        },
        C::SetRendezvous {
            account: aid("alice"),
            room: Some(r()),
        },
        C::CallAccount {
            account: aid("alice"),
            session: sid("s1"),
            credentials: creds(),
        },
        C::CreateRoom {
            room: r(),
            parent: Some(room("parent")),
            private: false,
            owner: Some(who("carol")),
            max_members: None,
            welcome_text: Some("hello".into()),
            access_password_hash: Some(hash("pw")),
            server_password: None,
        },
        C::ConfigureRoom {
            room: r(),
            changes: vec![
                RoomChange::WelcomeText(Some("hi".into())),
                RoomChange::AccessPassword(Some(hash("pw"))),
                RoomChange::Name(Some("Stand-up".into())),
                RoomChange::Description(Some("Daily".into())),
            ],
        },
        C::LockRoom { room: r() },
        C::UnlockRoom { room: r() },
        C::ReserveRoom {
            room: r(),
            owner_password_hash: hash("pw"),
        },
        C::UnreserveRoom { room: r() },
        C::DestroyRoom { room: r() },
        C::Join {
            room: r(),
            session: sid("s1"),
            credentials: creds(),
        },
        C::Leave {
            room: r(),
            session: sid("s1"),
        },
        C::RenewSession {
            room: r(),
            session: sid("s1"),
        },
        C::EndGatewaySessions {
            gateway: "sip".into(),
        },
        grant("standup", who("bob"), Role::Member),
        C::RevokeRole {
            room: r(),
            subject: who("bob"),
        },
        C::invite(r(), sip("bob")),
        C::AcceptInvitation {
            room: r(),
            invitation: inv("inv1"),
        },
        C::DenyInvitation {
            room: r(),
            invitation: inv("inv1"),
        },
        C::RevokeInvitation {
            room: r(),
            invitation: inv("inv1"),
        },
        C::MuteAudio {
            room: r(),
            subject: who("bob"),
        },
        C::UnmuteAudio {
            room: r(),
            subject: who("bob"),
        },
        C::PauseVideo {
            room: r(),
            subject: who("bob"),
        },
        C::ResumeVideo {
            room: r(),
            subject: who("bob"),
        },
        C::Kick {
            room: r(),
            subject: who("bob"),
            reason: Some("noise".into()),
        },
        ban_room("standup", who("bob")),
        C::Unban {
            scope: BanScope::Account(aid("alice")),
            subject: who("bob"),
        },
        C::Knock {
            room: r(),
            session: sid("s1"),
            server_password: None,
        },
        C::Admit {
            room: r(),
            subject: who("bob"),
        },
        C::RejectKnock {
            room: r(),
            subject: who("bob"),
        },
        C::RaiseHand { room: r() },
        C::LowerHand {
            room: r(),
            subject: Some(who("bob")),
        },
        C::SetModeratedChat {
            room: r(),
            enabled: true,
        },
        post("standup", "hello"),
        C::SetServerPassword {
            hash: Some(hash("pw")),
        },
        C::SetLogDays { days: 7 },
        C::SetObfuscateIps { enabled: true },
        C::SetWelcomeText {
            text: "welcome".into(),
        },
        C::LiftAutoban {
            key: AutobanKey::Remote("h:0011".into()),
        },
        C::RecordContentPurge {
            subject: Some(who("bob")),
            before: None,
            records: 1,
            up_to_seq: 1,
        },
        C::SetSipCredential {
            account: aid("alice"),
            address: sip("alice"),
            realm: "example.org".into(),
            ha1_md5: "0".repeat(32),
            ha1_sha256: "0".repeat(64),
        },
        C::ClearSipCredential {
            account: aid("alice"),
            address: sip("alice"),
        },
        C::RecordGatewayRefusal {
            room: Some(r()),
            action: "sip_invite".into(),
            code: "sdp.no_common_codec".into(),
        },
        C::SetSubject {
            room: r(),
            subject: Some("Agenda".into()),
        },
        C::StartRecording {
            room: r(),
            video: true,
        },
        C::StopRecording { room: r() },
        C::RecordRecordingFile {
            room: r(),
            recording: RecordingId::parse("rec1").unwrap(),
            file: RecordingFile {
                name: "rec1/audio.ogg".into(),
                kind: RecordingKind::Audio,
                track: None,
                bytes: 1,
                duration_ms: 1,
                blake3: "0".repeat(64),
            },
        },
        C::EraseRecording {
            room: r(),
            recording: RecordingId::parse("rec1").unwrap(),
            reason: RecordingErasure::Erasure,
        },
        // The other shapes of the enums inside commands.
        C::LiftAutoban {
            key: AutobanKey::Identity(sip("bob")),
        },
        C::Ban {
            scope: BanScope::Account(aid("alice")),
            subject: who("bob"),
            reason: None,
            until: None,
        },
        C::BanAddress {
            scope: BanScope::Room(r()),
            target: model::AddressTarget::Of(who("bob")),
            reason: Some("spam".into()),
            until: None,
        },
        C::BanAddress {
            scope: BanScope::Server,
            target: model::AddressTarget::Ip("192.0.2.1".into()),
            reason: None,
            until: None,
        },
        C::UnbanAddress {
            scope: BanScope::Server,
            address: "h:0011".into(),
        },
    ]
}

/// Refused in every kind of text: C0 controls (NUL, BEL, ESC, CR), DEL, C1 controls
/// (NEL, CSI), bidirectional embeddings, overrides and isolates, line separators.
const EVERYWHERE: [char; 15] = [
    '\0', '\u{7}', '\u{1b}', '\r', '\u{7f}', '\u{85}', '\u{9b}', '\u{202a}', '\u{202b}',
    '\u{202d}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{2028}', '\u{2029}',
];
/// Refused in one-line text and names, allowed in bodies.
const LINE_BREAKS: [char; 2] = ['\n', '\t'];
/// Refused in names only: bidirectional marks and invisible characters (zero-width
/// space, Hangul filler, soft hyphen, word joiner, BOM, a tag character).
const NAMES_ONLY: [char; 9] = [
    '\u{200e}',
    '\u{200f}',
    '\u{61c}',
    '\u{200b}',
    '\u{3164}',
    '\u{ad}',
    '\u{2060}',
    '\u{feff}',
    '\u{e0041}',
];

fn refused_in(kind: TextKind) -> Vec<char> {
    let mut out = EVERYWHERE.to_vec();
    if kind != TextKind::Body {
        out.extend(LINE_BREAKS);
    }
    if kind == TextKind::Name {
        out.extend(NAMES_ONLY);
    }
    out
}

fn allowed_in(kind: TextKind) -> Vec<char> {
    let mut out = Vec::new();
    if kind == TextKind::Body {
        out.extend(LINE_BREAKS);
    }
    if kind != TextKind::Name {
        out.extend(NAMES_ONLY);
    }
    out
}

#[test]
fn the_samples_cover_every_command() {
    let mut seen = BTreeSet::new();
    for mut cmd in samples() {
        seen.insert(slots(&mut cmd).0);
    }
    assert_eq!(seen, (0..COMMANDS).collect::<BTreeSet<_>>());
}

#[test]
fn every_text_field_refuses_every_forbidden_character() {
    // given a server with nothing in it (the text is checked before anything else)
    let mut w = World::new();
    let mut checked = 0;
    for sample in samples() {
        let fields = {
            let mut probe = sample.clone();
            let (_, s) = slots(&mut probe);
            s.iter().map(|(f, k, _)| (*f, *k)).collect::<Vec<_>>()
        };
        for (i, (field, kind)) in fields.iter().enumerate() {
            for bad in refused_in(*kind) {
                let mut cmd = sample.clone();
                let filled = {
                    let (_, mut s) = slots(&mut cmd);
                    let (_, _, slot) = s.swap_remove(i);
                    slot.fill(bad)
                };
                if !filled {
                    continue;
                }
                // when an operator sends it
                let err = w
                    .decide(&admin(), &cmd)
                    .expect_err(&format!("{} accepted {bad:?} in {field}", cmd.name()));
                // then it is refused naming the field, and nothing is journaled
                assert_eq!(
                    err.rejection,
                    Rejection::ForbiddenChar {
                        field,
                        ch: bad,
                        class: err_class(&err.rejection),
                    },
                    "{} with {bad:?} in {field}",
                    cmd.name()
                );
                assert_eq!(err.rejection.code(), "input.forbidden_char");
                assert!(err.record.is_empty(), "{}", cmd.name());
                checked += 1;
            }
            for fine in allowed_in(*kind) {
                let mut cmd = sample.clone();
                let (_, mut s) = slots(&mut cmd);
                let (_, _, slot) = s.swap_remove(i);
                assert!(slot.fill(fine));
                if let Err(e) = w.decide(&admin(), &cmd) {
                    assert_ne!(
                        e.rejection.code(),
                        "input.forbidden_char",
                        "{} refused {fine:?} in {field}",
                        cmd.name()
                    );
                }
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}

/// The class of a refused character, to compare the rest of the rejection.
fn err_class(r: &Rejection) -> CharClass {
    match r {
        Rejection::ForbiddenChar { class, .. } => *class,
        _ => CharClass::Control,
    }
}

#[test]
fn the_acting_identity_follows_the_rule_but_may_always_leave() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("standup"));
    let spoof = Actor::Identity(Address::parse("sip:evil\u{202e}gpj@example.org").unwrap());
    let err = w
        .when(&spoof, join("standup", "s1"))
        .err("input.forbidden_char", &[]);
    assert!(matches!(
        err.rejection,
        Rejection::ForbiddenChar { field: "actor", .. }
    ));
    w.when(&spoof, post("standup", "hi"))
        .err("input.forbidden_char", &[]);
    // A subject named by address follows it too.
    let r = w
        .when(
            &user("alice"),
            Command::Ban {
                scope: BanScope::Server,
                subject: Principal::Address(Address::parse("sip:x\u{2066}y@example.org").unwrap()),
                reason: None,
                until: None,
            },
        )
        .err("input.forbidden_char", &[]);
    assert!(matches!(
        r.rejection,
        Rejection::ForbiddenChar {
            field: "subject",
            ..
        }
    ));
    // Leaving is never refused for the name (here: not present, so not found).
    w.when(&spoof, leave("standup", "s1"))
        .err("membership.session_not_found", &[]);
}

// ---- the free-text fields, as stories ----

fn meeting() -> World {
    let mut w = World::new();
    w.run(&user("alice"), create_room("standup"));
    w.run(&user("alice"), join("standup", "a1"));
    w.run(&user("bob"), join("standup", "b1"));
    w
}

#[test]
fn chat_bodies_keep_lines_and_tabs_but_no_terminal_escapes() {
    // given Alice and Bob in a room
    let mut w = meeting();
    let before = w.journal.len();
    // when Bob posts an ANSI escape sequence, a NUL, a bidi override or a line separator
    for body in [
        "clear\u{1b}[2J",
        "nul\0byte",
        "invoice_\u{202e}fdp.exe",
        "a\u{2028}b",
        "bell\u{7}",
        "csi\u{9b}31m",
        "crlf\r\n",
    ] {
        // then each is refused with a typed code naming the body, and nothing is journaled
        let r = w
            .when(&user("bob"), post("standup", body))
            .err("input.forbidden_char", &[]);
        assert!(matches!(
            r.rejection,
            Rejection::ForbiddenChar { field: "body", .. }
        ));
    }
    assert_eq!(w.journal.len(), before);
    // when the text has line feeds, tabs and right-to-left marks
    w.when(&user("bob"), post("standup", "two\nlines\tand a tab"))
        .ok(&["chat_message"]);
    w.when(
        &user("bob"),
        post("standup", "\u{5e9}\u{5dc}\u{5d5}\u{5dd}\u{200f}!"),
    )
    .ok(&["chat_message"]);
}

#[test]
fn welcome_texts_refuse_controls_in_every_way_they_are_set() {
    let mut w = meeting();
    // given a room's creation, configuration, and the server's welcome text
    let with_welcome = |name: &str, text: &str| Command::CreateRoom {
        room: room(name),
        parent: None,
        private: false,
        owner: None,
        max_members: None,
        welcome_text: Some(text.into()),
        access_password_hash: None,
        server_password: None,
    };
    w.when(&user("alice"), with_welcome("other", "hi\0"))
        .err("input.forbidden_char", &[]);
    w.when(
        &user("alice"),
        Command::ConfigureRoom {
            room: room("standup"),
            changes: vec![RoomChange::WelcomeText(Some("\u{2067}rules".into()))],
        },
    )
    .err("input.forbidden_char", &[]);
    w.when(
        &admin(),
        Command::SetWelcomeText {
            text: "\u{9b}31mred".into(),
        },
    )
    .err("input.forbidden_char", &[]);
    // then multi-line welcome texts are fine
    w.when(
        &user("alice"),
        with_welcome("other", "Hi!\nRules:\tbe kind"),
    )
    .ok(&["room_create"]);
    w.when(
        &admin(),
        Command::SetWelcomeText {
            text: "Welcome\n\tto the server".into(),
        },
    )
    .ok(&["server_modify"]);
}

#[test]
fn reasons_are_one_line() {
    let mut w = meeting();
    let kick = |reason: &str| Command::Kick {
        room: room("standup"),
        subject: who("bob"),
        reason: Some(reason.into()),
    };
    // A reason travels in SIP headers and one-line notices: no line breaks.
    for reason in ["spam\nVia: injected", "x\u{202e}y", "tab\tbed", "esc\u{1b}"] {
        let r = w
            .when(&user("alice"), kick(reason))
            .err("input.forbidden_char", &[]);
        assert!(matches!(
            r.rejection,
            Rejection::ForbiddenChar {
                field: "reason",
                ..
            }
        ));
    }
    let ban = |reason: &str| Command::Ban {
        scope: BanScope::Room(room("standup")),
        subject: who("bob"),
        reason: Some(reason.into()),
        until: None,
    };
    w.when(&user("alice"), ban("a\u{85}b"))
        .err("input.forbidden_char", &[]);
    // Right-to-left text with its marks is fine.
    w.when(&user("alice"), kick("\u{5e1}\u{5e4}\u{5d0}\u{5dd}\u{200f}"))
        .ok(&["peer_kick"]);
}

#[test]
fn display_names_may_hold_spaces_but_nothing_invisible() {
    let mut w = World::new();
    let create = |name: &str| Command::CreateAccount {
        account: aid("ana"),
        display_name: Some(name.into()),
    };
    for bad in [
        "Ana\u{200b}",
        "\u{202e}anA",
        "Ana\u{2028}",
        "Ana\u{3164}",
        "Ana\n",
    ] {
        let r = w
            .when(&admin(), create(bad))
            .err("input.forbidden_char", &[]);
        assert!(matches!(
            r.rejection,
            Rejection::ForbiddenChar {
                field: "display_name",
                ..
            }
        ));
    }
    w.when(&admin(), create("Ana María López"))
        .ok(&["account_create"]);
    w.when(
        &admin(),
        Command::SetDisplayName {
            account: aid("ana"),
            display_name: Some("山田 太郎".into()),
        },
    )
    .ok(&["display_name_change"]);
}

// ---- room names ----

#[test]
fn room_names_with_hostile_characters_are_refused_as_such() {
    // given room names as a JSON command carries them (not parsed by a gateway)
    let mut w = World::new();
    for name in [
        "lobby\u{202e}",
        "lob\u{200b}by",
        "\u{1b}lobby",
        "lobby\u{200f}",
    ] {
        let cmd = match create_room("x") {
            Command::CreateRoom {
                parent,
                private,
                owner,
                max_members,
                welcome_text,
                access_password_hash,
                ..
            } => Command::CreateRoom {
                room: RoomName::from_stored(name.into()),
                parent,
                private,
                owner,
                max_members,
                welcome_text,
                access_password_hash,
                server_password: None,
            },
            other => other,
        };
        // then each is refused for the character, not as a name the rule does not match
        let r = w.when(&user("alice"), cmd).err("input.forbidden_char", &[]);
        assert!(matches!(
            r.rejection,
            Rejection::ForbiddenChar { field: "room", .. }
        ));
        // and a gateway cannot even parse it as a name
        assert!(RoomName::parse(name, &NameRule::mumble_channel()).is_err());
    }
    assert!(w.journal.is_empty());
}

#[test]
fn names_that_differ_by_case_or_width_are_the_same_room() {
    // given a room "paypal"
    let mut w = World::new();
    w.run(&user("alice"), create_room("paypal"));
    // when someone creates it again in other case or full-width letters
    for same in ["PayPal", "PAYPAL", "ｐａｙｐａｌ"] {
        // then it already exists, under its first name
        let r = w
            .when(&user("mallory"), create_room(same))
            .err("room.exists", &[]);
        assert_eq!(r.rejection, Rejection::RoomExists(room("paypal")), "{same}");
    }
    w.run(&user("alice"), create_room("Straße"));
    w.when(&user("mallory"), create_room("STRASSE"))
        .err("room.exists", &[]);
}

#[test]
fn look_alike_room_names_are_refused() {
    // given a room "paypal"
    let mut w = World::new();
    w.run(&user("alice"), create_room("paypal"));
    // when Mallory creates "pаypal" with a Cyrillic а, or with a capital I for the l
    for like in [
        "p\u{430}ypal",
        "paypaI",
        "p\u{430}yp\u{430}l",
        "PAYPA\u{406}",
    ] {
        // then the name is refused as confusable with the existing room
        let r = w
            .when(&user("mallory"), create_room(like))
            .err("name.confusable", &[]);
        assert_eq!(
            r.rejection,
            Rejection::ConfusableName {
                field: "room",
                existing: Some("paypal".into()),
            },
            "{like}"
        );
    }
    // and once the room is gone, the name is free again, in any form
    w.run(
        &user("alice"),
        Command::DestroyRoom {
            room: room("paypal"),
        },
    );
    w.when(&user("bob"), create_room("PayPal"))
        .ok(&["room_create"]);
    w.assert_replays(Policy::default());
    assert_eq!(
        w.state
            .rooms_like(&room("paypal"))
            .into_iter()
            .collect::<Vec<_>>(),
        vec![&room("PayPal")]
    );
}

#[test]
fn a_word_mixing_look_alike_scripts_is_refused_even_alone() {
    let mut w = World::new();
    let r = w
        .when(&user("mallory"), create_room("p\u{430}ypal"))
        .err("name.confusable", &[]);
    assert_eq!(
        r.rejection,
        Rejection::ConfusableName {
            field: "room",
            existing: None
        }
    );
    // Two words in two scripts are two words.
    w.when(&user("alice"), create_room("Офис London"))
        .ok(&["room_create"]);
}

#[test]
fn benign_names_in_other_scripts_are_accepted() {
    let mut w = World::new();
    for name in [
        "комната",
        "会議室",
        "東京オフィス",
        "ミーティング",
        "बैठक",
        "Αίθουσα",
        "café",
    ] {
        w.when(&user("alice"), create_room(name))
            .ok(&["room_create"]);
    }
}

#[test]
fn a_rendezvous_room_is_a_new_name_like_any_other() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("paypal"));
    w.run(
        &admin(),
        Command::CreateAccount {
            account: aid("mallory"),
            display_name: None,
        },
    );
    w.when(
        &admin(),
        Command::SetRendezvous {
            account: aid("mallory"),
            room: Some(room("p\u{430}ypal")),
        },
    )
    .err("name.confusable", &[]);
}

#[test]
fn common_names_are_compared_as_names() {
    // given the common name "lobby", a room named it in full-width capitals
    let mut w = World::new();
    w.run(&user("alice"), create_room("ＬＯＢＢＹ"));
    // then it cannot be reserved either
    w.when(
        &user("alice"),
        Command::ReserveRoom {
            room: room("ＬＯＢＢＹ"),
            owner_password_hash: hash("pw"),
        },
    )
    .err("room.common_name", &[]);
}

#[test]
fn a_room_named_before_the_rule_can_still_be_used() {
    // given a room whose name the rule now refuses, created before it
    let legacy = RoomName::from_stored("old\u{200b}room".into());
    let mut w = given(vec![Event {
        at: t0(),
        actor: user("alice"),
        kind: EventKind::RoomCreated {
            room: legacy.clone(),
            parent: None,
            owner: who("alice"),
            config: RoomConfig::default(),
        },
    }]);
    // then people can still join and destroy it
    w.when(
        &user("bob"),
        Command::Join {
            room: legacy.clone(),
            session: sid("b1"),
            credentials: Credentials::default(),
        },
    )
    .ok(&["room_join"]);
    w.when(&user("alice"), Command::DestroyRoom { room: legacy })
        .ok(&["room_delete"]);
}

// ---- guest names ----

fn web(name: &str) -> Actor {
    Actor::Identity(Address::parse(&format!("web:{name}")).unwrap())
}

#[test]
fn guest_names_in_any_case_are_one_identity() {
    // given web:alice in a room
    let mut w = World::new();
    w.run(&user("owner"), create_room("standup"));
    w.run(&web("alice"), join("standup", "a1"));
    // when web:ALICE and the full-width ｗｅｂ:Ａｌｉｃｅ join
    w.run(&web("ALICE"), join("standup", "a2"));
    w.run(&web("Ａｌｉｃｅ"), join("standup", "a3"));
    // then they are the same person, with three sessions
    let alice = Principal::Address(Address::parse("web:alice").unwrap());
    assert_eq!(w.members("standup"), vec![alice.clone()]);
    assert_eq!(
        w.state.rooms[&room("standup")].members[&alice]
            .sessions
            .len(),
        3
    );
}

#[test]
fn a_guest_name_mixing_look_alike_scripts_is_refused() {
    let mut w = World::new();
    w.run(&user("owner"), create_room("standup"));
    w.run(&web("alice"), join("standup", "a1"));
    // when web:аlice with a Cyrillic а tries to join or create a room
    let r = w
        .when(&web("\u{430}lice"), join("standup", "m1"))
        .err("name.confusable", &[]);
    assert_eq!(
        r.rejection,
        Rejection::ConfusableName {
            field: "actor",
            existing: None
        }
    );
    w.when(&web("\u{430}lice"), create_room("mine"))
        .err("name.confusable", &[]);
    // then all-Cyrillic and Japanese guest names are fine
    w.when(&web("алиса"), join("standup", "c1"))
        .ok(&["room_join"]);
    w.when(&web("ｱﾘｽ"), join("standup", "j1"))
        .ok(&["room_join"]);
    assert!(w
        .members("standup")
        .contains(&Principal::Address(Address::parse("web:アリス").unwrap())));
}

#[test]
fn guest_names_are_user_names() {
    // The server's user name rule (Mumble's username regex by default) applies to the
    // names guests pick, not to display names.
    let policy = Policy {
        user_name_rule: NameRule {
            max_len: 5,
            ..NameRule::mumble_user()
        },
        ..Policy::default()
    };
    let mut w = World::with_policy(policy);
    w.run(&user("owner"), create_room("standup"));
    w.when(&web("alexander"), join("standup", "x1"))
        .err("input.invalid", &[]);
    w.when(&web("alex"), join("standup", "x2"))
        .ok(&["room_join"]);
}
