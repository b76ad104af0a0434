//! Invitations: issue (to an identity or an email address), accept, deny, revoke.
//! Expiry is driven by [`crate::tick`]; use on join is in `membership`.

use chrono::Duration;

use super::{Cx, Decision, Rank};
use crate::command::{Command, SecretDigest};
use crate::event::{EventKind, InvalidationReason, RoleVia};
use crate::ids::{InvitationId, Scheme};
use crate::model::Role;
use crate::rejection::Rejection;
use crate::state::{Invitation, Room};

pub(super) fn decide(cx: &Cx<'_>, cmd: &Command) -> Decision {
    let st = cx.state;
    let now = cx.ctx.now;
    use Command as C;
    match cmd {
        C::Invite {
            room,
            invitee,
            ttl_secs,
            single_use,
            secret,
        } => {
            let r = cx.room(room)?;
            // Who may invite is the room's setting (moderators and owners unless its
            // owners say otherwise; operators always).
            let needed = Rank::from(r.config.invite_role());
            if cx.actor_rank(room, r) < needed {
                return Err(if needed >= Rank::Owner {
                    Rejection::NotOwner
                } else {
                    Rejection::NotModerator
                }
                .into());
            }
            let ttl = ttl_secs.unwrap_or(st.policy.invitation_ttl_secs);
            let expires_at = (ttl > 0).then(|| now + Duration::seconds(i64::from(ttl)));
            let id = InvitationId::from_stored(cx.ctx.ids.derive("invitation", 0));
            if r.invitations.contains_key(&id) {
                // Only happens if the caller reuses a seed: refuse rather than overwrite.
                return Err(Rejection::InvalidInput {
                    field: "ids",
                    reason: "id seed already used".into(),
                }
                .into());
            }
            // An email invitation is a bearer token (VROOM's link): its secret comes with
            // the command (the gateway that delivers it made it) and only its digest is
            // kept. Personal invitations are checked against the identity instead.
            let secret_digest = match (invitee.scheme() == Scheme::Mailto, secret) {
                (true, Some(s)) => Some(SecretDigest::of(s)),
                (true, None) => {
                    return Err(Rejection::InvalidInput {
                        field: "secret",
                        reason: "an email invitation needs a bearer secret".into(),
                    }
                    .into())
                }
                (false, Some(_)) => {
                    return Err(Rejection::InvalidInput {
                        field: "secret",
                        reason: "only email invitations have a bearer secret".into(),
                    }
                    .into())
                }
                (false, None) => None,
            };
            if let Some(d) = secret_digest {
                if r.invitations.values().any(|i| i.secret_digest == Some(d)) {
                    // A reused secret would make the link ambiguous.
                    return Err(Rejection::InvalidInput {
                        field: "secret",
                        reason: "secret already used".into(),
                    }
                    .into());
                }
            }
            Ok(vec![cx.event(EventKind::InvitationIssued {
                room: room.clone(),
                invitation: id,
                invitee: invitee.clone(),
                expires_at,
                single_use: *single_use,
                secret_digest,
            })])
        }
        C::AcceptInvitation { room, invitation } | C::DenyInvitation { room, invitation } => {
            let accept = matches!(cmd, C::AcceptInvitation { .. });
            let r = cx.room(room)?;
            let inv = open_invitation(r, invitation, now)?;
            let (_, me) = cx.person()?;
            if inv.invitee.scheme() != Scheme::Mailto && st.principal_of(&inv.invitee) != me {
                return Err(Rejection::NotYours.into());
            }
            // An email invitation with a secret is answered by joining with the secret:
            // its id (listed to the room's moderators, journaled) is not enough.
            if inv.secret_digest.is_some() {
                return Err(Rejection::NotYours.into());
            }
            if accept && cx.banned_in(room, &me, cx.ctx.actor.identity()) {
                return Err(Rejection::Banned { until: None }.into());
            }
            let mut events = vec![cx.event(EventKind::InvitationAnswered {
                room: room.clone(),
                invitation: invitation.clone(),
                accepted: accept,
                by: me.clone(),
            })];
            // Kamailio IMC #accept: the invitee becomes a member of the room, which
            // spares them the access password and the lobby from then on; so only when
            // the issuer could have let them in. Otherwise the invitation stays open
            // (accepted) and is used, with the password and the lobby, on joining.
            if accept && admits(cx, room, r, inv) {
                if !r.affiliations.contains_key(&me) {
                    events.push(cx.event(EventKind::RoleChanged {
                        room: room.clone(),
                        subject: me,
                        from: None,
                        to: Some(Role::Member),
                        via: RoleVia::Invitation,
                    }));
                }
                if inv.single_use {
                    events.push(cx.event(EventKind::InvitationInvalidated {
                        room: room.clone(),
                        invitation: invitation.clone(),
                        reason: InvalidationReason::Used,
                    }));
                }
            }
            Ok(events)
        }
        C::RevokeInvitation { room, invitation } => {
            let r = cx.room(room)?;
            let inv = r
                .invitations
                .get(invitation)
                .ok_or(Rejection::InvitationNotFound)?;
            if !inv.is_open() {
                return Err(Rejection::InvitationClosed.into());
            }
            let issuer = inv.by == cx.ctx.actor;
            if !issuer {
                cx.require_moderator(room, r)?;
            }
            Ok(vec![cx.event(EventKind::InvitationInvalidated {
                room: room.clone(),
                invitation: invitation.clone(),
                reason: InvalidationReason::Revoked,
            })])
        }
        _ => Ok(vec![]),
    }
}

/// Whether an invitation's issuer could let its holder in (a moderator, an owner or an
/// operator of the room), asked when the invitation is used: an invitation is worth no
/// more than its issuer's standing now, so a demoted, banned or disabled issuer's
/// invitations no longer spare anyone the access password or the lobby.
pub(super) fn admits(
    cx: &Cx<'_>,
    name: &crate::ids::RoomName,
    room: &Room,
    inv: &Invitation,
) -> bool {
    cx.rank_of_actor(&inv.by, name, room) >= Rank::Moderator
}

fn open_invitation<'a>(
    room: &'a Room,
    id: &InvitationId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<&'a Invitation, Rejection> {
    let inv = room
        .invitations
        .get(id)
        .ok_or(Rejection::InvitationNotFound)?;
    if inv.state != crate::state::InvitationState::Pending {
        return Err(Rejection::InvitationClosed);
    }
    if !inv.usable_at(now) {
        return Err(Rejection::InvitationExpired);
    }
    Ok(inv)
}
