//! JSON views of the committed state: what GET routes answer. Hashes never leave the
//! server (only `has_password`-style flags do).

use chrono::{DateTime, SecondsFormat, Utc};
use conclave_engine::event::AutobanKey;
use conclave_engine::model::Role;
use conclave_engine::service::Outcome;
use conclave_engine::sip_digest::ALGORITHMS;
use conclave_engine::state::{Account, AddressBan, Ban, Gate, Invitation, InvitationState, Room};
use conclave_engine::{json::event_json, Policy, Principal, RoomName, State};
use serde_json::{json, Map, Value};

pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn opt_time(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(time(t)))
}

pub fn role(r: Role) -> &'static str {
    r.as_str()
}

fn gate(g: Gate) -> &'static str {
    match g {
        Gate::Open => "open",
        Gate::SelfClosed => "self_closed",
        Gate::Moderator => "moderator",
    }
}

fn invitation_state(s: InvitationState) -> &'static str {
    match s {
        InvitationState::Pending => "pending",
        InvitationState::Accepted => "accepted",
        InvitationState::Denied => "denied",
        InvitationState::Used => "used",
        InvitationState::Revoked => "revoked",
        InvitationState::Expired => "expired",
    }
}

/// What a command did: its correlation id, the head after it and its events.
pub fn outcome(o: &Outcome) -> Value {
    json!({
        "correlation_id": o.correlation_id,
        "head": o.head,
        "events": o.events.iter().map(|a| {
            let mut v = event_json(&a.event);
            if let Some(m) = v.as_object_mut() {
                m.insert("seq".into(), a.seq.into());
            }
            v
        }).collect::<Vec<_>>(),
    })
}

/// Whether an address as stored may be shown to someone who is not the admin: only a
/// keyed hash may (obfuscation on); a plain address or network never is.
fn shown_address(stored: &str, admin: bool) -> Option<&str> {
    (admin || stored.starts_with("h:")).then_some(stored)
}

/// [`outcome`] of an address ban or its lifting: the address in `data.remote` is left
/// out for anyone but the admin unless it is a keyed hash.
pub fn address_outcome(o: &Outcome, admin: bool) -> Value {
    let mut v = outcome(o);
    if admin {
        return v;
    }
    if let Some(events) = v.get_mut("events").and_then(Value::as_array_mut) {
        for e in events {
            if let Some(data) = e.get_mut("data").and_then(Value::as_object_mut) {
                let hidden = data
                    .get("remote")
                    .and_then(Value::as_str)
                    .is_some_and(|r| shown_address(r, false).is_none());
                if hidden {
                    data.insert("remote".into(), Value::Null);
                }
            }
        }
    }
    v
}

/// Address bans as listed: `address` is the stored form (a keyed hash with obfuscation
/// on) and is `null` for anyone but the admin when it is a plain address or network;
/// `id` names the ban either way.
pub fn address_bans<'a>(
    bans: impl Iterator<Item = (&'a String, &'a AddressBan)>,
    admin: bool,
) -> Value {
    Value::Array(
        bans.map(|(k, b)| {
            json!({
                "id": b.id,
                "address": shown_address(k, admin),
                "subject": b.subject.as_ref().map(|p| p.to_string()),
                "reason": b.reason,
                "by": b.by.to_string(),
                "at": time(b.at),
                "until": opt_time(b.until),
            })
        })
        .collect(),
    )
}

/// Merges `extra` fields into a JSON object.
pub fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// Public facts about a room: enough to decide how to join it.
pub fn room_summary(st: &State, name: &RoomName, r: &Room) -> Value {
    let c = &r.config;
    json!({
        "room": name.as_str(),
        "parent": r.parent.as_ref().map(RoomName::as_str),
        "depth": r.depth,
        "children": r.children.iter().map(RoomName::as_str).collect::<Vec<_>>(),
        "account": r.account.as_ref().map(|a| a.as_str()),
        "private": c.private,
        "locked": c.locked,
        "lobby": c.lobby,
        "moderated_chat": c.moderated_chat,
        "reserved": r.is_reserved(),
        "has_password": c.access_password_hash.is_some(),
        "max_members": r.max_members(&st.policy),
        "members": r.members.len(),
        "sessions": r.session_count(),
        "owners": r.affiliations.iter().filter(|(_, role)| **role == Role::Owner).map(|(p, _)| p.to_string()).collect::<Vec<_>>(),
        "welcome_text": c.welcome_text,
        "name": c.name,
        "description": c.description,
        "subject": r.subject.as_ref().map(|s| s.text.as_str()),
        "persistent": c.persistent,
        "created_at": time(r.created_at),
        "last_activity": time(r.last_activity),
    })
}

/// Everything participants may see: configuration, affiliations and who is present.
pub fn room_detail(st: &State, name: &RoomName, r: &Room) -> Value {
    let c = &r.config;
    with(
        room_summary(st, name, r),
        json!({
            "default_role": c.default_role.map(role),
            "owner_exit_destroys": c.owner_exit_destroys,
            "invite": c.invite.as_str(),
            "members_change_subject": c.members_change_subject,
            "public_addresses": c.public_addresses,
            "subject_at": r.subject.as_ref().map(|s| time(s.at)),
            "affiliations": affiliations(r),
            "present": members(r),
            "lobby_waiting": r.lobby.len(),
        }),
    )
}

