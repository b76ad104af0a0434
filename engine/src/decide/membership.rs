//! Membership: join (with password, invitation, or by affiliation), leave, call an
//! account (rendezvous), and the lobby (knock / admit / reject).
//!
//! A refused join is both an answer and a fact: every denial below returns a
//! [`Rejected`] whose record holds the `JoinDenied` event (plus any autoban it
//! triggers, plus the lifting of bans found expired on the way).

use super::{address_bans, autoban, invitations, rooms, Cx, Decision};
use crate::command::{Credentials, Secret, SecretDigest};
use crate::event::{
    AutobanKey, DeleteReason, DenyReason, Event, EventKind, InvalidationReason, LeaveReason,
    RoleVia,
};
use crate::ids::{AccountId, Address, InvitationId, Principal, RoomName, Scheme, SessionId};
use crate::model::{PasswordKind, Role};
use crate::policy::stored_remote_addr;
use crate::rejection::{Rejected, Rejection};
use crate::state::{Invitation, Room};

/// One admission attempt: who, where, from which address, and the facts found on the
/// way (expired bans to lift) that must be journaled whatever the outcome.
struct Attempt<'a, 'c> {
    cx: &'c Cx<'a>,
    name: &'c RoomName,
    room: &'a Room,
    address: &'a Address,
    principal: Principal,
    remote: Option<String>,
    lifts: Vec<Event>,
}

impl<'a, 'c> Attempt<'a, 'c> {
    fn new(cx: &'c Cx<'a>, name: &'c RoomName) -> Result<Self, Rejection> {
        let (address, principal) = cx.person()?;
        let room = cx.room(name)?;
        let st = cx.state;
        let remote = cx
            .ctx
            .origin
            .remote_addr
            .as_deref()
            .map(|r| stored_remote_addr(r, st.policy.obfuscate_ips, &cx.ctx.ip_key));
        let mut attempt = Attempt {
            cx,
            name,
            room,
            address,
            principal,
            remote,
            lifts: Vec::new(),
        };
        attempt.lifts = attempt.expired_bans();
        Ok(attempt)
    }

    /// Bans and autobans that have run out but were not lifted yet: lift them now so the
    /// state never holds a present member with a ban record.
    fn expired_bans(&self) -> Vec<Event> {
        let st = self.cx.state;
        let now = self.cx.ctx.now;
        let mut out = Vec::new();
        let addr_p = Principal::Address(self.address.clone());
        let mut seen = std::collections::BTreeSet::new();
        for p in [&self.principal, &addr_p] {
            for (scope, ban) in st.bans_for(self.name, p) {
                if !ban.active_at(now) && seen.insert((scope.clone(), p.clone())) {
                    out.push(self.cx.event(EventKind::Unbanned {
                        scope,
                        subject: p.clone(),
                        expired: true,
                    }));
                }
            }
        }
        out.extend(address_bans::expired(
            self.cx,
            self.name,
            self.remote.as_deref(),
        ));
        for key in self.keys() {
            if st.autobans.get(&key).is_some_and(|u| *u <= now) {
                out.push(self.cx.event(EventKind::AutobanLifted { key }));
            }
        }
        out
    }

    fn keys(&self) -> Vec<AutobanKey> {
        let mut keys = vec![AutobanKey::Identity(self.address.clone())];
        if let Some(r) = &self.remote {
            keys.push(AutobanKey::Remote(r.clone()));
        }
        keys
    }

    /// The active ban stopping this person, if any: a ban of them, a ban of the address
    /// they come from (whatever name they use), an autoban.
    fn active_ban(&self) -> Option<Rejection> {
        let st = self.cx.state;
        let now = self.cx.ctx.now;
        let addr_p = Principal::Address(self.address.clone());
        for p in [&self.principal, &addr_p] {
            if let Some((_, b)) = st
                .bans_for(self.name, p)
                .into_iter()
                .find(|(_, b)| b.active_at(now))
            {
                return Some(Rejection::Banned { until: b.until });
            }
        }
        if let Some(b) = address_bans::in_force(self.cx, Some(self.name), self.remote.as_deref()) {
            return Some(Rejection::Banned { until: b.until });
        }
        self.keys().iter().find_map(|k| {
            st.autobans
                .get(k)
                .filter(|u| **u > now)
                .map(|u| Rejection::Banned { until: Some(*u) })
        })
    }

