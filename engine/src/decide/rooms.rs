//! Rooms: create (public / private, nested), configure, lock, reserve, destroy, and the
//! subject (XEP-0045's room subject, a topic).

use std::sync::atomic::{AtomicBool, Ordering};

use super::{address_bans, autoban, check_hash, check_text, Cx, Decision, Rank};
use crate::command::{Command, Secret};
use crate::context::{Context, PasswordVerifier};
use crate::event::{DeleteReason, DenyReason, Event, EventKind};
use crate::ids::{fold_name, name_keys, Address, Principal, RoomName};
use crate::model::{
    InviteRight, PasswordKind, RoomChange, RoomConfig, MAX_ROOM_TITLE_LEN, MAX_SUBJECT_LEN,
};
use crate::policy::stored_remote_addr;
use crate::rejection::{Rejected, Rejection};
use crate::state::State;
use crate::text::{self, TextKind};

pub(super) fn decide(cx: &Cx<'_>, cmd: &Command) -> Decision {
    use Command as C;
    match cmd {
        C::CreateRoom {
            room,
            parent,
            private,
            owner,
            max_members,
            welcome_text,
            access_password_hash,
            server_password,
        } => create(
            cx,
            room,
            parent.as_ref(),
            owner.as_ref(),
            server_password.as_ref(),
            RoomConfig {
                private: *private,
                max_members: *max_members,
                welcome_text: welcome_text.clone(),
                access_password_hash: access_password_hash.clone(),
                ..RoomConfig::default()
            },
        ),
        C::ConfigureRoom { room, changes } => {
            let r = cx.room(room)?;
            cx.require_owner(room, r)?;
            configure(cx, room, changes)
        }
        C::LockRoom { room } | C::UnlockRoom { room } => {
            let r = cx.room(room)?;
            cx.require_moderator(room, r)?;
            let lock = matches!(cmd, C::LockRoom { .. });
            configure(cx, room, &[RoomChange::Locked(lock)])
        }
        C::ReserveRoom {
            room,
            owner_password_hash,
        } => {
            let r = cx.room(room)?;
            cx.require_owner(room, r)?;
            check_hash("owner_password_hash", owner_password_hash)?;
            // VROOM common_names: usable, never reservable (anti-squatting).
            if is_common_name(cx, room) {
                return Err(Rejection::CommonName(room.clone()).into());
            }
            if r.reserved.as_ref() == Some(owner_password_hash) {
                return Ok(vec![]);
            }
            Ok(vec![cx.event(EventKind::RoomReserved {
                room: room.clone(),
                owner_password_hash: owner_password_hash.clone(),
            })])
        }
        C::UnreserveRoom { room } => {
            let r = cx.room(room)?;
            cx.require_owner(room, r)?;
            if !r.is_reserved() {
                return Err(Rejection::NotReserved.into());
            }
            Ok(vec![
                cx.event(EventKind::RoomUnreserved { room: room.clone() })
            ])
        }
        C::DestroyRoom { room } => {
            let r = cx.room(room)?;
            cx.require_owner(room, r)?;
            Ok(destroy(cx, room, DeleteReason::Destroyed))
        }
        C::SetSubject { room, subject } => set_subject(cx, room, subject.as_deref()),
        _ => Ok(vec![]),
    }
}

