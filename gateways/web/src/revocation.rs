//! Participant tokens end with the right they stand for, whichever gateway ended it.
//!
//! Two mechanisms, one rule (`State::grant_holds`, answered by the engine):
//! - every request presenting a participant token checks the rule against the committed
//!   state, so a token never outlives its right, even by a moment;
//! - a task follows the committed event feed and removes tokens whose right an event
//!   ended (a leave, kick, ban, lobby rejection, room expiry or destruction, a disabled
//!   account), so they stop holding memory and guest names, and live event streams
//!   opened with them close.

use conclave_engine::service::{Engine, FeedFilter};
use conclave_engine::{EventKind, RoomName};

use crate::auth::{Caller, Participant, Tokens};
use crate::error::ApiError;
use crate::App;

/// Whether the right behind `who` still stands in the committed state.
pub(crate) fn holds(engine: &Engine, who: &Participant) -> bool {
    engine.read(|st| st.grant_holds(&who.room, &who.identity, who.session.as_ref(), engine.now()))
}

/// Refuses (and forgets) a participant token whose right has ended.
pub(crate) fn still_valid(app: &App, caller: Caller) -> Result<Caller, ApiError> {
    if let Caller::Participant { digest, who } = &caller {
        if !holds(&app.engine, who) {
            app.tokens.revoke(digest);
            return Err(crate::auth::revoked());
        }
        // A token in use shows its session alive.
        if let Some(every) = crate::lease::renew_every(&app.engine) {
            if app.tokens.due_for_renewal(digest, every) {
                crate::lease::renew_soon(&app.engine, who);
            }
        }
    }
    Ok(caller)
}

/// Where an event can end rights: nowhere, in its own room, or anywhere (server bans,
/// accounts). An exhaustive match, so a new kind of event needs a decision here.
pub(crate) fn reach(kind: &EventKind) -> Reach {
    use EventKind as E;
    match kind {
        E::Left { .. }
        | E::Kicked { .. }
        | E::KnockRejected { .. }
        | E::KnockAdmitted { .. }
        | E::RoomDeleted { .. }
        | E::RoomExpired { .. }
        | E::RoleChanged { .. } => Reach::Room,
        // Bans and unlinking move a person across every room; an account's state
        // counts in every room it is present in.
        E::Banned { .. }
        | E::AddressBanned { .. }
        | E::IdentityUnlinked { .. }
        | E::IdentityLinked { .. }
        | E::AccountDisabled { .. } => Reach::Everywhere,
        // A SIP credential grants no web right (the registrar checks it at each
        // REGISTER).
        E::AccountCreated { .. }
        | E::SipCredentialSet { .. }
        | E::SipCredentialCleared { .. }
        | E::DisplayNameChanged { .. }
        | E::AccountEnabled { .. }
        | E::ContactAllowed { .. }
        | E::ContactDisallowed { .. }
        | E::ContactsOpened { .. }
        | E::ModeratorAdded { .. }
        | E::ModeratorRemoved { .. }
        | E::RendezvousChanged { .. }
        | E::RoomCreated { .. }
        | E::RoomModified { .. }
        | E::SubjectChanged { .. }
        | E::RoomReserved { .. }
        | E::RoomUnreserved { .. }
        | E::Joined { .. }
        | E::SessionRenewed { .. }
        | E::JoinDenied { .. }
        | E::InvitationIssued { .. }
        | E::InvitationAnswered { .. }
        | E::InvitationInvalidated { .. }
        | E::AudioMuted { .. }
        | E::AudioUnmuted { .. }
        | E::VideoPaused { .. }
        | E::VideoResumed { .. }
        | E::Unbanned { .. }
        | E::AddressUnbanned { .. }
        | E::Knocked { .. }
        | E::HandRaised { .. }
        | E::HandLowered { .. }
        | E::ActionDenied { .. }
        | E::AutobanApplied { .. }
        | E::AutobanLifted { .. }
        | E::MessagePosted { .. }
        | E::PolicyChanged { .. }
        | E::ContentPurged { .. }
        | E::RecordingStarted { .. }
        | E::RecordingStopped { .. }
        | E::RecordingFileClosed { .. }
        | E::RecordingErased { .. } => Reach::Nowhere,
    }
}

pub(crate) enum Reach {
    Nowhere,
    Room,
    Everywhere,
}

/// Follows the committed feed from now on and revokes tokens whose right an event
/// ended. Ends when the engine stops.
pub(crate) async fn follow(engine: Engine, tokens: Tokens) {
    let mut feed = engine.subscribe(engine.head() + 1, FeedFilter::all());
    while let Some(e) = feed.follow("token revocation").await {
        let room = match reach(&e.event.kind) {
            Reach::Nowhere => continue,
            Reach::Everywhere => None,
            // A room event outside a room stream would be a bug; check everywhere then.
            Reach::Room => e
                .record
                .stream
                .strip_prefix("room:")
                .and_then(|r| RoomName::lookup(r).ok()),
        };
        let revoked = tokens.revoke_unless(room.as_ref(), |p| holds(&engine, p));
        if revoked > 0 {
            tracing::debug!(seq = e.seq(), revoked, "participant tokens revoked");
        }
    }
}
