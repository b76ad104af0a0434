//! The command boundary for text: every piece of text a command carries, and the name of
//! the identity that sends it, checked against the one rule ([`crate::text::check`])
//! before anything else is decided, so nothing it refuses reaches the journal.
//!
//! [`fields`] lists the text-bearing fields of every command by an exhaustive match that
//! names every field: a new command or field does not compile until it is classified.

use super::Cx;
use crate::command::{Command, Credentials, Secret, SECRET_LEN};
use crate::context::Actor;
use crate::event::AutobanKey;
use crate::ids::{AccountId, Address, InvitationId, Principal, RoomName, Scheme, SessionId};
use crate::model::{AddressTarget, BanScope, RoomChange};
use crate::rejection::Rejection;
use crate::text::{self, TextKind};

/// One text-bearing field of a command, by what it holds.
enum Field<'a> {
    /// Free text or a display name, of the given kind.
    Text(&'a str, TextKind),
    /// A room name: checked when it would name a new room (one that exists passed the
    /// rules of its day and is already in the journal).
    Room(&'a RoomName),
    /// An identity: its user part (parsing already refused controls and checked the
    /// domain).
    Address(&'a Address),
    /// An account or an identity.
    Principal(&'a Principal),
    /// An account id: the text rule, then the id rule unless the account exists.
    Account(&'a AccountId),
    /// A session id.
    Session(&'a SessionId),
    /// An invitation id.
    Invitation(&'a InvitationId),
    /// A stored password hash (its format is checked where it is used).
    Hash(&'a str),
    /// A room only referred to and journaled only if it exists
    /// ([`Command::RecordGatewayRefusal`]): [`RoomName::lookup`]'s rule (1..=256
    /// characters, nothing a line of text may not hold).
    RoomRef(&'a RoomName),
    /// A gateway's stable code or action name: `[a-z0-9._]{1,64}`.
    Code(&'a str),
    /// A bearer secret (an email invitation's): printable ASCII of [`SECRET_LEN`]
    /// characters. Never journaled (only its digest is).
    Secret(&'a Secret),
}

/// The longest gateway code or action name.
const MAX_CODE_LEN: usize = 64;

/// Checks the actor's name and every text-bearing field of `cmd`.
pub(super) fn check(cx: &Cx<'_>, cmd: &Command) -> Result<(), Rejection> {
    check_actor(cx, cmd)?;
    if let Some(remote) = &cx.ctx.origin.remote_addr {
        forbid("remote_addr", remote, TextKind::Name)?;
    }
    for (name, field) in fields(cmd) {
        check_field(cx, name, field)?;
    }
    Ok(())
}

fn forbid(field: &'static str, value: &str, kind: TextKind) -> Result<(), Rejection> {
    text::check(value, kind).map_err(|f| Rejection::ForbiddenChar {
        field,
        ch: f.ch,
        class: f.class,
    })
}

fn invalid(field: &'static str, reason: impl ToString) -> Rejection {
    Rejection::InvalidInput {
        field,
        reason: reason.to_string(),
    }
}

/// The identity a command comes from: its user part follows the text rule, and a guest
/// name (`web:`) is a user name: canonical (see [`Address::is_canonical`]), within the
/// server's user name rule (Mumble's `username` regex by default), and not mixing
/// look-alike scripts in one word. Leaving is never refused: whoever is in may go.
fn check_actor(cx: &Cx<'_>, cmd: &Command) -> Result<(), Rejection> {
    let Actor::Identity(a) = &cx.ctx.actor else {
        return Ok(());
    };
    if matches!(cmd, Command::Leave { .. }) {
        return Ok(());
    }
    forbid("actor", a.local(), TextKind::Name)?;
    if a.scheme() != Scheme::Web {
        return Ok(());
    }
    if !a.is_canonical() {
        return Err(invalid(
            "actor",
            "this guest name changes under Unicode normalization into a name that is not valid",
        ));
    }
    cx.state
        .policy
        .user_name_rule
        .check("guest name", a.local())
        .map_err(|e| invalid("actor", e))?;
    if text::mixed_script_word(a.local()).is_some() {
        return Err(Rejection::ConfusableName {
            field: "actor",
            existing: None,
        });
    }
    Ok(())
}

fn check_field(cx: &Cx<'_>, name: &'static str, field: Field<'_>) -> Result<(), Rejection> {
    match field {
        Field::Text(t, kind) => forbid(name, t, kind),
        Field::Secret(s) => {
            let v = s.expose();
            if SECRET_LEN.contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()) {
                Ok(())
            } else {
                Err(invalid(
                    name,
                    format!(
                        "expected {} to {} printable ASCII characters",
                        SECRET_LEN.start(),
                        SECRET_LEN.end()
                    ),
                ))
            }
        }
        Field::Room(r) if cx.state.rooms.contains_key(r) => Ok(()),
        Field::Room(r) => forbid(name, r.as_str(), TextKind::Name),
        Field::Address(a) | Field::Principal(Principal::Address(a)) => {
            forbid(name, a.local(), TextKind::Name)
        }
        Field::Account(id) | Field::Principal(Principal::Account(id)) => {
            forbid(name, id.as_str(), TextKind::Name)?;
            if cx.state.accounts.contains_key(id) {
                return Ok(());
            }
            AccountId::parse(id.as_str())
                .map(drop)
                .map_err(|e| invalid(name, e))
        }
        Field::Session(id) => {
            forbid(name, id.as_str(), TextKind::Name)?;
            SessionId::parse(id.as_str())
                .map(drop)
                .map_err(|e| invalid(name, e))
        }
        Field::Invitation(id) => {
            forbid(name, id.as_str(), TextKind::Name)?;
            InvitationId::parse(id.as_str())
                .map(drop)
                .map_err(|e| invalid(name, e))
        }
        Field::Hash(h) => forbid(name, h, TextKind::Name),
        Field::RoomRef(r) if cx.state.rooms.contains_key(r) => Ok(()),
        Field::RoomRef(r) => {
            forbid(name, r.as_str(), TextKind::Line)?;
            RoomName::lookup(r.as_str())
                .map(drop)
                .map_err(|e| invalid(name, e))
        }
        Field::Code(c) => {
            forbid(name, c, TextKind::Name)?;
            let ok = (1..=MAX_CODE_LEN).contains(&c.len())
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._".contains(&b));
            if ok {
                Ok(())
            } else {
                Err(invalid(
                    name,
                    format!("expected 1 to {MAX_CODE_LEN} of a-z, 0-9, '.' and '_'"),
                ))
            }
        }
    }
}

fn credentials<'a>(c: &'a Credentials, out: &mut Vec<(&'static str, Field<'a>)>) {
    // Password attempts are checked by the verifier and never journaled.
    let Credentials {
        server_password: _,
        password: _,
        owner_password: _,
        invitation,
        invitation_secret,
    } = c;
    if let Some(i) = invitation {
        out.push(("invitation", Field::Invitation(i)));
    }
    if let Some(s) = invitation_secret {
        out.push(("invitation_secret", Field::Secret(s)));
    }
}

/// Every text-bearing field of `cmd`, named as in the command's JSON form.
fn fields(cmd: &Command) -> Vec<(&'static str, Field<'_>)> {
    use Command as C;
    use Field as F;
    let mut out: Vec<(&'static str, Field<'_>)> = Vec::new();
    match cmd {
        C::CreateAccount {
            account,
            display_name,
        }
        | C::SetDisplayName {
            account,
            display_name,
        } => {
            out.push(("account", F::Account(account)));
            if let Some(n) = display_name {
                out.push(("display_name", F::Text(n, TextKind::Name)));
            }
        }
        C::SetSipCredential {
            account,
            address,
            realm,
            ha1_md5,
            ha1_sha256,
        } => {
            out.push(("account", F::Account(account)));
            out.push(("address", F::Address(address)));
            out.push(("realm", F::Text(realm, TextKind::Name)));
            out.push(("ha1_md5", F::Hash(ha1_md5)));
            out.push(("ha1_sha256", F::Hash(ha1_sha256)));
        }
        C::LinkIdentity { account, address }
        | C::UnlinkIdentity { account, address }
        | C::ClearSipCredential { account, address } => {
            out.push(("account", F::Account(account)));
            out.push(("address", F::Address(address)));
        }
        C::EnableAccount { account }
        | C::DisableAccount { account }
        | C::OpenContacts { account } => out.push(("account", F::Account(account))),
        C::AllowContact { account, contact } | C::DisallowContact { account, contact } => {
            out.push(("account", F::Account(account)));
            out.push(("contact", F::Principal(contact)));
        }
        C::AddModerator { account, moderator } | C::RemoveModerator { account, moderator } => {
            out.push(("account", F::Account(account)));
            out.push(("moderator", F::Principal(moderator)));
        }
        C::SetRendezvous { account, room } => {
            out.push(("account", F::Account(account)));
            if let Some(r) = room {
                out.push(("room", F::Room(r)));
            }
        }
        C::CallAccount {
            account,
            session,
            credentials: c,
        } => {
            out.push(("account", F::Account(account)));
            out.push(("session", F::Session(session)));
            credentials(c, &mut out);
        }
        C::CreateRoom {
            room,
            parent,
            private: _,
            owner,
            max_members: _,
            welcome_text,
            access_password_hash,
            // A password attempt: checked by the verifier, never journaled.
            server_password: _,
        } => {
            out.push(("room", F::Room(room)));
            if let Some(p) = parent {
                out.push(("parent", F::Room(p)));
            }
            if let Some(o) = owner {
                out.push(("owner", F::Principal(o)));
            }
            if let Some(t) = welcome_text {
                out.push(("welcome_text", F::Text(t, TextKind::Body)));
            }
            if let Some(h) = access_password_hash {
                out.push(("access_password_hash", F::Hash(h)));
            }
        }
        C::ConfigureRoom { room, changes } => {
            out.push(("room", F::Room(room)));
            for change in changes {
                match change {
                    RoomChange::WelcomeText(Some(t)) => {
                        out.push(("welcome_text", F::Text(t, TextKind::Body)));
                    }
                    RoomChange::AccessPassword(Some(h)) => {
                        out.push(("access_password_hash", F::Hash(h)));
                    }
                    RoomChange::Name(Some(t)) => out.push(("name", F::Text(t, TextKind::Line))),
                    RoomChange::Description(Some(t)) => {
                        out.push(("description", F::Text(t, TextKind::Body)));
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
        }
        C::LockRoom { room }
        | C::UnlockRoom { room }
        | C::UnreserveRoom { room }
        | C::DestroyRoom { room }
        | C::RaiseHand { room }
        | C::SetModeratedChat { room, enabled: _ } => out.push(("room", F::Room(room))),
        C::SetSubject { room, subject } => {
            out.push(("room", F::Room(room)));
            if let Some(t) = subject {
                out.push(("subject", F::Text(t, TextKind::Body)));
            }
        }
        C::ReserveRoom {
            room,
            owner_password_hash,
        } => {
            out.push(("room", F::Room(room)));
            out.push(("owner_password_hash", F::Hash(owner_password_hash)));
        }
        C::Join {
            room,
            session,
            credentials: c,
        } => {
            out.push(("room", F::Room(room)));
            out.push(("session", F::Session(session)));
            credentials(c, &mut out);
        }
        C::Leave { room, session } | C::RenewSession { room, session } => {
            out.push(("room", F::Room(room)));
            out.push(("session", F::Session(session)));
        }
        // A password is compared with a hash, never stored or shown: no text rule.
        C::Knock {
            room,
            session,
            server_password: _,
        } => {
            out.push(("room", F::Room(room)));
            out.push(("session", F::Session(session)));
        }
        C::EndGatewaySessions { gateway } => {
            out.push(("gateway", F::Text(gateway, TextKind::Name)));
        }
        C::GrantRole {
            room,
            subject,
            role: _,
        }
        | C::RevokeRole { room, subject }
        | C::MuteAudio { room, subject }
        | C::UnmuteAudio { room, subject }
        | C::PauseVideo { room, subject }
        | C::ResumeVideo { room, subject }
        | C::Admit { room, subject }
        | C::RejectKnock { room, subject } => {
            out.push(("room", F::Room(room)));
            out.push(("subject", F::Principal(subject)));
        }
        C::Invite {
            room,
            invitee,
            ttl_secs: _,
            single_use: _,
            secret,
        } => {
            out.push(("room", F::Room(room)));
            out.push(("invitee", F::Address(invitee)));
            if let Some(s) = secret {
                out.push(("secret", F::Secret(s)));
            }
        }
        C::AcceptInvitation { room, invitation }
        | C::DenyInvitation { room, invitation }
        | C::RevokeInvitation { room, invitation } => {
            out.push(("room", F::Room(room)));
            out.push(("invitation", F::Invitation(invitation)));
        }
        C::Kick {
            room,
            subject,
            reason,
        } => {
            out.push(("room", F::Room(room)));
            out.push(("subject", F::Principal(subject)));
            if let Some(r) = reason {
                out.push(("reason", F::Text(r, TextKind::Line)));
            }
        }
        C::Ban {
            scope,
            subject,
            reason,
            until: _,
        } => {
            ban_scope(scope, &mut out);
            out.push(("subject", F::Principal(subject)));
            if let Some(r) = reason {
                out.push(("reason", F::Text(r, TextKind::Line)));
            }
        }
        C::Unban { scope, subject } => {
            ban_scope(scope, &mut out);
            out.push(("subject", F::Principal(subject)));
        }
        C::BanAddress {
            scope,
            target,
            reason,
            until: _,
        } => {
            ban_scope(scope, &mut out);
            match target {
                AddressTarget::Of(p) => out.push(("subject", F::Principal(p))),
                AddressTarget::Ip(ip) => out.push(("ip", F::Text(ip, TextKind::Line))),
            }
            if let Some(r) = reason {
                out.push(("reason", F::Text(r, TextKind::Line)));
            }
        }
        C::UnbanAddress { scope, address } => {
            ban_scope(scope, &mut out);
            out.push(("address", F::Text(address, TextKind::Line)));
        }
        C::LowerHand { room, subject } => {
            out.push(("room", F::Room(room)));
            if let Some(s) = subject {
                out.push(("subject", F::Principal(s)));
            }
        }
        C::PostMessage { room, body } => {
            out.push(("room", F::Room(room)));
            out.push(("body", F::Text(body, TextKind::Body)));
        }
        C::SetServerPassword { hash } => {
            if let Some(h) = hash {
                out.push(("hash", F::Hash(h)));
            }
        }
        C::SetLogDays { days: _ } | C::SetObfuscateIps { enabled: _ } => {}
        C::SetWelcomeText { text } => out.push(("text", F::Text(text, TextKind::Body))),
        C::LiftAutoban { key } => match key {
            AutobanKey::Identity(a) => out.push(("key", F::Address(a))),
            // As listed: a keyed hash, or an address as a gateway saw it.
            AutobanKey::Remote(r) => out.push(("key", F::Text(r, TextKind::Line))),
        },
        C::RecordContentPurge {
            subject,
            before: _,
            records: _,
            up_to_seq: _,
        } => {
            if let Some(s) = subject {
                out.push(("subject", F::Principal(s)));
            }
        }
        C::StartRecording { room, video: _ } | C::StopRecording { room } => {
            out.push(("room", F::Room(room)));
        }
        // The room may be gone (files close after a destroy); the file's name, hash and
        // track are ASCII checked by `RecordingFile::check` in `decide`.
        C::RecordRecordingFile {
            room,
            recording: _,
            file: _,
        }
        | C::EraseRecording {
            room,
            recording: _,
            reason: _,
        } => out.push(("room", F::RoomRef(room))),
        C::RecordGatewayRefusal { room, action, code } => {
            if let Some(r) = room {
                out.push(("room", F::RoomRef(r)));
            }
            out.push(("action", F::Code(action)));
            out.push(("code", F::Code(code)));
        }
    }
    out
}

fn ban_scope<'a>(scope: &'a BanScope, out: &mut Vec<(&'static str, Field<'a>)>) {
    match scope {
        BanScope::Room(r) => out.push(("scope", Field::Room(r))),
        BanScope::Account(a) => out.push(("scope", Field::Account(a))),
        BanScope::Server => {}
    }
}
