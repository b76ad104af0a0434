//! The registrar's bindings (RFC 3261 §10.3), sans-IO: REGISTER contents and time in,
//! bindings and the next expiry out.
//!
//! A binding maps an address of record (`sip:alice@domain`) to a contact and to the peer
//! the registration came from: messages for the person go back to that peer (where a
//! phone behind NAT can be reached, like Kamailio's `received`), the contact is kept for
//! what the peer cannot carry. Memory is bounded: contacts per address and bindings in
//! all.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use conclave_engine::ids::Address;

/// Limits and lengths of bindings.
#[derive(Debug, Clone, Copy)]
pub struct RegistrarLimits {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub max_contacts_per_aor: usize,
    pub max_bindings: usize,
}

/// One contact of a REGISTER request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRequest {
    /// The contact URI as sent (compared as a string: phones resend it unchanged).
    pub uri: String,
    /// Its `expires` parameter.
    pub expires: Option<u32>,
}

/// What a REGISTER asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRequest {
    /// `Contact: *` (remove every binding; needs `Expires: 0`).
    pub wildcard: bool,
    pub contacts: Vec<ContactRequest>,
    /// The `Expires` header.
    pub expires: Option<u32>,
    pub call_id: String,
    pub cseq: u32,
}

/// One binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding<P> {
    pub contact: String,
    pub peer: P,
    pub expires_at: Instant,
    call_id: String,
    cseq: u32,
}

/// Why a REGISTER was refused; each maps to one SIP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// 423 with `Min-Expires`.
    #[error("interval too brief (at least {min} s)")]
    IntervalTooBrief { min: u32 },
    /// 400: `*` with other contacts or a non-zero expiry (§10.3 step 6).
    #[error("invalid wildcard contact")]
    BadWildcard,
    /// 400: a repeated or older request of the same registration (§10.3 step 7).
    #[error("out of order CSeq for this Call-ID")]
    OutOfOrder,
    /// 403: the address already holds as many contacts as allowed.
    #[error("too many contacts for this address")]
    TooManyContacts,
    /// 503: the registrar holds as many bindings as allowed.
    #[error("registrar full")]
    Full,
}

impl RegisterError {
    /// Stable code, for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            RegisterError::IntervalTooBrief { .. } => "register.interval_too_brief",
            RegisterError::BadWildcard => "register.bad_wildcard",
            RegisterError::OutOfOrder => "register.out_of_order",
            RegisterError::TooManyContacts => "register.too_many_contacts",
            RegisterError::Full => "register.full",
        }
    }
}

/// What a REGISTER did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// Every binding of the address now, with its remaining seconds (the 200's
    /// `Contact` list, §10.3 step 8).
    pub contacts: Vec<(String, u32)>,
    /// The address had no binding before and has one now.
    pub started: bool,
    /// The address had bindings before and has none now.
    pub ended: bool,
}

/// Bindings of every address of record.
#[derive(Debug)]
pub struct Registrar<P> {
    limits: RegistrarLimits,
    bindings: HashMap<Address, Vec<Binding<P>>>,
    total: usize,
    /// Expiry times, for the next deadline and expiry in time order.
    deadlines: BTreeSet<(Instant, Address)>,
}

impl<P: Clone> Registrar<P> {
    pub fn new(limits: RegistrarLimits) -> Self {
        Registrar {
            limits,
            bindings: HashMap::new(),
            total: 0,
            deadlines: BTreeSet::new(),
        }
    }

