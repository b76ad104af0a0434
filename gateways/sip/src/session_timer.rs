//! RFC 4028 session timers, UAS side: reading `Session-Expires` and `Min-SE`, choosing
//! the interval and refresher of our 2xx or a 422, and when an unrefreshed session ends.
//!
//! We prefer the caller to refresh (`refresher=uac`): a conference server that re-INVITEs
//! hundreds of phones would only add load. Pure functions over header values.

use std::time::{Duration, Instant};

use thiserror::Error;

/// The smallest interval RFC 4028 §5 allows anyone to ask for.
pub const RFC_MIN_SE: u32 = 90;

/// Header values longer than this are refused unread.
const MAX_HEADER_VALUE: usize = 256;

/// Who sends the refreshing re-INVITE or UPDATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refresher {
    Uac,
    Uas,
}

impl Refresher {
    /// The parameter value, as in `refresher=uac`.
    pub fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// A parsed `Session-Expires` value: `delta-seconds [;refresher=uac|uas]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    pub delta: u32,
    pub refresher: Option<Refresher>,
}

/// Our policy: the smallest interval we accept (at least 90) and the one we ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    pub min_se: u32,
    pub default_expires: u32,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            min_se: RFC_MIN_SE,
            default_expires: 1800,
        }
    }
}

/// The timer of a session, as our 2xx states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// The session interval in seconds.
    pub expires: u32,
    pub refresher: Refresher,
    /// Whether the 2xx carries `Require: timer` (RFC 4028 §9: always when the UAC
    /// refreshes, and when the UAC said `Supported: timer`).
    pub require_timer: bool,
}

impl SessionTimer {
    /// The value of our 2xx's `Session-Expires` header, e.g. `1800;refresher=uac`.
    pub fn header_value(&self) -> String {
        format!("{};refresher={}", self.expires, self.refresher.as_str())
    }
}

/// Why a request's timer headers were refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimerError {
    /// A `Session-Expires` or `Min-SE` value that does not parse (the caller answers 400).
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// The interval asked for is under our minimum: answer `422 Session Interval Too
    /// Small` with `Min-SE: <min_se>`.
    #[error("session interval too small: at least {min_se} s")]
    TooSmall { min_se: u32 },
}

impl TimerError {
    /// The stable code for logs and journaled reasons.
    pub fn code(&self) -> &'static str {
        match self {
            TimerError::Malformed(_) => "timer.malformed",
            TimerError::TooSmall { .. } => "timer.too_small",
        }
    }

    /// The SIP final response for the request.
    pub fn sip_status(&self) -> u16 {
        match self {
            TimerError::Malformed(_) => 400,
            TimerError::TooSmall { .. } => 422,
        }
    }
}

/// Parses a `Session-Expires` value. Deltas past 2^32-1 count as 2^32-1 (RFC 3261
/// delta-seconds); an unknown refresher value is ignored like a generic parameter.
pub fn parse_session_expires(value: &str) -> Result<SessionExpires, TimerError> {
    const NAME: &str = "Session-Expires";
    let (delta, params) = delta_and_params(value, NAME)?;
    let mut refresher = None;
    for param in params {
        let (name, v) = param.split_once('=').unwrap_or((param, ""));
        if name.trim().eq_ignore_ascii_case("refresher") {
            let v = v.trim();
            refresher = if v.eq_ignore_ascii_case("uac") {
                Some(Refresher::Uac)
            } else if v.eq_ignore_ascii_case("uas") {
                Some(Refresher::Uas)
            } else {
                refresher
            };
        }
    }
    Ok(SessionExpires { delta, refresher })
}

/// Parses a `Min-SE` value: `delta-seconds *(;generic-param)`.
pub fn parse_min_se(value: &str) -> Result<u32, TimerError> {
    delta_and_params(value, "Min-SE").map(|(delta, _)| delta)
}