    /// Refuse: record the denial (and what it triggers), answer with `rejection`.
    fn deny(&self, reason: DenyReason, rejection: Rejection) -> Rejected {
        let mut record = self.lifts.clone();
        record.push(self.cx.event(EventKind::JoinDenied {
            room: self.name.clone(),
            principal: self.principal.clone(),
            address: self.address.clone(),
            reason,
            remote: self.remote.clone(),
        }));
        record.extend(autoban::on_denial(
            self.cx,
            self.address,
            self.remote.as_ref(),
            reason,
        ));
        Rejected { rejection, record }
    }

    /// Whether the server admits only people with accounts and this is not one
    /// (`policy.accounts_only`).
    fn account_required(&self) -> bool {
        self.cx.state.policy.accounts_only && !matches!(self.principal, Principal::Account(_))
    }

    fn account_disabled(&self) -> bool {
        let st = self.cx.state;
        st.account_of(&self.principal).is_some_and(|a| !a.enabled)
            || self
                .room
                .account
                .as_ref()
                .and_then(|a| st.accounts.get(a))
                .is_some_and(|a| !a.enabled)
    }

    /// Check a password attempt against a stored hash.
    fn password(
        &self,
        hash: &str,
        attempt: Option<&crate::command::Secret>,
        kind: PasswordKind,
    ) -> Result<(), Rejected> {
        match attempt {
            None => Err(self.deny(
                DenyReason::PasswordRequired,
                Rejection::PasswordRequired(kind),
            )),
            Some(s) if self.cx.verifier.verify(hash, s.expose()) => Ok(()),
            Some(_) => Err(self.deny(DenyReason::WrongPassword, Rejection::WrongPassword(kind))),
        }
    }

    /// The invitation this join may use: the one presented, or an open one addressed to
    /// this person.
    fn invitation(
        &self,
        presented: Option<&InvitationId>,
        secret: Option<&Secret>,
    ) -> Result<Option<(&'a InvitationId, &'a Invitation)>, Rejected> {
        let st = self.cx.state;
        let now = self.cx.ctx.now;
        let mine = |inv: &Invitation| st.principal_of(&inv.invitee) == self.principal;
        let found = if let Some(secret) = secret {
            // An email invitation's link: found by the digest of its secret (a room holds
            // few invitations; the secret is never kept, only compared as a digest).
            let digest = SecretDigest::of(secret);
            self.room
                .invitations
                .iter()
                .find(|(_, inv)| inv.secret_digest == Some(digest))
        } else if let Some(id) = presented {
            self.room.invitations.get_key_value(id)
        } else {
            return Ok(self.room.invitations.iter().find(|(_, inv)| {
                inv.usable_at(now) && inv.invitee.scheme() != Scheme::Mailto && mine(inv)
            }));
        };
        let Some((id, inv)) = found else {
            return Err(self.deny(DenyReason::NotInvited, Rejection::InvitationNotFound));
        };
        if secret.is_none() && inv.secret_digest.is_some() {
            // Its id is listed and journaled: only the secret is the bearer token.
            return Err(self.deny(DenyReason::NotInvited, Rejection::NotYours));
        }
        if !inv.is_open() {
            return Err(self.deny(DenyReason::InvitationClosed, Rejection::InvitationClosed));
        }
        if !inv.usable_at(now) {
            return Err(self.deny(DenyReason::InvitationExpired, Rejection::InvitationExpired));
        }
        // Email invitations are bearer tokens (VROOM links); others are personal.
        if inv.invitee.scheme() != Scheme::Mailto && !mine(inv) {
            return Err(self.deny(DenyReason::NotInvited, Rejection::NotYours));
        }
        Ok(Some((id, inv)))
    }