    /// Applies a REGISTER for `aor` that came from `peer`. A query (no contacts) changes
    /// nothing and lists the bindings.
    pub fn register(
        &mut self,
        now: Instant,
        aor: &Address,
        req: &RegisterRequest,
        peer: P,
    ) -> Result<Registered, RegisterError> {
        self.expire_aor(now, aor);
        let before = self.bindings.get(aor).map_or(0, Vec::len);
        if req.wildcard {
            if !req.contacts.is_empty() || req.expires != Some(0) {
                return Err(RegisterError::BadWildcard);
            }
            if let Some(list) = self.bindings.get(aor) {
                if list
                    .iter()
                    .any(|b| b.call_id == req.call_id && req.cseq <= b.cseq)
                {
                    return Err(RegisterError::OutOfOrder);
                }
            }
            self.remove_aor(aor);
        } else {
            // Check everything first: a refused request changes nothing.
            let mut plan = Vec::with_capacity(req.contacts.len());
            let mut added = 0usize;
            for c in &req.contacts {
                let asked = c
                    .expires
                    .or(req.expires)
                    .unwrap_or(self.limits.default_expires);
                if asked != 0 && asked < self.limits.min_expires {
                    return Err(RegisterError::IntervalTooBrief {
                        min: self.limits.min_expires,
                    });
                }
                let existing = self
                    .bindings
                    .get(aor)
                    .and_then(|l| l.iter().find(|b| b.contact == c.uri));
                if let Some(b) = existing {
                    if b.call_id == req.call_id && req.cseq <= b.cseq {
                        return Err(RegisterError::OutOfOrder);
                    }
                } else if asked != 0 && !plan.iter().any(|(u, _): &(&str, u32)| *u == c.uri) {
                    added += 1;
                }
                plan.push((c.uri.as_str(), asked.min(self.limits.max_expires)));
            }
            if before + added > self.limits.max_contacts_per_aor {
                return Err(RegisterError::TooManyContacts);
            }
            if self.total + added > self.limits.max_bindings {
                return Err(RegisterError::Full);
            }
            for (uri, secs) in plan {
                self.set(now, aor, uri, secs, &req.call_id, req.cseq, peer.clone());
            }
        }
        let after = self.bindings.get(aor).map_or(0, Vec::len);
        Ok(Registered {
            contacts: self.contacts_of(now, aor),
            started: before == 0 && after > 0,
            ended: before > 0 && after == 0,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn set(
        &mut self,
        now: Instant,
        aor: &Address,
        uri: &str,
        secs: u32,
        call_id: &str,
        cseq: u32,
        peer: P,
    ) {
        let list = self.bindings.entry(aor.clone()).or_default();
        if let Some(pos) = list.iter().position(|b| b.contact == uri) {
            let old = list.remove(pos);
            self.total -= 1;
            self.deadlines.remove(&(old.expires_at, aor.clone()));
        }
        if secs > 0 {
            let expires_at = now + Duration::from_secs(u64::from(secs));
            list.push(Binding {
                contact: uri.to_owned(),
                peer,
                expires_at,
                call_id: call_id.to_owned(),
                cseq,
            });
            self.total += 1;
            self.deadlines.insert((expires_at, aor.clone()));
        }
        if list.is_empty() {
            self.bindings.remove(aor);
        }
    }

    fn remove_aor(&mut self, aor: &Address) {
        if let Some(list) = self.bindings.remove(aor) {
            self.total -= list.len();
            for b in list {
                self.deadlines.remove(&(b.expires_at, aor.clone()));
            }
        }
    }

    fn expire_aor(&mut self, now: Instant, aor: &Address) {
        let Some(list) = self.bindings.get_mut(aor) else {
            return;
        };
        let before = list.len();
        let mut gone = Vec::new();
        list.retain(|b| {
            let keep = b.expires_at > now;
            if !keep {
                gone.push(b.expires_at);
            }
            keep
        });
        self.total -= before - list.len();
        if list.is_empty() {
            self.bindings.remove(aor);
        }
        for at in gone {
            self.deadlines.remove(&(at, aor.clone()));
        }
    }

    /// Removes what expired by `now`; returns the addresses left with no binding.
    pub fn expire(&mut self, now: Instant) -> Vec<Address> {
        let due: Vec<Address> = self
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, a)| a.clone())
            .collect();
        let mut ended = Vec::new();
        for aor in due {
            let had = self.bindings.contains_key(&aor);
            self.expire_aor(now, &aor);
            if had && !self.bindings.contains_key(&aor) && !ended.contains(&aor) {
                ended.push(aor);
            }
        }
        ended
    }

    /// The next expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// The live bindings of `aor`.
    pub fn bindings(&self, now: Instant, aor: &Address) -> Vec<Binding<P>> {
        self.bindings
            .get(aor)
            .map(|l| l.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default()
    }

    /// Whether `aor` has a live binding.
    pub fn is_registered(&self, now: Instant, aor: &Address) -> bool {
        self.bindings
            .get(aor)
            .is_some_and(|l| l.iter().any(|b| b.expires_at > now))
    }

    /// Bindings held in all.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether no binding is held.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn contacts_of(&self, now: Instant, aor: &Address) -> Vec<(String, u32)> {
        self.bindings
            .get(aor)
            .map(|l| {
                l.iter()
                    .map(|b| {
                        let left = b.expires_at.saturating_duration_since(now).as_secs();
                        (b.contact.clone(), u32::try_from(left).unwrap_or(u32::MAX))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}
