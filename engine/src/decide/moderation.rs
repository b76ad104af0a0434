//! Moderation: mute / pause video (VROOM), kick, ban and unban at room, account or
//! server scope (Jami ban-contact), raised hands, moderators-only chat.
//!
//! Each action names the moderator (the event's actor) and the subject. Moderators act
//! on people ranked below them; owners and operators on anyone.

use chrono::{DateTime, Utc};

use super::{Cx, Decision, Rank};
use crate::command::Command;
use crate::event::EventKind;
use crate::ids::{Principal, RoomName};
use crate::model::{BanScope, Role, RoomChange};
use crate::rejection::Rejection;
use crate::state::Gate;

#[derive(Clone, Copy)]
enum Medium {
    Audio,
    Video,
}

pub(super) fn decide(cx: &Cx<'_>, cmd: &Command) -> Decision {
    use Command as C;
    match cmd {
        C::MuteAudio { room, subject } => media(cx, room, subject, Medium::Audio, true),
        C::UnmuteAudio { room, subject } => media(cx, room, subject, Medium::Audio, false),
        C::PauseVideo { room, subject } => media(cx, room, subject, Medium::Video, true),
        C::ResumeVideo { room, subject } => media(cx, room, subject, Medium::Video, false),
        C::Kick {
            room,
            subject,
            reason,
        } => {
            let r = cx.room(room)?;
            let rank = cx.require_moderator(room, r)?;
            cx.check_reason(reason)?;
            let p = cx.state.canonical(subject);
            if !r.members.contains_key(&p) {
                return Err(Rejection::NotMember.into());
            }
            cx.require_outranks(rank, room, r, &p)?;
            Ok(vec![cx.event(EventKind::Kicked {
                room: room.clone(),
                subject: p,
                reason: reason.clone(),
            })])
        }
        C::Ban {
            scope,
            subject,
            reason,
            until,
        } => ban(cx, scope, subject, reason, *until),
        C::Unban { scope, subject } => unban(cx, scope, subject),
        C::RaiseHand { room } => {
            let r = cx.room(room)?;
            let (_, me) = cx.person()?;
            let m = r.members.get(&me).ok_or(Rejection::NotMember)?;
            if m.hand_raised {
                return Ok(vec![]);
            }
            Ok(vec![cx.event(EventKind::HandRaised {
                room: room.clone(),
                subject: me,
            })])
        }
        C::LowerHand { room, subject } => {
            let r = cx.room(room)?;
            let me = cx.actor_principal();
            let target = match subject {
                Some(s) => cx.state.canonical(s),
                None => me.clone().ok_or(Rejection::IdentityRequired)?,
            };
            if me.as_ref() != Some(&target) {
                cx.require_moderator(room, r)?;
            }
            let m = r.members.get(&target).ok_or(Rejection::NotMember)?;
            if !m.hand_raised {
                return Ok(vec![]);
            }
            Ok(vec![cx.event(EventKind::HandLowered {
                room: room.clone(),
                subject: target,
            })])
        }
        C::SetModeratedChat { room, enabled } => {
            let r = cx.room(room)?;
            cx.require_moderator(room, r)?;
            let change = RoomChange::ModeratedChat(*enabled);
            if change.is_noop(&r.config) {
                return Ok(vec![]);
            }
            Ok(vec![cx.event(EventKind::RoomModified {
                room: room.clone(),
                change,
            })])
        }
        _ => Ok(vec![]),
    }
}