    /// Whether the room's account allows this person (Jami allowed-contacts).
    fn allowed_contact(&self) -> bool {
        let Some(acc) = self
            .room
            .account
            .as_ref()
            .and_then(|a| self.cx.state.accounts.get(a))
        else {
            return true;
        };
        !acc.contacts_restricted
            || acc.allowed_contacts.contains(&self.principal)
            || acc
                .allowed_contacts
                .contains(&Principal::Address(self.address.clone()))
    }

    /// Capacity: the identity's own session limit, the room member limit (new people
    /// only), then the server session limit.
    fn capacity(&self) -> Result<(), Rejected> {
        let st = self.cx.state;
        let per_identity = st.policy.max_sessions_per_identity;
        if per_identity > 0 && sessions_of(st, self.address) >= per_identity as usize {
            return Err(Rejection::TooManySessions { max: per_identity }.into());
        }
        let max = self.room.max_members(&st.policy);
        if !self.room.members.contains_key(&self.principal)
            && self.room.members.len() >= max as usize
        {
            return Err(self.deny(DenyReason::RoomFull, Rejection::RoomFull { max }));
        }
        if st.online >= u64::from(st.policy.max_users) {
            return Err(self.deny(
                DenyReason::ServerFull,
                Rejection::ServerFull {
                    max: st.policy.max_users,
                },
            ));
        }
        Ok(())
    }
}

/// How many sessions `address` holds, across every room.
fn sessions_of(st: &crate::state::State, address: &Address) -> usize {
    st.rooms
        .values()
        .flat_map(|r| r.members.values())
        .flat_map(|m| m.sessions.values())
        .filter(|p| &p.address == address)
        .count()
}

/// A verifier for decisions that must not reach a password check.
struct NoPasswords;

impl crate::context::PasswordVerifier for NoPasswords {
    fn verify(&self, _: &str, _: &str) -> bool {
        false
    }
}

/// Whether a join with `session` would be refused before any password is checked: the
/// room missing, the session taken, the account disabled, a ban or an autoban, a
/// server that admits only accounts (`policy.accounts_only`) and no account. The
/// service asks first, so a stranger hammering a room they are barred from costs no
/// argon2 at all; the checks are the join's own, so they cannot disagree.
pub fn refused_before_passwords(
    state: &crate::state::State,
    ctx: &crate::context::Context,
    name: &RoomName,
    session: &SessionId,
) -> bool {
    let cx = Cx {
        state,
        ctx,
        verifier: &NoPasswords,
    };
    let Ok(at) = Attempt::new(&cx, name) else {
        return true;
    };
    at.room.session_holder(session).is_some()
        || at.account_disabled()
        || at.active_ban().is_some()
        || at.account_required()
}