fn create(
    cx: &Cx<'_>,
    room: &RoomName,
    parent: Option<&RoomName>,
    owner: Option<&Principal>,
    server_password: Option<&Secret>,
    config: RoomConfig,
) -> Decision {
    let st = cx.state;
    let policy = &st.policy;
    check_new_name(cx, room)?;
    // A guest (an identity not linked to an account) creating a room enters the server
    // as a joiner does: checked against the server password last, once nothing else
    // refuses the creation, so a refused one costs no password check.
    let mut guest_entry: Option<&Address> = None;
    // Who owns it: the creating person, or whoever an operator names.
    let owner = match (&cx.ctx.actor, owner) {
        (a, Some(o)) if a.is_privileged() => st.canonical(o),
        (a, None) if a.is_privileged() => return Err(Rejection::OwnerRequired.into()),
        (_, requested) => {
            let (address, me) = cx.person()?;
            if requested.is_some_and(|o| st.canonical(o) != me) {
                return Err(Rejection::NotAdmin.into());
            }
            if st.account_of(&me).is_some_and(|a| !a.enabled) {
                return Err(Rejection::AccountDisabled.into());
            }
            let now = cx.ctx.now;
            // An autobanned remote address too (as for joins): otherwise one address
            // could go on guessing the server password under ever new guest names.
            let remote = stored_remote(cx).map(crate::event::AutobanKey::Remote);
            if st.server_bans.get(&me).is_some_and(|b| b.active_at(now))
                || st.autobanned(&crate::event::AutobanKey::Identity(address.clone()), now)
                || remote.is_some_and(|k| st.autobanned(&k, now))
            {
                return Err(Rejection::Banned { until: None }.into());
            }
            // A server address ban: refused and journaled as a denied entry, as a join
            // from the address would be, whatever name the attempt comes under.
            if let Some(b) = address_bans::in_force(cx, None, stored_remote(cx).as_deref()) {
                return Err(deny_entry(
                    cx,
                    room,
                    address,
                    &me,
                    DenyReason::Banned,
                    Rejection::Banned { until: b.until },
                ));
            }
            if !matches!(me, Principal::Account(_)) {
                if policy.accounts_only {
                    return Err(deny_entry(
                        cx,
                        room,
                        address,
                        &me,
                        DenyReason::AccountRequired,
                        Rejection::AccountRequired,
                    ));
                }
                if !policy.guests_may_create {
                    return Err(Rejection::GuestsMayNotCreate.into());
                }
                guest_entry = Some(address);
            }
            me
        }
    };
    if let Some(p) = parent {
        let pr = st
            .rooms
            .get(p)
            .ok_or_else(|| Rejection::ParentNotFound(p.clone()))?;
        if pr.depth.saturating_add(1) > policy.nesting_limit {
            return Err(Rejection::NestingLimit {
                limit: policy.nesting_limit,
            }
            .into());
        }
        // Making a sub-room needs moderator rights in the parent (Mumble MakeChannel).
        if cx.actor_rank(p, pr) < Rank::Moderator {
            return Err(Rejection::NotModerator.into());
        }
    }
    check_max_members(cx, config.max_members, 0)?;
    check_welcome(cx, config.welcome_text.as_deref())?;
    if let Some(h) = &config.access_password_hash {
        check_hash("access_password_hash", h)?;
    }
    let config = RoomConfig {
        welcome_text: config.welcome_text.as_deref().map(|t| sanitize(cx, t)),
        ..config
    };
    // Mumble server password; registered people (enabled accounts) skip it, as on joins.
    if let (Some(address), Some(hash)) = (guest_entry, &policy.server_password_hash) {
        let denied = |reason, kind| deny_entry(cx, room, address, &owner, reason, kind);
        match server_password {
            None => {
                return Err(denied(
                    DenyReason::PasswordRequired,
                    Rejection::PasswordRequired(PasswordKind::Server),
                ))
            }
            Some(s) if cx.verifier.verify(hash, s.expose()) => {}
            Some(_) => {
                return Err(denied(
                    DenyReason::WrongPassword,
                    Rejection::WrongPassword(PasswordKind::Server),
                ))
            }
        }
    }
    Ok(vec![cx.event(EventKind::RoomCreated {
        room: room.clone(),
        parent: parent.cloned(),
        owner,
        config,
    })])
}

/// A creation refused at the server's door (the server password, accounts only): as
/// for a join, the denial is journaled, in the stream of the room it would have
/// created, and counts towards autoban when it is a guess, so guessing the server
/// password by creating rooms meets the same autoban as guessing it by joining.
fn deny_entry(
    cx: &Cx<'_>,
    room: &RoomName,
    address: &Address,
    principal: &Principal,
    reason: DenyReason,
    rejection: Rejection,
) -> Rejected {
    let remote = stored_remote(cx);
    let mut record = vec![cx.event(EventKind::JoinDenied {
        room: room.clone(),
        principal: principal.clone(),
        address: address.clone(),
        reason,
        remote: remote.clone(),
    })];
    record.extend(autoban::on_denial(cx, address, remote.as_ref(), reason));
    Rejected { rejection, record }
}

/// The actor's remote address as it may be stored (and as autobans key it).
fn stored_remote(cx: &Cx<'_>) -> Option<String> {
    let policy = &cx.state.policy;
    cx.ctx
        .origin
        .remote_addr
        .as_deref()
        .map(|r| stored_remote_addr(r, policy.obfuscate_ips, &cx.ctx.ip_key))
}

