//! Accounts (Jami herd actions): create, link identities, display names, enable /
//! disable, allowed contacts, per-account moderators, rendezvous mode.

use super::{Cx, Decision};
use crate::command::Command;
use crate::event::EventKind;
use crate::ids::{check_display_name as display_name_rule, AccountId, Address, Principal, Scheme};
use crate::model::{Role, RoomConfig};
use crate::rejection::Rejection;
use crate::sip_digest::{self, DigestAlgorithm};
use crate::state::Account;

pub(super) fn decide(cx: &Cx<'_>, cmd: &Command) -> Decision {
    let st = cx.state;
    use Command as C;
    match cmd {
        C::CreateAccount {
            account,
            display_name,
        } => {
            cx.require_operator()?;
            if st.accounts.contains_key(account) {
                return Err(Rejection::AccountExists(account.clone()).into());
            }
            check_display_name(display_name.as_deref())?;
            Ok(vec![cx.event(EventKind::AccountCreated {
                account: account.clone(),
                display_name: display_name.clone(),
            })])
        }
        C::LinkIdentity { account, address } => {
            cx.require_operator()?;
            existing(cx, account)?;
            match st.identities.get(address) {
                Some(a) if a == account => Ok(vec![]),
                Some(a) => Err(Rejection::IdentityAlreadyLinked(a.clone()).into()),
                None => Ok(vec![cx.event(EventKind::IdentityLinked {
                    account: account.clone(),
                    address: address.clone(),
                })]),
            }
        }
        C::UnlinkIdentity { account, address } => {
            cx.require_operator()?;
            existing(cx, account)?;
            if st.identities.get(address) != Some(account) {
                return Err(Rejection::IdentityNotLinked.into());
            }
            Ok(vec![cx.event(EventKind::IdentityUnlinked {
                account: account.clone(),
                address: address.clone(),
            })])
        }
        C::SetSipCredential {
            account,
            address,
            realm,
            ha1_md5,
            ha1_sha256,
        } => {
            cx.require_operator()?;
            existing(cx, account)?;
            check_sip_credential(address, realm, ha1_md5, ha1_sha256)?;
            let mut events = Vec::new();
            match st.identities.get(address) {
                Some(a) if a == account => {}
                Some(a) => return Err(Rejection::IdentityAlreadyLinked(a.clone()).into()),
                None => events.push(cx.event(EventKind::IdentityLinked {
                    account: account.clone(),
                    address: address.clone(),
                })),
            }
            let same = st.sip_credential(address).is_some_and(|c| {
                &c.account == account
                    && &c.realm == realm
                    && &c.ha1_md5 == ha1_md5
                    && &c.ha1_sha256 == ha1_sha256
            });
            if !same {
                events.push(cx.event(EventKind::SipCredentialSet {
                    account: account.clone(),
                    address: address.clone(),
                    realm: realm.clone(),
                    ha1_md5: ha1_md5.clone(),
                    ha1_sha256: ha1_sha256.clone(),
                }));
            }
            Ok(events)
        }
        C::ClearSipCredential { account, address } => {
            cx.require_operator()?;
            existing(cx, account)?;
            if st.identities.get(address) != Some(account) {
                return Err(Rejection::IdentityNotLinked.into());
            }
            if st.sip_credential(address).is_none() {
                return Ok(vec![]);
            }
            Ok(vec![cx.event(EventKind::SipCredentialCleared {
                account: account.clone(),
                address: address.clone(),
            })])
        }
        C::SetDisplayName {
            account,
            display_name,
        } => {
            let acc = holder_or_operator(cx, account)?;
            check_display_name(display_name.as_deref())?;
            if &acc.display_name == display_name {
                return Ok(vec![]);
            }
            Ok(vec![cx.event(EventKind::DisplayNameChanged {
                account: account.clone(),
                display_name: display_name.clone(),
            })])
        }
        C::EnableAccount { account } | C::DisableAccount { account } => {
            cx.require_operator()?;
            let acc = existing(cx, account)?;
            let enable = matches!(cmd, C::EnableAccount { .. });
            if acc.enabled == enable {
                return Ok(vec![]);
            }
            let account = account.clone();
            Ok(vec![cx.event(if enable {
                EventKind::AccountEnabled { account }
            } else {
                EventKind::AccountDisabled { account }
            })])
        }
        C::AllowContact { account, contact } => {
            let acc = holder_or_operator(cx, account)?;
            let contact = st.canonical(contact);
            if acc.contacts_restricted && acc.allowed_contacts.contains(&contact) {
                return Ok(vec![]);
            }
            Ok(vec![cx.event(EventKind::ContactAllowed {
                account: account.clone(),
                contact,
            })])
        }
        C::DisallowContact { account, contact } => {
            let acc = holder_or_operator(cx, account)?;
            let contact = st.canonical(contact);
            if !acc.allowed_contacts.contains(&contact) {
                return Ok(vec![]);
            }
            Ok(vec![cx.event(EventKind::ContactDisallowed {
                account: account.clone(),
                contact,
            })])
        }
        C::OpenContacts { account } => {
            let acc = holder_or_operator(cx, account)?;
            if !acc.contacts_restricted {
                return Ok(vec![]);
            }
            Ok(vec![cx.event(EventKind::ContactsOpened {
                account: account.clone(),
            })])
        }
        C::AddModerator { account, moderator } => {
            let acc = holder_or_operator(cx, account)?;
            let moderator = st.canonical(moderator);
            if acc.moderators.contains(&moderator) {
                return Ok(vec![]);
            }
            // A banned contact has no moderation rights (Jami).
            if acc.bans.contains_key(&moderator) || st.server_bans.contains_key(&moderator) {
                return Err(Rejection::Banned { until: None }.into());
            }
            Ok(vec![cx.event(EventKind::ModeratorAdded {
                account: account.clone(),
                moderator,
            })])
        }
        C::RemoveModerator { account, moderator } => {
            let acc = holder_or_operator(cx, account)?;
            let moderator = st.canonical(moderator);
            if !acc.moderators.contains(&moderator) {
                return Ok(vec![]);
            }
            Ok(vec![cx.event(EventKind::ModeratorRemoved {
                account: account.clone(),
                moderator,
            })])
        }
        C::SetRendezvous { account, room } => {
            let acc = holder_or_operator(cx, account)?;
            if &acc.rendezvous == room {
                return Ok(vec![]);
            }
            let mut events = Vec::new();
            let owner = Principal::Account(account.clone());
            if let Some(name) = room {
                match st.rooms.get(name) {
                    None => {
                        super::rooms::check_new_name(cx, name)?;
                        events.push(cx.event(EventKind::RoomCreated {
                            room: name.clone(),
                            parent: None,
                            owner: owner.clone(),
                            config: RoomConfig::default(),
                        }));
                    }
                    Some(r) => {
                        let owns = r.affiliations.get(&owner) == Some(&Role::Owner);
                        if !owns && !cx.ctx.actor.is_privileged() {
                            return Err(Rejection::NotOwner.into());
                        }
                    }
                }
            }
            events.push(cx.event(EventKind::RendezvousChanged {
                account: account.clone(),
                room: room.clone(),
            }));
            Ok(events)
        }
        _ => Ok(vec![]),
    }
}