/// Join a room with one session.
pub(super) fn join(
    cx: &Cx<'_>,
    name: &RoomName,
    session: &SessionId,
    creds: &Credentials,
) -> Decision {
    let at = Attempt::new(cx, name)?;
    let room = at.room;
    let st = cx.state;
    if room.session_holder(session).is_some() {
        return Err(Rejection::SessionExists.into());
    }
    let p = at.principal.clone();
    if at.account_disabled() {
        return Err(at.deny(DenyReason::AccountDisabled, Rejection::AccountDisabled));
    }
    if let Some(r) = at.active_ban() {
        return Err(at.deny(DenyReason::Banned, r));
    }
    if at.account_required() {
        return Err(at.deny(DenyReason::AccountRequired, Rejection::AccountRequired));
    }
    // Mumble server password; registered people (enabled accounts) skip it.
    if let Some(h) = &st.policy.server_password_hash {
        if !matches!(p, Principal::Account(_)) {
            at.password(h, creds.server_password.as_ref(), PasswordKind::Server)?;
        }
    }
    // VROOM owner password: grants the owner role.
    let owner_grant = match (&creds.owner_password, &room.reserved) {
        (None, _) => false,
        (Some(_), None) => {
            return Err(at.deny(
                DenyReason::WrongPassword,
                Rejection::WrongPassword(PasswordKind::Owner),
            ))
        }
        (Some(attempt), Some(h)) => {
            at.password(h, Some(attempt), PasswordKind::Owner)?;
            true
        }
    };
    let aff = room.affiliations.get(&p).copied();
    let host = matches!((&room.account, &p), (Some(a), Principal::Account(pa)) if a == pa);
    let acct_mod = st.is_account_moderator(room, &p);
    let elevated = owner_grant || host || acct_mod || aff.is_some_and(|r| r >= Role::Moderator);
    if !elevated && aff.is_none() && !at.allowed_contact() {
        return Err(at.deny(DenyReason::NotAllowed, Rejection::NotAllowed));
    }
    let invitation = at.invitation(creds.invitation.as_ref(), creds.invitation_secret.as_ref())?;
    // An invitation lets its holder into a private room; it spares them the access
    // password and the lobby only if its issuer could have let them in (a moderator, an
    // owner or an operator of the room when it is used): a member's invitation is not a
    // way around either.
    let admitting = invitation.is_some_and(|(_, inv)| invitations::admits(cx, name, room, inv));
    if room.config.locked && !elevated {
        return Err(at.deny(DenyReason::Locked, Rejection::Locked));
    }
    if room.config.private && !elevated && aff.is_none() && invitation.is_none() {
        return Err(at.deny(DenyReason::NotInvited, Rejection::NotInvited));
    }
    if let Some(h) = &room.config.access_password_hash {
        let exempt = elevated || admitting || aff.is_some_and(|r| r >= Role::Member);
        if !exempt {
            at.password(h, creds.password.as_ref(), PasswordKind::Room)?;
        }
    }
    let mut role = if owner_grant {
        Some(Role::Owner)
    } else {
        aff.or(invitation.map(|_| Role::Member))
            .or(room.config.default_role)
    };
    if acct_mod {
        role = Some(role.map_or(Role::Moderator, |r| r.max(Role::Moderator)));
    }
    if host {
        role = Some(Role::Owner);
    }
    let Some(role) = role else {
        return Err(at.deny(DenyReason::NoRole, Rejection::NoRole));
    };
    if room.config.lobby && !elevated && aff.is_none() && !admitting {
        return Err(at.deny(DenyReason::Lobby, Rejection::LobbyRequired));
    }
    at.capacity()?;

    let mut events = at.lifts.clone();
    if let Some((id, inv)) = invitation {
        if inv.single_use {
            events.push(cx.event(EventKind::InvitationInvalidated {
                room: name.clone(),
                invitation: id.clone(),
                reason: InvalidationReason::Used,
            }));
        }
        // An invitation makes you a member: you may come back to a private room.
        if aff.is_none() && !owner_grant {
            events.push(cx.event(EventKind::RoleChanged {
                room: name.clone(),
                subject: p.clone(),
                from: None,
                to: Some(Role::Member),
                via: RoleVia::Invitation,
            }));
        }
    }
    if owner_grant && aff != Some(Role::Owner) {
        events.push(cx.event(EventKind::RoleChanged {
            room: name.clone(),
            subject: p.clone(),
            from: aff,
            to: Some(Role::Owner),
            via: RoleVia::OwnerPassword,
        }));
    }
    events.push(cx.event(EventKind::Joined {
        room: name.clone(),
        principal: p.clone(),
        address: at.address.clone(),
        session: session.clone(),
        gateway: cx.ctx.origin.gateway.clone(),
        role,
        remote: at.remote.clone(),
    }));
    events.extend(lease(cx, name, &p, session));
    Ok(events)
}

