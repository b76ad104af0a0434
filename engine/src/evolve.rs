//! `evolve`: apply one event to the state. Infallible and total.
//!
//! Replay is `evolve` folded over the journal, so it must accept *any* sequence of
//! events, including ones `decide` would never produce (a join into a room that no longer
//! exists, a duplicate create): such events are ignored or applied as far as they make
//! sense, never panicking. Consequences that a fact implies (a ban ends the subject's
//! sessions and strips moderation) are applied here, so they hold on replay even if the
//! deciding code changes later.

use chrono::Duration;

use crate::event::{AutobanKey, Event, EventKind, InvalidationReason};
use crate::ids::{AccountId, Address, Principal, RoomName};
use crate::model::{BanScope, Role};
use crate::state::{
    remove_where, update_where, AddressBan, Ban, Gate, Invitation, InvitationState, Knock, Member,
    Presence, Recording, Room, SipCredential, State, Subject,
};

/// Apply `event` to `state`.
pub fn evolve(state: &mut State, event: &Event) {
    let at = event.at;
    use EventKind as E;
    match &event.kind {
        // ---- accounts ----
        E::AccountCreated {
            account,
            display_name,
        } => {
            state
                .accounts
                .entry(account.clone())
                .or_insert_with(|| crate::state::Account {
                    display_name: display_name.clone(),
                    enabled: true,
                    ..Default::default()
                });
        }
        E::IdentityLinked { account, address } => {
            if !state.accounts.contains_key(account) {
                return;
            }
            if let Some(prev) = state.identities.insert(address.clone(), account.clone()) {
                if &prev != account {
                    if let Some(acc) = state.accounts.get_mut(&prev) {
                        acc.identities.remove(address);
                    }
                }
            }
            // A credential belongs to the link it was set on, never to a new owner.
            if state
                .sip_credentials
                .get(address)
                .is_some_and(|c| &c.account != account)
            {
                state.sip_credentials.remove(address);
            }
            if let Some(acc) = state.accounts.get_mut(account) {
                acc.identities.insert(address.clone());
            }
            let to = Principal::Account(account.clone());
            rekey(state, &Principal::Address(address.clone()), &to);
            enforce_bans(state, &to);
        }
        E::IdentityUnlinked { account, address } => {
            if state.identities.get(address) == Some(account) {
                state.identities.remove(address);
                state.sip_credentials.remove(address);
            }
            if let Some(acc) = state.accounts.get_mut(account) {
                acc.identities.remove(address);
            }
        }
        E::SipCredentialSet {
            account,
            address,
            realm,
            ha1_md5,
            ha1_sha256,
        } => {
            // Only on a live link (decide links first, in the same batch).
            if state.identities.get(address) == Some(account) {
                state.sip_credentials.insert(
                    address.clone(),
                    SipCredential {
                        account: account.clone(),
                        realm: realm.clone(),
                        ha1_md5: ha1_md5.clone(),
                        ha1_sha256: ha1_sha256.clone(),
                    },
                );
            }
        }
        E::SipCredentialCleared { account, address } => {
            if state
                .sip_credentials
                .get(address)
                .is_some_and(|c| &c.account == account)
            {
                state.sip_credentials.remove(address);
            }
        }
        E::DisplayNameChanged {
            account,
            display_name,
        } => {
            if let Some(acc) = state.accounts.get_mut(account) {
                acc.display_name.clone_from(display_name);
            }
        }
        E::AccountEnabled { account } => {
            if let Some(acc) = state.accounts.get_mut(account) {
                acc.enabled = true;
            }
        }
        E::AccountDisabled { account } => {
            if let Some(acc) = state.accounts.get_mut(account) {
                acc.enabled = false;
            }
            let p = Principal::Account(account.clone());
            let State { rooms, online, .. } = state;
            let touched = |_: &RoomName, room: &Room| {
                room.members.contains_key(&p)
                    || room.lobby.contains_key(&p)
                    || room.account.as_ref() == Some(account)
            };
            update_where(rooms, touched, |room| {
                remove_member(online, room, &p);
                room.lobby.remove(&p);
                // Jami: a disabled account is unreachable, so its conference ends.
                if room.account.as_ref() == Some(account) {
                    let everyone: Vec<Principal> = room.members.keys().cloned().collect();
                    for q in everyone {
                        remove_member(online, room, &q);
                    }
                    room.lobby.clear();
                }
            });
        }
        E::ContactAllowed { account, contact } => {
            if let Some(acc) = state.accounts.get_mut(account) {
                acc.contacts_restricted = true;
                acc.allowed_contacts.insert(contact.clone());
            }
        }
        E::ContactDisallowed { account, contact } => {
            if let Some(acc) = state.accounts.get_mut(account) {
                acc.allowed_contacts.remove(contact);
            }
        }
        E::ContactsOpened { account } => {
            if let Some(acc) = state.accounts.get_mut(account) {
                acc.contacts_restricted = false;
                acc.allowed_contacts.clear();
            }
        }
        E::ModeratorAdded { account, moderator } => {
            if let Some(acc) = state.accounts.get_mut(account) {
                acc.moderators.insert(moderator.clone());
            }
        }
        E::ModeratorRemoved { account, moderator } => {
            if let Some(acc) = state.accounts.get_mut(account) {
                acc.moderators.remove(moderator);
            }
        }
        E::RendezvousChanged { account, room } => set_rendezvous(state, account, room.as_ref()),

        // ---- rooms ----
        E::RoomCreated {
            room,
            parent,
            owner,
            config,
        } => {
            if state.rooms.contains_key(room) {
                return;
            }
            let parent = parent.as_ref().filter(|p| state.rooms.contains_key(*p));
            let depth = parent
                .and_then(|p| state.rooms.get(p))
                .map_or(0, |p| p.depth.saturating_add(1));
            let mut r = Room::new(parent.cloned(), depth, at, config.clone());
            r.affiliations.insert(owner.clone(), Role::Owner);
            if let Some(p) = parent.and_then(|p| state.rooms.get_mut(p)) {
                p.children.insert(room.clone());
            }
            state.rooms.insert(room.clone(), r);
            state.index_room(room);
        }
        E::RoomModified { room, change } => {
            if let Some(r) = state.rooms.get_mut(room) {
                change.apply(&mut r.config);
                r.last_activity = at;
            }
        }
        E::RoomReserved {
            room,
            owner_password_hash,
        } => {
            if let Some(r) = state.rooms.get_mut(room) {
                r.reserved = Some(owner_password_hash.clone());
                r.last_activity = at;
            }
        }
        E::RoomUnreserved { room } => {
            if let Some(r) = state.rooms.get_mut(room) {
                r.reserved = None;
                r.last_activity = at;
            }
        }
        E::RoomDeleted { room, .. } | E::RoomExpired { room, .. } => {
            remove_room_tree(state, room, at)
        }
        E::SubjectChanged {
            room,
            subject,
            address,
            ..
        } => {
            if let Some(r) = state.rooms.get_mut(room) {
                r.subject = subject.as_ref().map(|text| Subject {
                    text: text.clone(),
                    by: address.clone(),
                    at,
                });
                r.last_activity = at;
            }
        }

        // ---- membership ----
        E::Joined {
            room,
            principal,
            address,
            session,
            gateway,
            remote,
            ..
        } => {
            let State {
                rooms,
                online,
                recordings,
                ..
            } = state;
            let Some(r) = rooms.get_mut(room) else { return };
            // A session id is unique in a room: a stale holder loses it.
            if let Some(holder) = r.session_holder(session).cloned() {
                remove_session(online, r, &holder, session);
            }
            r.lobby.remove(principal);
            let member = r.members.entry(principal.clone()).or_default();
            member.sessions.insert(
                session.clone(),
                Presence {
                    address: address.clone(),
                    gateway: gateway.clone(),
                    joined_at: at,
                    remote: remote.clone(),
                    lease_until: None,
                },
            );
            *online = online.saturating_add(1);
            r.last_activity = at;
            // Whoever is present while the room records takes part in the recording.
            if let Some(rec) = r.recording.as_ref().and_then(|a| recordings.get_mut(&a.id)) {
                rec.participants.insert(principal.clone());
                rec.participants.insert(Principal::Address(address.clone()));
            }
        }
        E::SessionRenewed {
            room,
            session,
            until,
            ..
        } => {
            let presence = state.rooms.get_mut(room).and_then(|r| {
                let holder = r.session_holder(session)?.clone();
                r.members.get_mut(&holder)?.sessions.get_mut(session)
            });
            if let Some(p) = presence {
                p.lease_until = Some(*until);
            }
        }
        E::Left {
            room,
            principal,
            session,
            ..
        } => {
            let State { rooms, online, .. } = state;
            if let Some(r) = rooms.get_mut(room) {
                let holder = r
                    .session_holder(session)
                    .cloned()
                    .unwrap_or_else(|| principal.clone());
                remove_session(online, r, &holder, session);
                r.last_activity = at;
            }
        }
        E::JoinDenied {
            address,
            reason,
            remote,
            ..
        } => {
            if !reason.counts_for_autoban() {
                return;
            }
            let window = i64::from(state.policy.autoban.timeframe_secs);
            let cutoff = at - Duration::seconds(window);
            remove_where(&mut state.failures, |_, v| v.iter().all(|t| *t <= cutoff));
            update_where(
                &mut state.failures,
                |_, v| v.iter().any(|t| *t <= cutoff),
                |v| v.retain(|t| *t > cutoff),
            );
            let mut keys = vec![AutobanKey::Identity(address.clone())];
            if let Some(r) = remote {
                keys.push(AutobanKey::Remote(r.clone()));
            }
            for k in keys {
                let v = state.failures.entry(k).or_default();
                v.push(at);
                // Bound memory even under a flood of events with the same time.
                if v.len() > 1024 {
                    let excess = v.len() - 1024;
                    v.drain(..excess);
                }
            }
        }

        // ---- roles ----
        E::RoleChanged {
            room, subject, to, ..
        } => {
            if let Some(r) = state.rooms.get_mut(room) {
                match to {
                    Some(role) => {
                        r.affiliations.insert(subject.clone(), *role);
                    }
                    None => {
                        r.affiliations.remove(subject);
                    }
                }
                r.last_activity = at;
            }
        }

        // ---- invitations ----
        E::InvitationIssued {
            room,
            invitation,
            invitee,
            expires_at,
            single_use,
            secret_digest,
        } => {
            if let Some(r) = state.rooms.get_mut(room) {
                r.invitations
                    .entry(invitation.clone())
                    .or_insert(Invitation {
                        invitee: invitee.clone(),
                        by: event.actor.clone(),
                        issued_at: at,
                        expires_at: *expires_at,
                        single_use: *single_use,
                        state: InvitationState::Pending,
                        secret_digest: *secret_digest,
                    });
                r.last_activity = at;
            }
        }
        E::InvitationAnswered {
            room,
            invitation,
            accepted,
            ..
        } => {
            if let Some(inv) = invitation_mut(state, room, invitation) {
                inv.state = if *accepted {
                    InvitationState::Accepted
                } else {
                    InvitationState::Denied
                };
            }
        }
        E::InvitationInvalidated {
            room,
            invitation,
            reason,
        } => {
            if let Some(inv) = invitation_mut(state, room, invitation) {
                inv.state = match reason {
                    InvalidationReason::Used => InvitationState::Used,
                    InvalidationReason::Revoked => InvitationState::Revoked,
                    InvalidationReason::Expired => InvitationState::Expired,
                };
            }
        }

        // ---- moderation ----
        E::AudioMuted {
            room,
            subject,
            by_moderator,
        } => {
            if let Some(m) = member_mut(state, room, subject) {
                m.audio = if *by_moderator {
                    Gate::Moderator
                } else {
                    Gate::SelfClosed
                };
            }
        }
        E::AudioUnmuted { room, subject } => {
            if let Some(m) = member_mut(state, room, subject) {
                m.audio = Gate::Open;
            }
        }
        E::VideoPaused {
            room,
            subject,
            by_moderator,
        } => {
            if let Some(m) = member_mut(state, room, subject) {
                m.video = if *by_moderator {
                    Gate::Moderator
                } else {
                    Gate::SelfClosed
                };
            }
        }
        E::VideoResumed { room, subject } => {
            if let Some(m) = member_mut(state, room, subject) {
                m.video = Gate::Open;
            }
        }
        E::Kicked { room, subject, .. } => {
            let State { rooms, online, .. } = state;
            if let Some(r) = rooms.get_mut(room) {
                remove_member(online, r, subject);
                r.lobby.remove(subject);
                r.last_activity = at;
            }
        }
        E::Banned {
            scope,
            subject,
            reason,
            until,
        } => {
            let ban = Ban {
                reason: reason.clone(),
                by: event.actor.clone(),
                at,
                until: *until,
            };
            apply_ban(state, scope, subject, ban);
        }
        E::Unbanned { scope, subject, .. } => match scope {
            BanScope::Room(r) => {
                if let Some(r) = state.rooms.get_mut(r) {
                    r.bans.remove(subject);
                }
            }
            BanScope::Account(a) => {
                if let Some(a) = state.accounts.get_mut(a) {
                    a.bans.remove(subject);
                }
            }
            BanScope::Server => {
                state.server_bans.remove(subject);
            }
        },
        E::AddressBanned {
            scope,
            id,
            remote,
            subject,
            reason,
            until,
        } => {
            let ban = AddressBan {
                id: id.clone(),
                subject: subject.clone(),
                reason: reason.clone(),
                by: event.actor.clone(),
                at,
                until: *until,
            };
            apply_address_ban(state, scope, remote, ban);
        }
        E::AddressUnbanned { scope, remote, .. } => match scope {
            BanScope::Room(r) => {
                if let Some(r) = state.rooms.get_mut(r) {
                    r.address_bans.remove(remote);
                }
            }
            BanScope::Account(a) => {
                if let Some(a) = state.accounts.get_mut(a) {
                    a.address_bans.remove(remote);
                }
            }
            BanScope::Server => {
                state.server_address_bans.remove(remote);
            }
        },
        E::Knocked {
            room,
            principal,
            address,
            session,
            gateway,
        } => {
            if let Some(r) = state.rooms.get_mut(room) {
                r.lobby.insert(
                    principal.clone(),
                    Knock {
                        address: address.clone(),
                        session: session.clone(),
                        gateway: gateway.clone(),
                        at,
                    },
                );
            }
        }
        E::KnockAdmitted { room, principal } | E::KnockRejected { room, principal } => {
            if let Some(r) = state.rooms.get_mut(room) {
                r.lobby.remove(principal);
            }
        }
        E::HandRaised { room, subject } => {
            if let Some(m) = member_mut(state, room, subject) {
                m.hand_raised = true;
            }
        }
        E::HandLowered { room, subject } => {
            if let Some(m) = member_mut(state, room, subject) {
                m.hand_raised = false;
            }
        }
        E::ActionDenied { .. } => {}

        // ---- autoban ----
        E::AutobanApplied {
            key,
            until,
            ends_sessions,
            ..
        } => {
            state.autobans.insert(key.clone(), *until);
            state.failures.remove(key);
            if !*ends_sessions {
                return;
            }
            let State { rooms, online, .. } = state;
            let touched = |_: &RoomName, r: &Room| {
                r.members
                    .values()
                    .any(|m| m.sessions.values().any(|s| matches_key(key, s)))
                    || matches!(key, AutobanKey::Identity(a) if r.lobby.values().any(|k| &k.address == a))
            };
            update_where(rooms, touched, |r| {
                let hit: Vec<(Principal, crate::ids::SessionId)> = r
                    .members
                    .iter()
                    .flat_map(|(p, m)| {
                        m.sessions
                            .iter()
                            .filter(|(_, s)| matches_key(key, s))
                            .map(move |(sid, _)| (p.clone(), sid.clone()))
                    })
                    .collect();
                for (p, sid) in hit {
                    remove_session(online, r, &p, &sid);
                }
                if let AutobanKey::Identity(a) = key {
                    remove_where(&mut r.lobby, |_, k| &k.address == a);
                }
            });
        }
        E::AutobanLifted { key } => {
            state.autobans.remove(key);
        }

        // ---- chat ----
        E::MessagePosted { room, .. } => {
            if let Some(r) = state.rooms.get_mut(room) {
                r.last_activity = at;
            }
        }

        // ---- recording ----
        E::RecordingStarted {
            room,
            recording,
            video,
            by,
        } => {
            let Some(r) = state.rooms.get_mut(room) else {
                return;
            };
            if r.recording.is_some() || state.recordings.contains_key(recording) {
                return;
            }
            r.recording = Some(crate::state::ActiveRecording {
                id: recording.clone(),
                video: *video,
            });
            r.last_activity = at;
            let mut participants = std::collections::BTreeSet::new();
            for (p, m) in r.members.iter() {
                participants.insert(p.clone());
                for presence in m.sessions.values() {
                    participants.insert(Principal::Address(presence.address.clone()));
                }
            }
            state.recordings.insert(
                recording.clone(),
                Recording {
                    room: room.clone(),
                    started_at: at,
                    stopped_at: None,
                    video: *video,
                    by: by.clone(),
                    files: Vec::new(),
                    erased: None,
                    participants,
                },
            );
        }
        E::RecordingStopped { room, recording } => {
            if let Some(r) = state.rooms.get_mut(room) {
                if r.recording.as_ref().is_some_and(|a| &a.id == recording) {
                    r.recording = None;
                    r.last_activity = at;
                }
            }
            if let Some(rec) = state.recordings.get_mut(recording) {
                rec.stopped_at.get_or_insert(at);
            }
        }
        E::RecordingFileClosed {
            recording, file, ..
        } => {
            if let Some(rec) = state.recordings.get_mut(recording) {
                // A file stated again (a retried command) replaces its first statement.
                match rec.files.iter_mut().find(|f| f.name == file.name) {
                    Some(f) => *f = file.clone(),
                    None => rec.files.push(file.clone()),
                }
            }
        }
        E::RecordingErased {
            recording, action, ..
        } => {
            if let Some(rec) = state.recordings.get_mut(recording) {
                rec.erased.get_or_insert(*action);
            }
        }

        // ---- policy ----
        E::PolicyChanged { change } => {
            use crate::model::PolicyChange as P;
            match change {
                P::ServerPassword(h) => state.policy.server_password_hash.clone_from(h),
                P::LogDays(d) => state.policy.log_days = *d,
                P::ObfuscateIps(b) => state.policy.obfuscate_ips = *b,
                P::WelcomeText(t) => state.policy.welcome_text.clone_from(t),
            }
        }

        // ---- retention: a record of what was purged; no state depends on it ----
        // Erasure of a person also removes the personal content the state holds (the
        // account's display name), so neither the live engine nor a checkpoint written
        // after this keeps what the journal no longer has.
        E::ContentPurged {
            subject: Some(subject),
            ..
        } => {
            let account = match subject {
                Principal::Account(a) => Some(a.clone()),
                Principal::Address(addr) => state.identities.get(addr).cloned(),
            };
            // Erasure also ends the person's SIP credentials (their journaled HA1
            // values are payload, not purgeable content: see docs/api.md).
            let erased: Vec<Address> = account
                .as_ref()
                .and_then(|a| state.accounts.get(a))
                .map(|acc| acc.identities.iter().cloned().collect())
                .unwrap_or_default();
            for addr in &erased {
                state.sip_credentials.remove(addr);
            }
            if let Some(acc) = account.and_then(|a| state.accounts.get_mut(&a)) {
                acc.display_name = None;
            }
        }
        E::ContentPurged { subject: None, .. } => {}
    }
}