/// A verifier that only notes that it was asked.
#[derive(Default)]
struct Probe(AtomicBool);

impl PasswordVerifier for Probe {
    fn verify(&self, _: &str, _: &str) -> bool {
        self.0.store(true, Ordering::Relaxed);
        false
    }
}

/// Whether deciding `cmd` (a room creation) would check the server password: the
/// service verifies the attempt off the decider thread only then, so a creation
/// refused anyway (a taken name, a ban, guests not allowed) costs no argon2. It runs the
/// creation's own decision, so the two cannot disagree.
pub fn create_checks_server_password(state: &State, ctx: &Context, cmd: &Command) -> bool {
    if !matches!(cmd, Command::CreateRoom { .. }) || state.policy.server_password_hash.is_none() {
        return false;
    }
    let probe = Probe::default();
    // The outcome is irrelevant; whether the password was asked for is the answer.
    let _ = super::decide(state, cmd, ctx, &probe);
    probe.0.load(Ordering::Relaxed)
}

/// A name for a new room: the room name rule, and no room of the same name, where names
/// that differ only by case or Unicode compatibility form are the same name
/// (`room.exists`, naming the room that has it), nor one that looks like it or mixes
/// look-alike scripts within a word (`name.confusable`).
pub(super) fn check_new_name(cx: &Cx<'_>, room: &RoomName) -> Result<(), Rejection> {
    let st = cx.state;
    st.policy
        .room_name_rule
        .check("room name", room.as_str())
        .map_err(|e| Rejection::InvalidInput {
            field: "room",
            reason: e.to_string(),
        })?;
    if st.rooms.contains_key(room) {
        return Err(Rejection::RoomExists(room.clone()));
    }
    let like = st.rooms_like(room);
    let folded = fold_name(room.as_str());
    if let Some(same) = like.iter().find(|r| fold_name(r.as_str()) == folded) {
        return Err(Rejection::RoomExists((*same).clone()));
    }
    if let Some(other) = like.first() {
        return Err(Rejection::ConfusableName {
            field: "room",
            existing: Some(other.to_string()),
        });
    }
    if text::mixed_script_word(room.as_str()).is_some() {
        return Err(Rejection::ConfusableName {
            field: "room",
            existing: None,
        });
    }
    Ok(())
}

/// Whether the room's name is, or looks like, one of the common names.
fn is_common_name(cx: &Cx<'_>, room: &RoomName) -> bool {
    let keys = room.keys();
    cx.state.policy.is_common_name(room.as_str())
        || cx
            .state
            .policy
            .common_names
            .iter()
            .any(|c| name_keys(c.trim()).iter().any(|k| keys.contains(k)))
}

fn sanitize(cx: &Cx<'_>, text: &str) -> String {
    if cx.state.policy.allow_html {
        text.to_owned()
    } else {
        super::strip_html(text)
    }
}

fn check_welcome(cx: &Cx<'_>, text: Option<&str>) -> Result<(), Rejection> {
    check_text(
        "welcome_text",
        text,
        cx.state.policy.text_message_length,
        TextKind::Body,
    )
}

/// The room's title: one line, at most [`MAX_ROOM_TITLE_LEN`] characters (or the
/// policy's text limit, if smaller).
fn check_title(cx: &Cx<'_>, text: Option<&str>) -> Result<(), Rejection> {
    let max = MAX_ROOM_TITLE_LEN.min(cx.state.policy.text_message_length);
    check_text("name", text, max, TextKind::Line)
}

/// The room's description: bounded and checked as the welcome text is.
fn check_description(cx: &Cx<'_>, text: Option<&str>) -> Result<(), Rejection> {
    check_text(
        "description",
        text,
        cx.state.policy.text_message_length,
        TextKind::Body,
    )
}

/// Optional free text as the room keeps it: sanitized as the welcome text is, and
/// `None` when nothing but white space is left (setting a blank title, description or
/// subject clears it).
fn sanitize_opt(cx: &Cx<'_>, text: Option<&str>) -> Option<String> {
    text.map(|t| sanitize(cx, t))
        .filter(|t| !t.trim().is_empty())
}