/// The lease a new session starts with, when the policy gives sessions leases.
fn lease(cx: &Cx<'_>, room: &RoomName, p: &Principal, session: &SessionId) -> Option<Event> {
    let secs = cx.state.policy.session_lease_secs;
    (secs > 0).then(|| {
        cx.event(EventKind::SessionRenewed {
            room: room.clone(),
            principal: p.clone(),
            session: session.clone(),
            until: cx.ctx.now + chrono::TimeDelta::seconds(i64::from(secs)),
        })
    })
}

/// Renew a session's lease: its holder, or an operator or service (a gateway) that
/// holds it for them. Nothing is journaled while more than half the lease is left.
pub(super) fn renew(cx: &Cx<'_>, name: &RoomName, session: &SessionId) -> Decision {
    let room = cx.room(name)?;
    let holder = room
        .session_holder(session)
        .ok_or(Rejection::SessionNotFound)?;
    if !cx.ctx.actor.is_privileged() {
        let (_, me) = cx.person()?;
        if &me != holder {
            return Err(Rejection::NotYours.into());
        }
    }
    let secs = i64::from(cx.state.policy.session_lease_secs);
    let until = room
        .members
        .get(holder)
        .and_then(|m| m.sessions.get(session))
        .and_then(|p| p.lease_until);
    let half_spent = until.is_some_and(|u| u - cx.ctx.now <= chrono::TimeDelta::seconds(secs / 2));
    // A session without a lease (joined while leases were off) gets one once they are on.
    if secs == 0 || !(half_spent || until.is_none()) {
        return Ok(Vec::new());
    }
    Ok(lease(cx, name, holder, session).into_iter().collect())
}

/// Operator only: end every session that came through `gateway` (it restarted).
pub(super) fn end_gateway_sessions(cx: &Cx<'_>, gateway: &str) -> Decision {
    cx.require_operator()?;
    let mut events = Vec::new();
    for (name, room) in &cx.state.rooms {
        for (p, member) in &room.members {
            for (session, presence) in &member.sessions {
                if presence.gateway == gateway {
                    events.push(cx.event(EventKind::Left {
                        room: name.clone(),
                        principal: p.clone(),
                        session: session.clone(),
                        reason: LeaveReason::GatewayRestarted,
                    }));
                }
            }
        }
    }
    Ok(events)
}

/// Call an account: in rendezvous mode the call lands in its conference (Jami).
pub(super) fn call(
    cx: &Cx<'_>,
    account: &AccountId,
    session: &SessionId,
    creds: &Credentials,
) -> Decision {
    let acc = cx
        .state
        .accounts
        .get(account)
        .ok_or_else(|| Rejection::AccountNotFound(account.clone()))?;
    let room = acc.rendezvous.as_ref().ok_or(Rejection::NotRendezvous)?;
    join(cx, room, session, creds)
}

/// Leave with one session. The holder leaves; an operator or service (a gateway that
/// lost the session) reports a disconnect.
pub(super) fn leave(cx: &Cx<'_>, name: &RoomName, session: &SessionId) -> Decision {
    let room = cx.room(name)?;
    let holder = room
        .session_holder(session)
        .ok_or(Rejection::SessionNotFound)?;
    let reason = if cx.ctx.actor.is_privileged() {
        LeaveReason::Disconnected
    } else {
        let (_, me) = cx.person()?;
        if &me != holder {
            return Err(Rejection::NotYours.into());
        }
        LeaveReason::Left
    };
    let mut events = vec![cx.event(EventKind::Left {
        room: name.clone(),
        principal: holder.clone(),
        session: session.clone(),
        reason,
    })];
    // Kamailio IMC #exit: the owner leaving destroys the room (when so configured).
    let last_session = room
        .members
        .get(holder)
        .is_some_and(|m| m.sessions.len() == 1);
    if room.config.owner_exit_destroys
        && last_session
        && room.affiliations.get(holder) == Some(&Role::Owner)
    {
        events.extend(rooms::destroy(cx, name, DeleteReason::OwnerLeft));
    }
    Ok(events)
}

