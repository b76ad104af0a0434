//! `decide`: turn a command into events, or refuse it.
//!
//! Pure: reads the state, the command and the context (time, actor, id seed, IP key)
//! and calls the injected password verifier; nothing else. The logic is split per
//! feature area; this module holds the dispatch and the permission helpers they share.

mod accounts;
mod address_bans;
mod autoban;
mod chat;
mod gateways;
mod input;
mod invitations;
mod membership;
mod moderation;
mod policies;
mod recording;
mod retention;
mod roles;
mod rooms;

use crate::command::Command;
use crate::context::{Actor, Context, PasswordVerifier};
use crate::event::{Event, EventKind};
use crate::ids::{Address, Principal, RoomName};
use crate::rejection::{Rejected, Rejection};
use crate::state::{Room, State};
use crate::text::{self, TextKind};

pub use chat::strip_html;
pub use membership::refused_before_passwords;
pub use rooms::create_checks_server_password;

/// The outcome of [`decide`]: events to append, or a refusal carrying the events that
/// must be journaled anyway (see [`Rejected`]).
pub type Decision = Result<Vec<Event>, Rejected>;

/// Decide what `cmd` means in `state`, as `ctx.actor` at `ctx.now`.
///
/// On success the events are returned in the order they must be applied. On refusal
/// the [`Rejected`] names the rejection and the events to record (a `JoinDenied`, an
/// `ActionDenied` for any permission refusal, autoban consequences). No-op commands
/// (locking a locked room, granting a role already held) succeed with no events, so
/// retries are harmless.
pub fn decide(
    state: &State,
    cmd: &Command,
    ctx: &Context,
    verifier: &dyn PasswordVerifier,
) -> Decision {
    let cx = Cx {
        state,
        ctx,
        verifier,
    };
    // Text first: nothing the text rule refuses is decided on, nor journaled.
    let result = in_scope(ctx)
        .and_then(|()| input::check(&cx, cmd).map_err(Rejected::from))
        .and_then(|()| dispatch(&cx, cmd));
    match result {
        Err(mut r) if r.rejection.is_permission() && r.record.is_empty() => {
            // VROOM's api_action_denied: refused attempts to use rights one lacks are
            // audit facts in the room (or server) stream.
            let room = cmd.room().filter(|r| state.rooms.contains_key(*r)).cloned();
            r.record.push(cx.event(EventKind::ActionDenied {
                room,
                action: cmd.name().to_owned(),
                subject: cmd.subject().map(|s| state.canonical(s)),
                code: r.rejection.code().to_owned(),
            }));
            Err(r)
        }
        other => other,
    }
}

/// A gateway acts only for identities of its own schemes (the SIP gateway for sip:, the
/// XMPP gateway for xmpp:): anything else is a bug or a forgery, refused and journaled.
fn in_scope(ctx: &Context) -> Result<(), Rejected> {
    let (Some(scope), Actor::Identity(a)) = (&ctx.scope, &ctx.actor) else {
        return Ok(());
    };
    if scope.contains(&a.scheme()) {
        return Ok(());
    }
    Err(Rejection::OutOfScope {
        gateway: ctx.origin.gateway.clone(),
        scheme: a.scheme().as_str().to_owned(),
    }
    .into())
}