fn matches_key(key: &AutobanKey, p: &Presence) -> bool {
    match key {
        AutobanKey::Identity(a) => &p.address == a,
        AutobanKey::Remote(r) => p.remote.as_ref() == Some(r),
    }
}

fn invitation_mut<'a>(
    state: &'a mut State,
    room: &RoomName,
    id: &crate::ids::InvitationId,
) -> Option<&'a mut Invitation> {
    state.rooms.get_mut(room)?.invitations.get_mut(id)
}

fn member_mut<'a>(state: &'a mut State, room: &RoomName, p: &Principal) -> Option<&'a mut Member> {
    state.rooms.get_mut(room)?.members.get_mut(p)
}

fn remove_session(
    online: &mut u64,
    room: &mut Room,
    holder: &Principal,
    session: &crate::ids::SessionId,
) {
    if let Some(m) = room.members.get_mut(holder) {
        if m.sessions.remove(session).is_some() {
            *online = online.saturating_sub(1);
        }
        if m.sessions.is_empty() {
            room.members.remove(holder);
        }
    }
}

fn remove_member(online: &mut u64, room: &mut Room, p: &Principal) {
    if let Some(m) = room.members.remove(p) {
        *online = online.saturating_sub(m.sessions.len() as u64);
    }
}

/// A ban strips moderation rights (Jami); the last owner keeps ownership so that the
/// room is never ownerless (they cannot use it while banned).
fn strip_moderation(room: &mut Room, p: &Principal) {
    let owners = room.owner_count();
    if let Some(role) = room.affiliations.get_mut(p) {
        match role {
            Role::Moderator => *role = Role::Member,
            Role::Owner if owners > 1 => *role = Role::Member,
            _ => {}
        }
    }
}

