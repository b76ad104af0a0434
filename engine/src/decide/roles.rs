//! Roles and affiliations: grant and revoke, never leaving a room without an owner.

use super::{Cx, Decision, Rank};
use crate::event::{EventKind, RoleVia};
use crate::ids::{Principal, RoomName};
use crate::model::Role;
use crate::rejection::Rejection;

/// Grant `to` (or revoke with `None`). Moderators hand out roles up to moderator
/// (VROOM: a chairman may make others chairmen); only owners make owners. Anyone may
/// step down themselves, as long as an owner remains.
pub(super) fn grant(
    cx: &Cx<'_>,
    name: &RoomName,
    subject: &Principal,
    to: Option<Role>,
) -> Decision {
    let st = cx.state;
    let room = cx.room(name)?;
    let subject = st.canonical(subject);
    let from = room.affiliations.get(&subject).copied();
    let is_self = cx.actor_principal().as_ref() == Some(&subject);
    let stepping_down = is_self && to < from;
    if !stepping_down {
        let rank = cx.require_moderator(name, room)?;
        if to == Some(Role::Owner) && rank < Rank::Owner {
            return Err(Rejection::NotOwner.into());
        }
        if from == to {
            return Ok(vec![]);
        }
        if !is_self {
            cx.require_outranks(rank, name, room, &subject)?;
        }
        if to.is_some_and(|r| r >= Role::Moderator) && cx.banned_in(name, &subject, None) {
            // A banned person gets no moderation rights (Jami).
            return Err(Rejection::Banned { until: None }.into());
        }
    }
    if from == to {
        return Ok(vec![]);
    }
    if from == Some(Role::Owner) && room.owner_count() <= 1 {
        return Err(Rejection::LastOwner.into());
    }
    Ok(vec![cx.event(EventKind::RoleChanged {
        room: name.clone(),
        subject,
        from,
        to,
        via: if to.is_some() {
            RoleVia::Grant
        } else {
            RoleVia::Revoke
        },
    })])
}