/// Close or open a medium. People close their own freely and reopen what they closed;
/// a moderator's closure is server-enforced and only a moderator lifts it. A moderator
/// "unmuting" someone who muted themself is a no-op: nobody's microphone is forced on.
fn media(
    cx: &Cx<'_>,
    name: &RoomName,
    subject: &Principal,
    medium: Medium,
    close: bool,
) -> Decision {
    let r = cx.room(name)?;
    let p = cx.state.canonical(subject);
    let member = r.members.get(&p).ok_or(Rejection::NotMember)?;
    let gate = match medium {
        Medium::Audio => member.audio,
        Medium::Video => member.video,
    };
    let is_self = cx.actor_principal().as_ref() == Some(&p);
    let by_moderator = if is_self {
        if !close && gate == Gate::Moderator && cx.actor_rank(name, r) < Rank::Moderator {
            return Err(Rejection::NotModerator.into());
        }
        false
    } else {
        let rank = cx.require_moderator(name, r)?;
        cx.require_outranks(rank, name, r, &p)?;
        true
    };
    let noop = match (close, by_moderator) {
        (true, true) => gate == Gate::Moderator,
        (true, false) => gate != Gate::Open,
        (false, true) => gate != Gate::Moderator,
        (false, false) => gate == Gate::Open,
    };
    if noop {
        return Ok(vec![]);
    }
    let room = name.clone();
    let subject = p;
    Ok(vec![cx.event(match (medium, close) {
        (Medium::Audio, true) => EventKind::AudioMuted {
            room,
            subject,
            by_moderator,
        },
        (Medium::Audio, false) => EventKind::AudioUnmuted { room, subject },
        (Medium::Video, true) => EventKind::VideoPaused {
            room,
            subject,
            by_moderator,
        },
        (Medium::Video, false) => EventKind::VideoResumed { room, subject },
    })])
}

/// Who may ban in a scope: room moderators (outranking the subject), the account
/// holder or an operator for account scope, operators for the server.
pub(super) fn check_scope(
    cx: &Cx<'_>,
    scope: &BanScope,
    subject: &Principal,
) -> Result<(), Rejection> {
    match scope {
        BanScope::Room(name) => {
            let r = cx.room(name)?;
            let rank = cx.require_moderator(name, r)?;
            cx.require_outranks(rank, name, r, subject)
        }
        BanScope::Account(a) => {
            if !cx.state.accounts.contains_key(a) {
                return Err(Rejection::AccountNotFound(a.clone()));
            }
            if cx.ctx.actor.is_privileged()
                || cx.actor_principal() == Some(Principal::Account(a.clone()))
            {
                Ok(())
            } else {
                Err(Rejection::NotOwner)
            }
        }
        BanScope::Server => cx.require_operator(),
    }
}

fn ban(
    cx: &Cx<'_>,
    scope: &BanScope,
    subject: &Principal,
    reason: &Option<String>,
    until: Option<DateTime<Utc>>,
) -> Decision {
    let p = cx.state.canonical(subject);
    check_scope(cx, scope, &p)?;
    cx.check_reason(reason)?;
    if until.is_some_and(|u| u <= cx.ctx.now) {
        return Err(Rejection::InvalidInput {
            field: "until",
            reason: "must be in the future".into(),
        }
        .into());
    }
    match scope {
        BanScope::Room(name) => {
            let r = cx.room(name)?;
            if r.affiliations.get(&p) == Some(&Role::Owner) && r.owner_count() <= 1 {
                return Err(Rejection::LastOwner.into());
            }
        }
        BanScope::Account(a) => {
            if p == Principal::Account(a.clone()) {
                return Err(Rejection::InvalidInput {
                    field: "subject",
                    reason: "an account cannot ban itself".into(),
                }
                .into());
            }
        }
        BanScope::Server => {}
    }
    Ok(vec![cx.event(EventKind::Banned {
        scope: scope.clone(),
        subject: p,
        reason: reason.clone(),
        until,
    })])
}

fn unban(cx: &Cx<'_>, scope: &BanScope, subject: &Principal) -> Decision {
    let st = cx.state;
    let canonical = st.canonical(subject);
    // Lifting is permitted to whoever could ban; rank against the subject is not
    // required (unbanning cannot hurt the subject).
    match scope {
        BanScope::Room(name) => {
            let r = cx.room(name)?;
            cx.require_moderator(name, r)?;
        }
        other => check_scope(cx, other, &canonical)?,
    }
    let exists = |p: &Principal| match scope {
        BanScope::Room(n) => st.rooms.get(n).is_some_and(|r| r.bans.contains_key(p)),
        BanScope::Account(a) => st.accounts.get(a).is_some_and(|a| a.bans.contains_key(p)),
        BanScope::Server => st.server_bans.contains_key(p),
    };
    let target = [canonical, subject.clone()]
        .into_iter()
        .find(|p| exists(p))
        .ok_or(Rejection::BanNotFound)?;
    Ok(vec![cx.event(EventKind::Unbanned {
        scope: scope.clone(),
        subject: target,
        expired: false,
    })])
}