/// Wait in the lobby.
pub(super) fn knock(
    cx: &Cx<'_>,
    name: &RoomName,
    session: &SessionId,
    server_password: Option<&crate::command::Secret>,
) -> Decision {
    let at = Attempt::new(cx, name)?;
    let room = at.room;
    if !room.config.lobby {
        return Err(Rejection::LobbyDisabled.into());
    }
    if room.session_holder(session).is_some() {
        return Err(Rejection::SessionExists.into());
    }
    if room
        .lobby
        .get(&at.principal)
        .is_some_and(|k| &k.session == session)
    {
        return Ok(vec![]);
    }
    if at.account_disabled() {
        return Err(at.deny(DenyReason::AccountDisabled, Rejection::AccountDisabled));
    }
    if let Some(r) = at.active_ban() {
        return Err(at.deny(DenyReason::Banned, r));
    }
    if at.account_required() {
        return Err(at.deny(DenyReason::AccountRequired, Rejection::AccountRequired));
    }
    // Mumble's server password, as on a join: registered people (accounts) skip it.
    if let Some(h) = &cx.state.policy.server_password_hash {
        if !matches!(at.principal, Principal::Account(_)) {
            at.password(h, server_password, PasswordKind::Server)?;
        }
    }
    if room.config.locked {
        return Err(at.deny(DenyReason::Locked, Rejection::Locked));
    }
    let mut events = at.lifts.clone();
    events.push(cx.event(EventKind::Knocked {
        room: name.clone(),
        principal: at.principal.clone(),
        address: at.address.clone(),
        session: session.clone(),
        gateway: cx.ctx.origin.gateway.clone(),
    }));
    Ok(events)
}

/// Let a knocking person in: their waiting session joins.
pub(super) fn admit(cx: &Cx<'_>, name: &RoomName, subject: &Principal) -> Decision {
    let st = cx.state;
    let room = cx.room(name)?;
    cx.require_moderator(name, room)?;
    let p = st.canonical(subject);
    let knock = room.lobby.get(&p).ok_or(Rejection::NotKnocking)?;
    if room.session_holder(&knock.session).is_some() {
        return Err(Rejection::SessionExists.into());
    }
    if cx.banned_in(name, &p, Some(&knock.address)) {
        return Err(Rejection::Banned { until: None }.into());
    }
    let max = room.max_members(&st.policy);
    if !room.members.contains_key(&p) && room.members.len() >= max as usize {
        return Err(Rejection::RoomFull { max }.into());
    }
    if st.online >= u64::from(st.policy.max_users) {
        return Err(Rejection::ServerFull {
            max: st.policy.max_users,
        }
        .into());
    }
    let role = room
        .affiliations
        .get(&p)
        .copied()
        .or(room.config.default_role)
        .unwrap_or(Role::Member);
    Ok(vec![
        cx.event(EventKind::KnockAdmitted {
            room: name.clone(),
            principal: p.clone(),
        }),
        cx.event(EventKind::Joined {
            room: name.clone(),
            principal: p.clone(),
            address: knock.address.clone(),
            session: knock.session.clone(),
            gateway: knock.gateway.clone(),
            role,
            remote: None,
        }),
    ]
    .into_iter()
    .chain(lease(cx, name, &p, &knock.session))
    .collect())
}

/// Turn a knocking person away.
pub(super) fn reject_knock(cx: &Cx<'_>, name: &RoomName, subject: &Principal) -> Decision {
    let room = cx.room(name)?;
    cx.require_moderator(name, room)?;
    let p = cx.state.canonical(subject);
    if !room.lobby.contains_key(&p) {
        return Err(Rejection::NotKnocking.into());
    }
    Ok(vec![cx.event(EventKind::KnockRejected {
        room: name.clone(),
        principal: p,
    })])
}