/// XEP-0045's subject change. The actor must be present in the room (an operator need
/// not be) and be a moderator, or a member where the room lets members change it; the
/// subject is multi-line text like the welcome text, bounded by [`MAX_SUBJECT_LEN`]
/// (or the policy's text limit, if smaller). Setting the subject the room has changes
/// nothing; `None` or blank text clears it.
fn set_subject(cx: &Cx<'_>, name: &RoomName, subject: Option<&str>) -> Decision {
    let r = cx.room(name)?;
    let (by, address) = if cx.ctx.actor.is_privileged() {
        (None, None)
    } else {
        let (address, me) = cx.person()?;
        if !r.members.contains_key(&me) {
            return Err(Rejection::NotMember.into());
        }
        (Some(me), Some(address.clone()))
    };
    let least = if r.config.members_change_subject {
        Rank::Member
    } else {
        Rank::Moderator
    };
    if cx.actor_rank(name, r) < least {
        return Err(Rejection::SubjectNotAllowed.into());
    }
    let max = MAX_SUBJECT_LEN.min(cx.state.policy.text_message_length);
    check_text("subject", subject, max, TextKind::Body)?;
    let subject = sanitize_opt(cx, subject);
    if r.subject.as_ref().map(|s| s.text.as_str()) == subject.as_deref() {
        return Ok(vec![]);
    }
    Ok(vec![cx.event(EventKind::SubjectChanged {
        room: name.clone(),
        subject,
        by,
        address,
    })])
}

fn check_max_members(cx: &Cx<'_>, max: Option<u32>, present: usize) -> Result<(), Rejection> {
    let cap = cx.state.policy.max_members;
    let present = u32::try_from(present).unwrap_or(u32::MAX);
    match max {
        Some(m) if m == 0 || m > cap || m < present => Err(Rejection::MaxMembers {
            requested: m,
            cap,
            present,
        }),
        _ => Ok(()),
    }
}

/// One `room_modify` event per effective change; no-ops are dropped.
fn configure(cx: &Cx<'_>, room: &RoomName, changes: &[RoomChange]) -> Decision {
    let r = cx.room(room)?;
    let mut config = r.config.clone();
    let mut events = Vec::new();
    for change in changes {
        let change = match change {
            RoomChange::MaxMembers(m) => {
                check_max_members(cx, *m, r.members.len())?;
                change.clone()
            }
            RoomChange::WelcomeText(t) => {
                check_welcome(cx, t.as_deref())?;
                RoomChange::WelcomeText(t.as_deref().map(|t| sanitize(cx, t)))
            }
            RoomChange::Name(t) => {
                check_title(cx, t.as_deref())?;
                RoomChange::Name(sanitize_opt(cx, t.as_deref()))
            }
            RoomChange::Description(t) => {
                check_description(cx, t.as_deref())?;
                RoomChange::Description(sanitize_opt(cx, t.as_deref()))
            }
            RoomChange::AccessPassword(Some(h)) => {
                check_hash("access_password_hash", h)?;
                change.clone()
            }
            // The rule of rooms created before the setting: kept, never chosen.
            RoomChange::Invite(InviteRight::MembersUnlessPrivate) => {
                return Err(Rejection::InvalidInput {
                    field: "invite",
                    reason: "members_unless_private is only kept by rooms created before the setting existed; choose members, moderators or owners".into(),
                }
                .into())
            }
            other => other.clone(),
        };
        if change.is_noop(&config) {
            continue;
        }
        change.apply(&mut config);
        events.push(cx.event(EventKind::RoomModified {
            room: room.clone(),
            change,
        }));
    }
    Ok(events)
}

/// Delete a room and its sub-rooms, deepest first, so every stream gets its own
/// `room_delete`.
pub(super) fn destroy(cx: &Cx<'_>, room: &RoomName, reason: DeleteReason) -> Vec<Event> {
    let mut order = Vec::new();
    let mut stack = vec![(room.clone(), reason)];
    while let Some((name, why)) = stack.pop() {
        if let Some(r) = cx.state.rooms.get(&name) {
            for c in &r.children {
                stack.push((c.clone(), DeleteReason::ParentDeleted));
            }
            order.push((name, why));
        }
    }
    // A room that goes stops its recording first, so every participant sees it end.
    let mut events = Vec::new();
    for (room, reason) in order.into_iter().rev() {
        if let Some(active) = cx.state.rooms.get(&room).and_then(|r| r.recording.as_ref()) {
            events.push(cx.event(EventKind::RecordingStopped {
                room: room.clone(),
                recording: active.id.clone(),
            }));
        }
        events.push(cx.event(EventKind::RoomDeleted { room, reason }));
    }
    events
}