fn dispatch(cx: &Cx<'_>, cmd: &Command) -> Decision {
    use Command as C;
    match cmd {
        C::CreateAccount { .. }
        | C::LinkIdentity { .. }
        | C::UnlinkIdentity { .. }
        | C::SetSipCredential { .. }
        | C::ClearSipCredential { .. }
        | C::SetDisplayName { .. }
        | C::EnableAccount { .. }
        | C::DisableAccount { .. }
        | C::AllowContact { .. }
        | C::DisallowContact { .. }
        | C::OpenContacts { .. }
        | C::AddModerator { .. }
        | C::RemoveModerator { .. }
        | C::SetRendezvous { .. } => accounts::decide(cx, cmd),
        C::CallAccount {
            account,
            session,
            credentials,
        } => membership::call(cx, account, session, credentials),
        C::CreateRoom { .. }
        | C::ConfigureRoom { .. }
        | C::LockRoom { .. }
        | C::UnlockRoom { .. }
        | C::ReserveRoom { .. }
        | C::UnreserveRoom { .. }
        | C::DestroyRoom { .. }
        | C::SetSubject { .. } => rooms::decide(cx, cmd),
        C::Join {
            room,
            session,
            credentials,
        } => membership::join(cx, room, session, credentials),
        C::Leave { room, session } => membership::leave(cx, room, session),
        C::RenewSession { room, session } => membership::renew(cx, room, session),
        C::EndGatewaySessions { gateway } => membership::end_gateway_sessions(cx, gateway),
        C::Knock {
            room,
            session,
            server_password,
        } => membership::knock(cx, room, session, server_password.as_ref()),
        C::Admit { room, subject } => membership::admit(cx, room, subject),
        C::RejectKnock { room, subject } => membership::reject_knock(cx, room, subject),
        C::GrantRole {
            room,
            subject,
            role,
        } => roles::grant(cx, room, subject, Some(*role)),
        C::RevokeRole { room, subject } => roles::grant(cx, room, subject, None),
        C::Invite { .. }
        | C::AcceptInvitation { .. }
        | C::DenyInvitation { .. }
        | C::RevokeInvitation { .. } => invitations::decide(cx, cmd),
        C::MuteAudio { .. }
        | C::UnmuteAudio { .. }
        | C::PauseVideo { .. }
        | C::ResumeVideo { .. }
        | C::Kick { .. }
        | C::Ban { .. }
        | C::Unban { .. }
        | C::RaiseHand { .. }
        | C::LowerHand { .. }
        | C::SetModeratedChat { .. } => moderation::decide(cx, cmd),
        C::PostMessage { room, body } => chat::post(cx, room, body),
        C::StartRecording { room, video } => recording::start(cx, room, *video),
        C::StopRecording { room } => recording::stop(cx, room),
        C::RecordRecordingFile {
            room,
            recording: id,
            file,
        } => recording::record_file(cx, room, id, file),
        C::EraseRecording {
            room,
            recording: id,
            reason,
        } => recording::erase(cx, room, id, *reason),
        C::SetServerPassword { .. }
        | C::SetLogDays { .. }
        | C::SetObfuscateIps { .. }
        | C::SetWelcomeText { .. } => policies::decide(cx, cmd),
        C::BanAddress {
            scope,
            target,
            reason,
            until,
        } => address_bans::ban(cx, scope, target, reason, *until),
        C::UnbanAddress { scope, address } => address_bans::unban(cx, scope, address),
        C::LiftAutoban { key } => autoban::lift(cx, key),
        C::RecordContentPurge {
            subject,
            before,
            records,
            up_to_seq,
        } => retention::record_purge(cx, subject, before, *records, *up_to_seq),
        C::RecordGatewayRefusal { room, action, code } => {
            gateways::record_refusal(cx, room.as_ref(), action, code)
        }
    }
}

pub(crate) use crate::access::Rank;

/// Everything a decision reads, bundled.
pub(crate) struct Cx<'a> {
    pub state: &'a State,
    pub ctx: &'a Context,
    pub verifier: &'a dyn PasswordVerifier,
}

impl<'a> Cx<'a> {
    /// Wrap a kind in an envelope stamped with the context's time and actor.
    pub fn event(&self, kind: EventKind) -> Event {
        Event {
            at: self.ctx.now,
            actor: self.ctx.actor.clone(),
            kind,
        }
    }

