//! Running one `MESSAGE` against the engine: each IMC command as engine commands with
//! the sender as actor, each answer as a SIP status and notices, each refusal as the
//! engine's IMC outcome says ([`ImcOutcome`]).

use conclave_engine::model::{Role, RoomChange};
use conclave_engine::service::{EngineError, Outcome, Request};
use conclave_engine::state::{InvitationState, State};
use conclave_engine::{
    Actor, Command, Credentials, EventKind, ImcOutcome, InvitationId, Origin, Principal, Rejection,
    RoomName,
};

use super::command::{parse, ImcCommand, ImcError, Parsed};
use super::notice;
use super::session::im_session;
use super::{Imc, ImcReply, ImcRequest, Notice, Target};

/// Longest Call-ID used as it is for the correlation id; a longer (or odd) one is
/// replaced by a digest, so journal metadata stays bounded.
const MAX_CORRELATION: usize = 128;

pub(super) async fn handle(imc: &Imc, req: ImcRequest) -> ImcReply {
    let call = Call {
        correlation: correlation(&req.call_id),
        imc,
        req: &req,
    };
    call.run().await
}

/// The Call-ID as a correlation id: as it is when short and printable, else a digest.
fn correlation(call_id: &str) -> String {
    let plain = !call_id.is_empty()
        && call_id.len() <= MAX_CORRELATION
        && call_id.chars().all(|c| c.is_ascii_graphic());
    if plain {
        call_id.to_owned()
    } else {
        let hash = blake3::hash(call_id.as_bytes());
        format!(
            "sip-{}",
            hash.to_hex().as_str().chars().take(32).collect::<String>()
        )
    }
}

/// One `MESSAGE` being answered.
struct Call<'a> {
    imc: &'a Imc,
    req: &'a ImcRequest,
    correlation: String,
}

/// Resolves an argument or answers with the notice for why it cannot be.
macro_rules! or_answer {
    ($call:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return $call.imc_error(&e),
        }
    };
}