pub fn affiliations(r: &Room) -> Value {
    let m: Map<String, Value> = r
        .affiliations
        .iter()
        .map(|(p, ro)| (p.to_string(), Value::from(role(*ro))))
        .collect();
    Value::Object(m)
}

pub fn members(r: &Room) -> Value {
    Value::Array(
        r.members
            .iter()
            .map(|(p, m)| {
                json!({
                    "principal": p.to_string(),
                    "role": r.affiliations.get(p).copied().or(r.config.default_role).map(role),
                    "audio": gate(m.audio),
                    "video": gate(m.video),
                    "hand_raised": m.hand_raised,
                    "sessions": m.sessions.iter().map(|(s, pr)| json!({
                        "session": s.as_str(),
                        "address": pr.address.to_string(),
                        "gateway": pr.gateway,
                        "joined_at": time(pr.joined_at),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

pub fn bans<'a>(bans: impl Iterator<Item = (&'a Principal, &'a Ban)>) -> Value {
    Value::Array(
        bans.map(|(p, b)| {
            json!({
                "subject": p.to_string(),
                "reason": b.reason,
                "by": b.by.to_string(),
                "at": time(b.at),
                "until": opt_time(b.until),
            })
        })
        .collect(),
    )
}

/// Autobans in force, as `DELETE /autobans/{kind}/{value}` names them.
pub fn autobans(autobans: &conclave_engine::state::Map<AutobanKey, DateTime<Utc>>) -> Value {
    Value::Array(
        autobans
            .iter()
            .map(|(k, until)| {
                let (kind, value) = match k {
                    AutobanKey::Identity(a) => ("identity", a.to_string()),
                    AutobanKey::Remote(r) => ("remote", r.clone()),
                };
                json!({ "kind": kind, "value": value, "until": time(*until) })
            })
            .collect(),
    )
}

pub fn invitations(r: &Room) -> Value {
    Value::Array(
        r.invitations
            .iter()
            .map(|(id, i): (_, &Invitation)| {
                json!({
                    "invitation": id.as_str(),
                    "invitee": i.invitee.to_string(),
                    "by": i.by.to_string(),
                    "issued_at": time(i.issued_at),
                    "expires_at": opt_time(i.expires_at),
                    "single_use": i.single_use,
                    "state": invitation_state(i.state),
                })
            })
            .collect(),
    )
}

pub fn lobby(r: &Room) -> Value {
    Value::Array(
        r.lobby
            .iter()
            .map(|(p, k)| {
                json!({
                    "principal": p.to_string(),
                    "address": k.address.to_string(),
                    "session": k.session.as_str(),
                    "gateway": k.gateway,
                    "at": time(k.at),
                })
            })
            .collect(),
    )
}

/// An account. `sip_credentials` says which of its `sip:` identities the registrar
/// accepts, with the realm and the algorithms: never the HA1 values.
pub fn account(id: &str, a: &Account, st: &State) -> Value {
    let sip: Vec<Value> = a
        .identities
        .iter()
        .filter_map(|addr| st.sip_credential(addr).map(|c| (addr, c)))
        .map(|(addr, c)| {
            json!({
                "address": addr.to_string(),
                "realm": c.realm,
                "algorithms": ALGORITHMS.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "account": id,
        "display_name": a.display_name,
        "enabled": a.enabled,
        "identities": a.identities.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "contacts_restricted": a.contacts_restricted,
        "allowed_contacts": a.allowed_contacts.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "moderators": a.moderators.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "bans": bans(a.bans.iter()),
        "rendezvous": a.rendezvous.as_ref().map(RoomName::as_str),
        "sip_credentials": sip,
    })
}

pub fn policy(p: &Policy) -> Value {
    json!({
        "max_users": p.max_users,
        "max_members": p.max_members,
        "nesting_limit": p.nesting_limit,
        "text_message_length": p.text_message_length,
        "image_message_length": p.image_message_length,
        "allow_html": p.allow_html,
        "autoban": {
            "attempts": p.autoban.attempts,
            "timeframe_secs": p.autoban.timeframe_secs,
            "duration_secs": p.autoban.duration_secs,
        },
        "obfuscate_ips": p.obfuscate_ips,
        "log_days": p.log_days,
        "common_names": p.common_names,
        "inactivity_timeout_mins": p.inactivity_timeout_mins,
        "reserved_inactivity_timeout_mins": p.reserved_inactivity_timeout_mins,
        "invitation_ttl_secs": p.invitation_ttl_secs,
        "has_server_password": p.server_password_hash.is_some(),
        "guests_may_create": p.guests_may_create,
        "accounts_only": p.accounts_only,
        "welcome_text": p.welcome_text,
        "max_reason_len": p.max_reason_len,
    })
}