    pub fn room(&self, name: &RoomName) -> Result<&'a Room, Rejection> {
        self.state
            .rooms
            .get(name)
            .ok_or_else(|| Rejection::RoomNotFound(name.clone()))
    }

    /// The acting identity and its principal, for commands only people can issue.
    pub fn person(&self) -> Result<(&'a Address, Principal), Rejection> {
        match &self.ctx.actor {
            Actor::Identity(a) => Ok((a, self.state.principal_of(a))),
            _ => Err(Rejection::IdentityRequired),
        }
    }

    /// The acting principal, if the actor is a person.
    pub fn actor_principal(&self) -> Option<Principal> {
        self.ctx
            .actor
            .identity()
            .map(|a| self.state.principal_of(a))
    }

    pub fn require_operator(&self) -> Result<(), Rejection> {
        if self.ctx.actor.is_privileged() {
            Ok(())
        } else {
            Err(Rejection::NotAdmin)
        }
    }

    /// Whether `p` (reached through `address`, if known) is stopped by any ban in the
    /// room, autoban included.
    pub fn banned_in(&self, room: &RoomName, p: &Principal, address: Option<&Address>) -> bool {
        let now = self.ctx.now;
        let st = self.state;
        st.is_banned_in(room, p, now)
            || address.is_some_and(|a| {
                st.is_banned_in(room, &Principal::Address(a.clone()), now)
                    || st.autobanned(&crate::event::AutobanKey::Identity(a.clone()), now)
            })
    }

    /// The rank of a principal in a room (not of an operator); see [`State::rank_in`].
    pub fn rank_of(&self, name: &RoomName, room: &Room, p: &Principal) -> Rank {
        self.state.rank_in(name, room, p, self.ctx.now)
    }

    /// The actor's rank in a room.
    pub fn actor_rank(&self, name: &RoomName, room: &Room) -> Rank {
        self.rank_of_actor(&self.ctx.actor, name, room)
    }

    /// The rank `actor` holds in a room now: an operator's, or the person's (nobody while
    /// autobanned). What an invitation's issuer can still do is asked with this.
    pub fn rank_of_actor(&self, actor: &Actor, name: &RoomName, room: &Room) -> Rank {
        match actor {
            Actor::Admin | Actor::Service(_) => Rank::Operator,
            Actor::Identity(a) => {
                if self
                    .state
                    .autobanned(&crate::event::AutobanKey::Identity(a.clone()), self.ctx.now)
                {
                    return Rank::Nobody;
                }
                self.rank_of(name, room, &self.state.principal_of(a))
            }
        }
    }

    /// Require at least moderator rights; returns the actor's rank.
    pub fn require_moderator(&self, name: &RoomName, room: &Room) -> Result<Rank, Rejection> {
        let rank = self.actor_rank(name, room);
        if rank >= Rank::Moderator {
            Ok(rank)
        } else {
            Err(Rejection::NotModerator)
        }
    }

    /// Require ownership (or operator); returns the actor's rank.
    pub fn require_owner(&self, name: &RoomName, room: &Room) -> Result<Rank, Rejection> {
        let rank = self.actor_rank(name, room);
        if rank >= Rank::Owner {
            Ok(rank)
        } else {
            Err(Rejection::NotOwner)
        }
    }

    /// Moderators act on people below them; owners and operators on anyone.
    pub fn require_outranks(
        &self,
        actor: Rank,
        name: &RoomName,
        room: &Room,
        subject: &Principal,
    ) -> Result<(), Rejection> {
        if actor >= Rank::Owner || actor > self.rank_of(name, room, subject) {
            Ok(())
        } else {
            Err(Rejection::Outranked)
        }
    }

    /// A free-text reason (one line), bounded by the policy.
    pub fn check_reason(&self, reason: &Option<String>) -> Result<(), Rejection> {
        check_text(
            "reason",
            reason.as_deref(),
            self.state.policy.max_reason_len,
            TextKind::Line,
        )
    }
}

/// Bounded free text that [`text::check`] accepts for its kind (the command boundary
/// has checked the characters already; this is the length, and the same rule again).
pub(crate) fn check_text(
    field: &'static str,
    text: Option<&str>,
    max: u32,
    kind: TextKind,
) -> Result<(), Rejection> {
    let Some(t) = text else { return Ok(()) };
    let len = t.chars().count();
    if len > max as usize {
        return Err(Rejection::InvalidInput {
            field,
            reason: format!("{len} characters, at most {max}"),
        });
    }
    text::check(t, kind).map_err(|f| Rejection::ForbiddenChar {
        field,
        ch: f.ch,
        class: f.class,
    })
}

/// A stored password hash coming in from a command: non-empty, bounded, printable ASCII
/// (argon2 PHC strings are).
pub(crate) fn check_hash(field: &'static str, hash: &str) -> Result<(), Rejection> {
    if hash.is_empty() || hash.len() > 512 || !hash.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Rejection::InvalidInput {
            field,
            reason: "expected an argon2 PHC string".into(),
        });
    }
    Ok(())
}