fn existing<'a>(cx: &Cx<'a>, account: &AccountId) -> Result<&'a Account, Rejection> {
    cx.state
        .accounts
        .get(account)
        .ok_or_else(|| Rejection::AccountNotFound(account.clone()))
}

/// The account, if the actor is an operator or one of the account's own identities.
fn holder_or_operator<'a>(cx: &Cx<'a>, account: &AccountId) -> Result<&'a Account, Rejection> {
    let acc = existing(cx, account)?;
    if cx.ctx.actor.is_privileged() {
        return Ok(acc);
    }
    match cx.actor_principal() {
        Some(Principal::Account(a)) if &a == account => {
            if acc.enabled {
                Ok(acc)
            } else {
                Err(Rejection::AccountDisabled)
            }
        }
        _ => Err(Rejection::NotOwner),
    }
}

/// A SIP credential is for a `sip:` identity, in a realm a challenge can carry, with
/// HA1 values the registrar can compare against (lowercase hex of the right length).
fn check_sip_credential(
    address: &Address,
    realm: &str,
    ha1_md5: &str,
    ha1_sha256: &str,
) -> Result<(), Rejection> {
    let invalid = |field: &'static str, reason: &str| Rejection::InvalidInput {
        field,
        reason: reason.to_owned(),
    };
    if address.scheme() != Scheme::Sip {
        return Err(invalid(
            "address",
            "SIP credentials are for sip: identities",
        ));
    }
    if let Some(problem) = sip_digest::realm_problem(realm) {
        return Err(invalid("realm", problem));
    }
    if !sip_digest::is_ha1(DigestAlgorithm::Md5, ha1_md5) {
        return Err(invalid("ha1_md5", "not 32 lowercase hex digits"));
    }
    if !sip_digest::is_ha1(DigestAlgorithm::Sha256, ha1_sha256) {
        return Err(invalid("ha1_sha256", "not 64 lowercase hex digits"));
    }
    Ok(())
}

/// A display name is free text on one line (spaces allowed, as in Jami), not a user
/// name: see [`crate::ids::check_display_name`].
fn check_display_name(name: Option<&str>) -> Result<(), Rejection> {
    match name {
        None => Ok(()),
        Some(n) => display_name_rule(n).map_err(|e| Rejection::InvalidInput {
            field: "display_name",
            reason: e.to_string(),
        }),
    }
}
