//! Rate limits per remote address and per identity on what a stranger can repeat
//! cheaply: entering rooms (create, join, knock, call, answering invitations) and chat.
//! The per-address limit holds every identity at one address; the per-identity limit
//! (the same quota) holds one identity across addresses, so a name cannot be hammered
//! from many places at once. The admin token is not limited. The address is the client's as [`crate::proxy::client_addr`] found it: behind
//! a reverse proxy listed in `web.trusted_proxies` each client has its own; behind one
//! that is not listed every client shares the proxy's, so list it (or raise the limits).

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use conclave_engine::Address;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::Ctx;
use crate::App;

/// Limits per remote address, per minute (0: no limit). The burst is the same number,
/// so a client may spend a minute's allowance at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSettings {
    /// Room entries (create, join, knock, call, invitation answers).
    pub entries_per_min: u32,
    /// Chat messages.
    pub chat_per_min: u32,
}

impl Default for RateSettings {
    /// Ten entries and twenty messages a second, sustained: far above what people
    /// do, far below a flood.
    fn default() -> Self {
        RateSettings {
            entries_per_min: 600,
            chat_per_min: 1200,
        }
    }
}

/// Checks between two sweeps of addresses that have gone quiet (bounds the memory a
/// stream of new addresses can take).
const SWEEP_EVERY: u64 = 4096;

pub(crate) struct RateLimits {
    entries: Option<DefaultKeyedRateLimiter<IpAddr>>,
    chat: Option<DefaultKeyedRateLimiter<IpAddr>>,
    entries_by_identity: Option<DefaultKeyedRateLimiter<Address>>,
    chat_by_identity: Option<DefaultKeyedRateLimiter<Address>>,
    checks: AtomicU64,
}

fn limiter<K: Clone + Eq + Hash>(per_min: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_min).map(|n| DefaultKeyedRateLimiter::keyed(Quota::per_minute(n)))
}

impl RateLimits {
    pub(crate) fn new(s: RateSettings) -> Self {
        RateLimits {
            entries: limiter(s.entries_per_min),
            chat: limiter(s.chat_per_min),
            entries_by_identity: limiter(s.entries_per_min),
            chat_by_identity: limiter(s.chat_per_min),
            checks: AtomicU64::new(0),
        }
    }

    fn check<K: Clone + Eq + Hash>(
        &self,
        limiter: Option<&DefaultKeyedRateLimiter<K>>,
        key: Option<&K>,
        what: &str,
        from: &str,
        ctx: &Ctx,
    ) -> ApiResult<()> {
        let (Some(limiter), Some(key)) = (limiter, key) else {
            return Ok(());
        };
        if matches!(ctx.caller, Caller::Admin) {
            return Ok(());
        }
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = u32::try_from(wait.as_secs() + 1).unwrap_or(u32::MAX);
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate.limited",
                format!("too many {what} from {from}; try again in {secs} s"),
            )
            .with_retry_after(secs)
        })
    }
}

/// Refuses a room entry over the address's limit.
pub(crate) fn entry(app: &App, ctx: &Ctx) -> ApiResult<()> {
    let ip = ctx.remote.map(|r| r.ip());
    let l = &app.limits;
    l.check(
        l.entries.as_ref(),
        ip.as_ref(),
        "room entries",
        "your address",
        ctx,
    )
}

/// Refuses a room entry over the identity's limit (once the entering identity is
/// known).
pub(crate) fn entry_as(app: &App, ctx: &Ctx, identity: &Address) -> ApiResult<()> {
    let l = &app.limits;
    let what = "room entries";
    l.check(
        l.entries_by_identity.as_ref(),
        Some(identity),
        what,
        "this identity",
        ctx,
    )
}

/// Refuses a chat message over the address's or the identity's limit.
pub(crate) fn chat(app: &App, ctx: &Ctx) -> ApiResult<()> {
    let ip = ctx.remote.map(|r| r.ip());
    let l = &app.limits;
    l.check(
        l.chat.as_ref(),
        ip.as_ref(),
        "chat messages",
        "your address",
        ctx,
    )?;
    let identity = match &ctx.caller {
        Caller::Participant { who, .. } => Some(&who.identity),
        Caller::Admin | Caller::Anonymous => None,
    };
    l.check(
        l.chat_by_identity.as_ref(),
        identity,
        "chat messages",
        "this identity",
        ctx,
    )
}