/// Whether `p` is anywhere `evict` would change something: present, waiting, or holding
/// a role `strip_moderation` may lower.
fn holds(room: &Room, p: &Principal) -> bool {
    room.members.contains_key(p)
        || room.lobby.contains_key(p)
        || matches!(
            room.affiliations.get(p),
            Some(Role::Moderator | Role::Owner)
        )
}

/// Whether the person an address ban was made from is present or waiting in `room`.
fn present(room: &Room, subject: &Option<Principal>) -> bool {
    subject
        .as_ref()
        .is_some_and(|p| room.members.contains_key(p) || room.lobby.contains_key(p))
}

fn evict(online: &mut u64, room: &mut Room, p: &Principal) {
    remove_member(online, room, p);
    room.lobby.remove(p);
    strip_moderation(room, p);
}

fn apply_ban(state: &mut State, scope: &BanScope, subject: &Principal, ban: Ban) {
    let State {
        rooms,
        online,
        accounts,
        server_bans,
        ..
    } = state;
    match scope {
        BanScope::Room(name) => {
            if let Some(r) = rooms.get_mut(name) {
                r.bans.insert(subject.clone(), ban);
                evict(online, r, subject);
            }
        }
        BanScope::Account(a) => {
            let Some(acc) = accounts.get_mut(a) else {
                return;
            };
            acc.bans.insert(subject.clone(), ban);
            acc.moderators.remove(subject);
            let touched =
                |_: &RoomName, r: &Room| r.account.as_ref() == Some(a) && holds(r, subject);
            update_where(rooms, touched, |r| evict(online, r, subject));
        }
        BanScope::Server => {
            server_bans.insert(subject.clone(), ban);
            update_where(
                accounts,
                |_, acc| acc.moderators.contains(subject),
                |acc| {
                    acc.moderators.remove(subject);
                },
            );
            update_where(
                rooms,
                |_, r| holds(r, subject),
                |r| evict(online, r, subject),
            );
        }
    }
}

