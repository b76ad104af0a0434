//! Address bans (Mumble's bans, which name an address as well as a user): a remote
//! address, as stored (a keyed hash when `obfuscate_ips` is on), or with obfuscation
//! off a network, banned in a room, an account's conferences or the whole server.
//!
//! Moderators never see addresses, so they ban "the address of" a person present in
//! their room; operators may also name an IP address (stored in its stored form, so it
//! matches what joins from it store) or a network. Joins, knocks and room creations
//! from a banned address are refused as `Banned` and journaled as `join_denied` (see
//! `membership.rs` and `rooms.rs`), whatever name they come under.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{moderation, Cx, Decision};
use crate::event::{Event, EventKind};
use crate::ids::{Principal, RoomName};
use crate::model::{
    address_ban_matches, network_string, parse_network, plain_ip, AddressTarget, BanScope,
};
use crate::policy::stored_remote_addr;
use crate::rejection::Rejection;
use crate::state::{AddressBan, State};

/// Longest address or network an operator may give.
const MAX_ADDRESS_LEN: usize = 128;

/// Ban an address (see [`crate::command::Command::BanAddress`]).
pub(super) fn ban(
    cx: &Cx<'_>,
    scope: &BanScope,
    target: &AddressTarget,
    reason: &Option<String>,
    until: Option<DateTime<Utc>>,
) -> Decision {
    let (remotes, subject) = match target {
        AddressTarget::Ip(ip) => {
            // Only operators see (and so may name) addresses.
            cx.require_operator()?;
            scope_exists(cx, scope)?;
            (vec![operator_address(cx, ip, true)?], None)
        }
        AddressTarget::Of(p) => {
            let p = cx.state.canonical(p);
            moderation::check_scope(cx, scope, &p)?;
            if cx.actor_principal().as_ref() == Some(&p) {
                return Err(Rejection::InvalidInput {
                    field: "subject",
                    reason: "one cannot ban one's own address".into(),
                }
                .into());
            }
            let remotes = addresses_of(cx.state, scope, &p);
            if remotes.is_empty() {
                return Err(Rejection::NoKnownAddress.into());
            }
            (remotes, Some(p))
        }
    };
    cx.check_reason(reason)?;
    if until.is_some_and(|u| u <= cx.ctx.now) {
        return Err(Rejection::InvalidInput {
            field: "until",
            reason: "must be in the future".into(),
        }
        .into());
    }
    let existing = cx.state.address_bans_in(scope);
    let mut events = Vec::new();
    for (n, remote) in remotes.into_iter().enumerate() {
        let id = cx
            .ctx
            .ids
            .derive("address_ban", u32::try_from(n).unwrap_or(u32::MAX));
        // Only happens if the caller reuses a seed: refuse rather than make two bans
        // with one id.
        if existing.is_some_and(|m| m.iter().any(|(k, b)| b.id == id && *k != remote)) {
            return Err(Rejection::InvalidInput {
                field: "id",
                reason: "id seed already used".into(),
            }
            .into());
        }
        events.push(cx.event(EventKind::AddressBanned {
            scope: scope.clone(),
            id,
            remote,
            subject: subject.clone(),
            reason: reason.clone(),
            until,
        }));
    }
    Ok(events)
}

/// Lift an address ban, named by its id or its address as listed; operators may also
/// give the plain IP address or the network.
pub(super) fn unban(cx: &Cx<'_>, scope: &BanScope, address: &str) -> Decision {
    // Whoever could ban in the scope may lift (rank against a subject is not needed).
    match scope {
        BanScope::Room(name) => {
            let r = cx.room(name)?;
            cx.require_moderator(name, r)?;
        }
        BanScope::Account(a) => {
            if !cx.state.accounts.contains_key(a) {
                return Err(Rejection::AccountNotFound(a.clone()).into());
            }
            if !(cx.ctx.actor.is_privileged()
                || cx.actor_principal() == Some(Principal::Account(a.clone())))
            {
                return Err(Rejection::NotOwner.into());
            }
        }
        BanScope::Server => cx.require_operator()?,
    }
    let bans = cx
        .state
        .address_bans_in(scope)
        .ok_or(Rejection::BanNotFound)?;
    let listed = bans.iter().find(|(k, b)| b.id == address || *k == address);
    let found = match listed {
        Some(found) => Some(found),
        None if cx.ctx.actor.is_privileged() => operator_address(cx, address, false)
            .ok()
            .and_then(|k| bans.get_key_value(&k)),
        None => None,
    };
    let (remote, ban) = found.ok_or(Rejection::BanNotFound)?;
    Ok(vec![cx.event(EventKind::AddressUnbanned {
        scope: scope.clone(),
        id: ban.id.clone(),
        remote: remote.clone(),
        expired: false,
    })])
}