fn delta_and_params<'a>(
    value: &'a str,
    name: &'static str,
) -> Result<(u32, impl Iterator<Item = &'a str>), TimerError> {
    if value.len() > MAX_HEADER_VALUE {
        return Err(TimerError::Malformed(name));
    }
    let mut parts = value.split(';');
    let delta = parts.next().unwrap_or("").trim();
    if delta.is_empty() || !delta.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimerError::Malformed(name));
    }
    // all digits: parsing fails only on overflow
    let delta = delta.parse::<u32>().unwrap_or(u32::MAX);
    Ok((delta, parts.map(str::trim).filter(|p| !p.is_empty())))
}

/// The timer to state in our 2xx to an INVITE or UPDATE (RFC 4028 §9), from the
/// request's `Session-Expires` and `Min-SE` header values and whether it said
/// `Supported: timer`. `Ok(None)`: the UAC neither supports timers nor asked for one, so
/// no timer (we would be the only refresher; dead calls are caught by RTP inactivity).
///
/// A `Session-Expires` under our minimum is refused with 422 even without
/// `Supported: timer` (RFC 4028 allows the 422 only with it, but then the UAS could not
/// raise the value either and would refresh every few seconds: a proxy inserting such a
/// value supports the 422). The interval is never raised above what the UAC asked; it
/// is lowered to our default, but not under the request's `Min-SE`.
pub fn decide(
    config: &TimerConfig,
    session_expires: Option<&str>,
    min_se: Option<&str>,
    supports_timer: bool,
) -> Result<Option<SessionTimer>, TimerError> {
    let our_min = config.min_se.max(RFC_MIN_SE);
    let their_min = min_se.map(parse_min_se).transpose()?;
    let floor = their_min.unwrap_or(RFC_MIN_SE).max(RFC_MIN_SE);
    let asked = session_expires.map(parse_session_expires).transpose()?;
    let Some(asked) = asked else {
        if !supports_timer {
            return Ok(None);
        }
        // the UAC supports timers without asking for one: we ask (§9)
        let timer = SessionTimer {
            expires: config.default_expires.max(our_min).max(floor),
            refresher: Refresher::Uac,
            require_timer: true,
        };
        return Ok(Some(timer));
    };
    if asked.delta < our_min || asked.delta < floor {
        return Err(TimerError::TooSmall {
            min_se: our_min.max(floor),
        });
    }
    let expires = asked
        .delta
        .min(config.default_expires.max(our_min).max(floor));
    let refresher = asked.refresher.unwrap_or(if supports_timer {
        Refresher::Uac
    } else {
        Refresher::Uas
    });
    Ok(Some(SessionTimer {
        expires,
        refresher,
        require_timer: refresher == Refresher::Uac || supports_timer,
    }))
}

/// When the session ends unless refreshed, counting from `now` (the 2xx of the last
/// refresh). RFC 4028 §10: when the UAC refreshes, we (the non-refresher) send the BYE
/// at the interval minus min(32 s, interval/3), so that the refresh had its chance and
/// the BYE arrives before the UAC's own expiry; when we refresh, the session lasts the
/// full interval (our refresh, see [`refresh_at`], comes at half of it).
pub fn expires_at(now: Instant, timer: &SessionTimer) -> Instant {
    let interval = u64::from(timer.expires);
    let secs = match timer.refresher {
        Refresher::Uac => interval - (interval / 3).min(32),
        Refresher::Uas => interval,
    };
    add(now, Duration::from_secs(secs))
}

/// When we must send the refresh, if we are the refresher: at half the interval
/// (RFC 4028 §7.4 / §10 recommendation).
pub fn refresh_at(now: Instant, timer: &SessionTimer) -> Option<Instant> {
    match timer.refresher {
        Refresher::Uas => Some(add(now, Duration::from_secs(u64::from(timer.expires) / 2))),
        Refresher::Uac => None,
    }
}

/// `now + d`, or a year from now when the clock cannot represent it.
fn add(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}