/// An address ban is kept in its scope; the person it was made from loses their
/// sessions (and lobby place) there, as with a ban, but keeps their roles: the ban is
/// on the address, not on them. Nobody else's live session is ended, whatever address
/// it came from (see `EventKind::AddressBanned`).
fn apply_address_ban(state: &mut State, scope: &BanScope, remote: &str, ban: AddressBan) {
    let subject = ban.subject.clone();
    let State {
        rooms,
        online,
        accounts,
        server_address_bans,
        ..
    } = state;
    let mut leave = |r: &mut Room| {
        if let Some(p) = &subject {
            remove_member(online, r, p);
            r.lobby.remove(p);
        }
    };
    match scope {
        BanScope::Room(name) => {
            if let Some(r) = rooms.get_mut(name) {
                r.address_bans.insert(remote.to_owned(), ban);
                leave(r);
            }
        }
        BanScope::Account(a) => {
            let Some(acc) = accounts.get_mut(a) else {
                return;
            };
            acc.address_bans.insert(remote.to_owned(), ban);
            let touched =
                |_: &RoomName, r: &Room| r.account.as_ref() == Some(a) && present(r, &subject);
            update_where(rooms, touched, &mut leave);
        }
        BanScope::Server => {
            server_address_bans.insert(remote.to_owned(), ban);
            update_where(rooms, |_, r| present(r, &subject), &mut leave);
        }
    }
}