/// The address bans of `room` (or, for a room not created yet, of the server) that
/// match an attempt whose remote address is stored as `stored`, expired ones included
/// (see [`State::address_bans_for`]). Networks are matched against the attempt's plain
/// address, which `decide` sees in its context and never stores.
pub(super) fn matching<'s>(
    cx: &Cx<'s>,
    room: Option<&RoomName>,
    stored: Option<&str>,
) -> Vec<(BanScope, &'s String, &'s AddressBan)> {
    let st: &'s State = cx.state;
    let plain = cx.ctx.origin.remote_addr.as_deref().and_then(plain_ip);
    if stored.is_none() && plain.is_none() {
        return Vec::new();
    }
    let all = match room {
        Some(r) => st.address_bans_for(r),
        None => st
            .server_address_bans
            .iter()
            .map(|(k, b)| (BanScope::Server, k, b))
            .collect(),
    };
    all.into_iter()
        .filter(|(_, k, _)| address_ban_matches(k, stored, plain))
        .collect()
}

/// The address ban in force against an attempt, if any.
pub(super) fn in_force<'s>(
    cx: &Cx<'s>,
    room: Option<&RoomName>,
    stored: Option<&str>,
) -> Option<&'s AddressBan> {
    let now = cx.ctx.now;
    matching(cx, room, stored)
        .into_iter()
        .map(|(_, _, b)| b)
        .find(|b| b.active_at(now))
}

/// The lifting of address bans matching an attempt that have run out but were not
/// lifted yet.
pub(super) fn expired(cx: &Cx<'_>, room: &RoomName, stored: Option<&str>) -> Vec<Event> {
    let now = cx.ctx.now;
    matching(cx, Some(room), stored)
        .into_iter()
        .filter(|(_, _, b)| !b.active_at(now))
        .map(|(scope, remote, b)| {
            cx.event(EventKind::AddressUnbanned {
                scope,
                id: b.id.clone(),
                remote: remote.clone(),
                expired: true,
            })
        })
        .collect()
}

/// The stored remote addresses of `p`'s present sessions in the scope: the room, the
/// account's conferences, or every room.
fn addresses_of(st: &State, scope: &BanScope, p: &Principal) -> Vec<String> {
    let in_scope = |name: &RoomName, account: Option<&crate::ids::AccountId>| match scope {
        BanScope::Room(r) => r == name,
        BanScope::Account(a) => account == Some(a),
        BanScope::Server => true,
    };
    st.rooms
        .iter()
        .filter(|(name, r)| in_scope(name, r.account.as_ref()))
        .filter_map(|(_, r)| r.members.get(p))
        .flat_map(|m| m.sessions.values())
        .filter_map(|s| s.remote.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn scope_exists(cx: &Cx<'_>, scope: &BanScope) -> Result<(), Rejection> {
    match scope {
        BanScope::Room(r) => cx.room(r).map(|_| ()),
        BanScope::Account(a) if !cx.state.accounts.contains_key(a) => {
            Err(Rejection::AccountNotFound(a.clone()))
        }
        BanScope::Account(_) | BanScope::Server => Ok(()),
    }
}

/// An address an operator names, as it is kept: a plain IP address in its stored form
/// (what joins from it store, a keyed hash when obfuscation is on), a network in its
/// canonical form. A new network (`new`) is refused while obfuscation is on: the
/// journal would hold a plain network where the operator asked for no plain addresses.
fn operator_address(cx: &Cx<'_>, given: &str, new: bool) -> Result<String, Rejection> {
    let invalid = || Rejection::InvalidInput {
        field: "ip",
        reason: format!(
            "an IP address or a network in CIDR form, at most {MAX_ADDRESS_LEN} characters"
        ),
    };
    if given.is_empty() || given.len() > MAX_ADDRESS_LEN {
        return Err(invalid());
    }
    let policy = &cx.state.policy;
    // `a.b.c.d/32` is the one address.
    let single = given
        .split_once('/')
        .and_then(|(a, len)| {
            let ip = a.parse::<std::net::IpAddr>().ok()?;
            let max = if ip.is_ipv4() { "32" } else { "128" };
            (len == max).then_some(ip)
        })
        .or_else(|| plain_ip(given));
    if let Some(ip) = single {
        return Ok(stored_remote_addr(
            &ip.to_string(),
            policy.obfuscate_ips,
            &cx.ctx.ip_key,
        ));
    }
    let (net, len) = parse_network(given).ok_or_else(invalid)?;
    if new && policy.obfuscate_ips {
        return Err(Rejection::NetworkWhileObfuscated);
    }
    Ok(network_string(net, len))
}