impl Call<'_> {
    async fn run(&self) -> ImcReply {
        let c = self.imc.addressing.command_char;
        match (&self.req.target, parse(&self.req.body, c)) {
            // The transaction user should not hand these over; nothing IMC is there.
            (Target::Other, _) => reply(404, "Not Found", None, Vec::new()),
            (Target::Manager, Parsed::Chat) => self.imc_error(&ImcError::NotACommand),
            (Target::Room(room), Parsed::Chat) => self.chat(room).await,
            (_, Parsed::Command(Err(e))) => self.imc_error(&e),
            (_, Parsed::Command(Ok(cmd))) => self.command(cmd).await,
        }
    }

    async fn command(&self, cmd: ImcCommand) -> ImcReply {
        let a = &self.imc.addressing;
        let t = &self.req.target;
        match cmd {
            ImcCommand::Help => self.notice(self.target_uri(), notice::help(a.command_char)),
            ImcCommand::Create { room, private } => {
                let room = or_answer!(self, a.room_arg(room.as_deref(), t));
                self.create(room, private).await
            }
            ImcCommand::Join { room } => {
                let room = or_answer!(self, a.room_arg(room.as_deref(), t));
                self.join(room).await
            }
            ImcCommand::Invite { user, room } => {
                let room = or_answer!(self, a.room_arg(room.as_deref(), t));
                let user = or_answer!(self, a.user_arg(&user));
                self.invite(room, user).await
            }
            ImcCommand::Accept { room } => {
                let room = or_answer!(self, a.room_arg(room.as_deref(), t));
                self.answer_invitation(room, true).await
            }
            ImcCommand::Deny { room } => {
                let room = or_answer!(self, a.room_arg(room.as_deref(), t));
                self.answer_invitation(room, false).await
            }
            ImcCommand::Remove { user, room } => {
                let room = or_answer!(self, a.room_arg(room.as_deref(), t));
                let user = or_answer!(self, a.user_arg(&user));
                self.remove(room, user).await
            }
            ImcCommand::Exit { room } => {
                let room = or_answer!(self, a.room_arg(room.as_deref(), t));
                self.exit(room).await
            }
            ImcCommand::Destroy { room } => {
                let room = or_answer!(self, a.room_arg(room.as_deref(), t));
                match self.exec(Command::DestroyRoom { room: room.clone() }).await {
                    Ok(_) => self.notice(self.room_uri(&room), notice::ROOM_DESTROYED.into()),
                    Err(e) => self.refused(&e),
                }
            }
            ImcCommand::Record { room } => {
                let room = or_answer!(self, a.room_arg(room.as_deref(), t));
                let start = Command::StartRecording { room, video: false };
                match self.exec(start).await {
                    // Every member, the sender included, is told by the feed's fan-out.
                    Ok(_) => reply(200, "OK", None, Vec::new()),
                    Err(e) => self.refused(&e),
                }
            }
            ImcCommand::StopRecord { room } => {
                let room = or_answer!(self, a.room_arg(room.as_deref(), t));
                match self.exec(Command::StopRecording { room }).await {
                    Ok(_) => reply(200, "OK", None, Vec::new()),
                    Err(e) => self.refused(&e),
                }
            }
            ImcCommand::List { room } => {
                let room = or_answer!(self, a.room_arg(room.as_deref(), t));
                self.list(&room)
            }
        }
    }

    /// A chat line to a room: one `PostMessage`; the feed's fan-out delivers it.
    async fn chat(&self, room: &RoomName) -> ImcReply {
        let post = Command::PostMessage {
            room: room.clone(),
            body: self.req.body.clone(),
        };
        match self.exec(post).await {
            Ok(_) => reply(200, "OK", None, Vec::new()),
            Err(e) => self.refused(&e),
        }
    }

    /// `#create`: the room (owner: the sender), set to close when its owner exits (the
    /// seed's `#exit`), and the sender's IM session in it.
    async fn create(&self, room: RoomName, private: bool) -> ImcReply {
        if let Err(e) = self.exec(create_room(&room, private)).await {
            return self.refused(&e);
        }
        self.created(room).await
    }

    /// The steps after a successful `CreateRoom`.
    async fn created(&self, room: RoomName) -> ImcReply {
        let exit_destroys = Command::ConfigureRoom {
            room: room.clone(),
            changes: vec![RoomChange::OwnerExitDestroys(true)],
        };
        if let Err(e) = self.exec(exit_destroys).await {
            // The room stands; only the owner's #exit will not close it.
            tracing::warn!(room = %room, code = e.code(), correlation = %self.correlation,
                "IMC room created without owner_exit_destroys");
        }
        match self.exec(self.join_command(&room)).await {
            Ok(_) => self.notice(self.room_uri(&room), notice::ROOM_CREATED.into()),
            Err(e) => self.refused(&e),
        }
    }

    /// `#join`: the sender's IM session enters the room; a room that does not exist is
    /// created first, as the seed says.
    async fn join(&self, room: RoomName) -> ImcReply {
        let mut room = room;
        if !self.read(|s| s.rooms.contains_key(&room)) {
            match self.exec(create_room(&room, false)).await {
                Ok(_) => return self.created(room).await,
                // Created meanwhile, or spelt differently (case, width): join that one.
                Err(EngineError::Rejected {
                    rejection: Rejection::RoomExists(existing),
                    ..
                }) => room = existing,
                Err(e) => return self.refused(&e),
            }
        }
        match self.exec(self.join_command(&room)).await {
            Ok(_) => self.joined(&room),
            Err(e) => self.refused(&e),
        }
    }

    /// The notice for a successful join, with the room's welcome text if it has one.
    fn joined(&self, room: &RoomName) -> ImcReply {
        let welcome = self.read(|s| {
            s.rooms
                .get(room)
                .and_then(|r| r.config.welcome_text.clone())
        });
        let body = match welcome {
            Some(w) => format!("{}\n{w}", notice::YOU_JOINED),
            None => notice::YOU_JOINED.to_owned(),
        };
        self.notice(self.room_uri(room), body)
    }

    /// `#invite`: a single-use invitation; the invitee hears of it through the feed
    /// (`notices_for`), so invitations made over REST reach SIP users too.
    async fn invite(&self, room: RoomName, invitee: conclave_engine::Address) -> ImcReply {
        let name = notice::who(&invitee);
        let present = self.read(|s| {
            s.rooms
                .get(&room)
                .is_some_and(|r| r.members.contains_key(&s.principal_of(&invitee)))
        });
        if present {
            return self.notice(self.room_uri(&room), notice::already_in(&name));
        }
        match self.exec(Command::invite(room.clone(), invitee)).await {
            Ok(_) => self.notice(self.room_uri(&room), notice::invitation_sent(&name)),
            Err(e) => self.refused(&e),
        }
    }

    /// `#accept` (then join) or `#deny`: of the sender's pending invitation to the room.
    async fn answer_invitation(&self, room: RoomName, accept: bool) -> ImcReply {
        let now = self.imc.handle.engine().now();
        let sender = &self.req.sender;
        let found = self.read(|s| -> Result<InvitationId, Rejection> {
            let r = s
                .rooms
                .get(&room)
                .ok_or_else(|| Rejection::RoomNotFound(room.clone()))?;
            let me = s.principal_of(sender);
            r.invitations
                .iter()
                .find(|(_, inv)| {
                    inv.state == InvitationState::Pending
                        && inv.usable_at(now)
                        && s.principal_of(&inv.invitee) == me
                })
                .map(|(id, _)| id.clone())
                .ok_or(Rejection::InvitationNotFound)
        });
        let invitation = match found {
            Ok(id) => id,
            Err(rejection) => return self.rejected(rejection),
        };
        let room_ = room.clone();
        let answer = if accept {
            Command::AcceptInvitation {
                room: room_,
                invitation,
            }
        } else {
            Command::DenyInvitation {
                room: room_,
                invitation,
            }
        };
        if let Err(e) = self.exec(answer).await {
            return self.refused(&e);
        }
        if !accept {
            return self.notice(self.room_uri(&room), notice::YOU_DECLINED.into());
        }
        match self.exec(self.join_command(&room)).await {
            Ok(_) => self.joined(&room),
            Err(e) => self.refused(&e),
        }
    }

    /// `#remove`: the person's sessions leave (`Kick`); in a private room the membership
    /// an invitation gave them goes too, so that, as in Kamailio, they need a new
    /// invitation to come back.
    async fn remove(&self, room: RoomName, user: conclave_engine::Address) -> ImcReply {
        let subject = Principal::Address(user.clone());
        let kick = Command::Kick {
            room: room.clone(),
            subject: subject.clone(),
            reason: None,
        };
        if let Err(e) = self.exec(kick).await {
            return self.refused(&e);
        }
        let revoke = self.read(|s| {
            s.rooms.get(&room).is_some_and(|r| {
                r.config.private
                    && r.affiliations.get(&s.canonical(&subject)) == Some(&Role::Member)
            })
        });
        if revoke {
            let cmd = Command::RevokeRole {
                room: room.clone(),
                subject,
            };
            if let Err(e) = self.exec(cmd).await {
                tracing::warn!(room = %room, code = e.code(), correlation = %self.correlation,
                    "IMC #remove kept the removed person's membership");
            }
        }
        self.notice(self.room_uri(&room), notice::removed(&notice::who(&user)))
    }

    /// `#exit`: the IM session leaves; the engine closes a room set to close when its
    /// owner exits (rooms made over IMC are).
    async fn exit(&self, room: RoomName) -> ImcReply {
        let leave = Command::Leave {
            room: room.clone(),
            session: im_session(&self.req.sender),
        };
        match self.exec(leave).await {
            Ok(o) if destroyed(&o) => {
                self.notice(self.room_uri(&room), notice::ROOM_DESTROYED.into())
            }
            Ok(_) => self.notice(self.room_uri(&room), notice::YOU_LEFT.into()),
            Err(e) => self.refused(&e),
        }
    }

    /// `#list`: the members, for members only (a private room is not there for others).
    fn list(&self, room: &RoomName) -> ImcReply {
        let listed = self.read(|s| -> Result<_, Rejection> {
            let r = s
                .rooms
                .get(room)
                .ok_or_else(|| Rejection::RoomNotFound(room.clone()))?;
            if !r.members.contains_key(&s.principal_of(&self.req.sender)) {
                return Err(if r.config.private {
                    Rejection::RoomNotFound(room.clone())
                } else {
                    Rejection::NotMember
                });
            }
            let mut list = Vec::new();
            for (p, m) in r.members.iter().take(notice::LIST_MAX) {
                let mut names: Vec<String> = m
                    .sessions
                    .values()
                    .map(|presence| notice::who(&presence.address))
                    .collect();
                names.dedup();
                let name = if names.is_empty() {
                    notice::principal(p)
                } else {
                    names.join(", ")
                };
                list.push((name, r.affiliations.get(p).copied()));
            }
            Ok((list, r.members.len().saturating_sub(notice::LIST_MAX)))
        });
        match listed {
            Ok((list, more)) => self.notice(self.room_uri(room), notice::members(&list, more)),
            Err(rejection) => self.rejected(rejection),
        }
    }

    // ---- the engine ----

    fn join_command(&self, room: &RoomName) -> Command {
        Command::Join {
            room: room.clone(),
            session: im_session(&self.req.sender),
            credentials: Credentials::default(),
        }
    }

    async fn exec(&self, command: Command) -> Result<Outcome, EngineError> {
        let req = Request {
            command,
            actor: Actor::Identity(self.req.sender.clone()),
            origin: Origin {
                gateway: "sip".into(),
                protocol: "sip".into(),
                remote_addr: self.req.remote.map(|r| r.to_string()),
            },
            correlation_id: Some(self.correlation.clone()),
            causation_id: None,
            authorized_by: None,
            scope: None,
        };
        self.imc.handle.execute(req).await
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        self.imc.handle.engine().read(f)
    }

    // ---- answers ----

    fn target_uri(&self) -> String {
        match &self.req.target {
            Target::Room(r) => self.room_uri(r),
            Target::Manager | Target::Other => self.imc.addressing.manager_uri(),
        }
    }

    fn room_uri(&self, room: &RoomName) -> String {
        self.imc.addressing.room_uri(room)
    }

    /// `200 OK` and one notice to the sender.
    fn notice(&self, from_uri: String, body: String) -> ImcReply {
        let n = Notice {
            to: self.req.sender.clone(),
            from_uri,
            body,
        };
        reply(200, "OK", None, vec![n])
    }

    fn imc_error(&self, e: &ImcError) -> ImcReply {
        tracing::debug!(code = e.code(), correlation = %self.correlation, "IMC command not run");
        self.notice(
            self.target_uri(),
            notice::imc_error(e, self.imc.addressing.command_char),
        )
    }

    /// A refusal found before asking the engine, answered as the engine's would be.
    fn rejected(&self, rejection: Rejection) -> ImcReply {
        self.refused(&EngineError::Rejected {
            rejection,
            correlation_id: self.correlation.clone(),
            recorded: Vec::new(),
        })
    }

    /// An engine refusal or failure, as its IMC outcome says: a notice from where the
    /// command was sent, a failed `MESSAGE` with the refusal as reason, or a bare
    /// failure whose cause stays in the log.
    fn refused(&self, e: &EngineError) -> ImcReply {
        let m = e.mapping();
        match m.imc {
            ImcOutcome::Notice => self.notice(self.target_uri(), notice::refusal(e)),
            ImcOutcome::Refuse => reply(
                m.sip.code(),
                &notice::reason_phrase(&e.to_string()),
                m.retry_after,
                Vec::new(),
            ),
            ImcOutcome::Fail => {
                tracing::warn!(error = %e, code = e.code(), correlation = %self.correlation,
                    "IMC command failed");
                reply(m.sip.code(), m.sip.reason(), m.retry_after, Vec::new())
            }
        }
    }
}

fn reply(status: u16, reason: &str, retry_after: Option<u32>, notices: Vec<Notice>) -> ImcReply {
    ImcReply {
        status,
        reason: reason.to_owned(),
        retry_after,
        notices,
    }
}

fn create_room(room: &RoomName, private: bool) -> Command {
    Command::CreateRoom {
        room: room.clone(),
        parent: None,
        private,
        owner: None,
        max_members: None,
        welcome_text: None,
        access_password_hash: None,
        server_password: None,
    }
}

fn destroyed(o: &Outcome) -> bool {
    o.events
        .iter()
        .any(|a| matches!(a.event.kind, EventKind::RoomDeleted { .. }))
}

#[cfg(test)]
mod tests {
    use super::correlation;

    #[test]
    fn call_ids_become_bounded_correlation_ids() {
        assert_eq!(correlation("abc@host"), "abc@host");
        let long = correlation(&"x".repeat(500));
        assert!(long.starts_with("sip-") && long.len() == 36);
        assert_ne!(correlation("a b"), "a b");
        assert!(correlation("").starts_with("sip-"));
    }
}