fn set_rendezvous(state: &mut State, account: &AccountId, room: Option<&RoomName>) {
    let Some(acc) = state.accounts.get_mut(account) else {
        return;
    };
    let old = acc.rendezvous.take();
    acc.rendezvous = room.filter(|r| state.rooms.contains_key(*r)).cloned();
    let new = acc.rendezvous.clone();
    if let Some(old) = old.and_then(|o| state.rooms.get_mut(&o)) {
        if old.account.as_ref() == Some(account) {
            old.account = None;
        }
    }
    if let Some(r) = new.and_then(|n| state.rooms.get_mut(&n)) {
        // A room serves one account; a previous binding is replaced.
        if let Some(prev) = r.account.replace(account.clone()) {
            if &prev != account {
                if let Some(p) = state.accounts.get_mut(&prev) {
                    p.rendezvous = None;
                }
            }
        }
    }
}

/// Remove a room and everything nested in it.
fn remove_room_tree(state: &mut State, name: &RoomName, at: chrono::DateTime<chrono::Utc>) {
    let mut stack = vec![name.clone()];
    while let Some(n) = stack.pop() {
        let Some(room) = state.rooms.remove(&n) else {
            continue;
        };
        // A room that goes ends its recording (decide journals `recording_stopped`
        // first when it destroys a room; an expiry, or an older journal, ends it here).
        if let Some(rec) = room
            .recording
            .as_ref()
            .and_then(|a| state.recordings.get_mut(&a.id))
        {
            rec.stopped_at.get_or_insert(at);
        }
        state.unindex_room(&n);
        state.online = state.online.saturating_sub(room.session_count() as u64);
        stack.extend(room.children.iter().cloned());
        if let Some(p) = room.parent.as_ref().and_then(|p| state.rooms.get_mut(p)) {
            p.children.remove(&n);
        }
        if let Some(acc) = room
            .account
            .as_ref()
            .and_then(|a| state.accounts.get_mut(a))
        {
            if acc.rendezvous.as_ref() == Some(&n) {
                acc.rendezvous = None;
            }
        }
    }
}

/// After a merge, a person may be present where a ban (now keyed to them) applies.
/// Any ban record counts (expired ones are lifted by `decide` before a join).
fn enforce_bans(state: &mut State, p: &Principal) {
    let server = state.server_bans.contains_key(p);
    let State {
        rooms,
        online,
        accounts,
        ..
    } = state;
    let touched = |_: &RoomName, room: &Room| {
        let account_ban = room
            .account
            .as_ref()
            .and_then(|a| accounts.get(a))
            .is_some_and(|a| a.bans.contains_key(p));
        let room_ban = room.bans.contains_key(p);
        (server || account_ban || room_ban) && holds(room, p)
    };
    update_where(rooms, touched, |room| evict(online, room, p));
}

/// Move everything keyed by `from` onto `to` (an identity being linked to an account).
fn rekey(state: &mut State, from: &Principal, to: &Principal) {
    if from == to {
        return;
    }
    let touched = |_: &RoomName, room: &Room| {
        room.affiliations.contains_key(from)
            || room.members.contains_key(from)
            || room.bans.contains_key(from)
            || room.lobby.contains_key(from)
    };
    update_where(&mut state.rooms, touched, |room| {
        if let Some(role) = room.affiliations.remove(from) {
            let e = room.affiliations.entry(to.clone()).or_insert(role);
            *e = (*e).max(role);
        }
        if let Some(m) = room.members.remove(from) {
            let e = room.members.entry(to.clone()).or_default();
            e.sessions.extend(m.sessions);
            e.hand_raised |= m.hand_raised;
            if e.audio == Gate::Open {
                e.audio = m.audio;
            }
            if e.video == Gate::Open {
                e.video = m.video;
            }
        }
        if let Some(b) = room.bans.remove(from) {
            room.bans.entry(to.clone()).or_insert(b);
        }
        if let Some(k) = room.lobby.remove(from) {
            room.lobby.entry(to.clone()).or_insert(k);
        }
    });
    if let Some(b) = state.server_bans.remove(from) {
        state.server_bans.entry(to.clone()).or_insert(b);
    }
    let touched = |_: &AccountId, acc: &crate::state::Account| {
        acc.allowed_contacts.contains(from)
            || acc.moderators.contains(from)
            || acc.bans.contains_key(from)
    };
    update_where(&mut state.accounts, touched, |acc| {
        if acc.allowed_contacts.remove(from) {
            acc.allowed_contacts.insert(to.clone());
        }
        if acc.moderators.remove(from) {
            acc.moderators.insert(to.clone());
        }
        if let Some(b) = acc.bans.remove(from) {
            acc.bans.entry(to.clone()).or_insert(b);
        }
    });
}

/// Fold events into a state: what replay does.
pub fn replay<'a>(mut state: State, events: impl IntoIterator<Item = &'a Event>) -> State {
    for e in events {
        evolve(&mut state, e);
    }
    state
}
