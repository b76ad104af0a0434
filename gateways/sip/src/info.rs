//! DTMF over SIP `INFO` (the `application/dtmf-relay` and `application/dtmf` bodies that
//! phones send when RFC 4733 is off), and the `*6`/`*1` keypad commands that both INFO
//! and RFC 4733 digits feed.

use std::time::{Duration, Instant};

use conclave_media::dtmf::digit_for_event;
use thiserror::Error;

/// The `Accept` header value of a 415 answer to an INFO whose body is not DTMF.
pub const INFO_ACCEPT: &str = "application/dtmf-relay, application/dtmf";

/// The largest DTMF body read: real ones are under 40 bytes.
pub const MAX_INFO_BODY: usize = 1024;

/// Why a DTMF INFO body was refused (the caller answers 400).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InfoError {
    /// The body is not UTF-8 text.
    #[error("DTMF body is not text")]
    Malformed,
    /// A `dtmf-relay` body without a `Signal=` line, or an empty `dtmf` body.
    #[error("DTMF body has no signal")]
    NoSignal,
    /// The signal is not a DTMF key.
    #[error("DTMF signal is not 0-9, *, #, A-D, 10 or 11")]
    BadSignal,
    /// The body is over [`MAX_INFO_BODY`].
    #[error("DTMF body of {0} bytes is too large")]
    TooLarge(usize),
}

impl InfoError {
    /// The stable code for logs.
    pub fn code(&self) -> &'static str {
        match self {
            InfoError::Malformed => "info.malformed",
            InfoError::NoSignal => "info.no_signal",
            InfoError::BadSignal => "info.bad_signal",
            InfoError::TooLarge(_) => "info.too_large",
        }
    }
}

/// The key pressed in a DTMF INFO: `Ok(None)` when the content type is not a DTMF one
/// (the caller answers 415 with `Accept: INFO_ACCEPT`; an INFO without a body is the
/// caller's 200). Keys come back as `0-9`, `*`, `#` and `A-D` (upper case).
pub fn dtmf_from_info(content_type: &str, body: &[u8]) -> Result<Option<char>, InfoError> {
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    let relay = media_type.eq_ignore_ascii_case("application/dtmf-relay");
    if !relay && !media_type.eq_ignore_ascii_case("application/dtmf") {
        return Ok(None);
    }
    if body.len() > MAX_INFO_BODY {
        return Err(InfoError::TooLarge(body.len()));
    }
    let text = std::str::from_utf8(body).map_err(|_| InfoError::Malformed)?;
    let signal = if relay {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("signal"))
            .map(|(_, v)| v.trim())
            .ok_or(InfoError::NoSignal)?
    } else {
        text.trim()
    };
    if signal.is_empty() {
        return Err(InfoError::NoSignal);
    }
    signal_key(signal).map(Some).ok_or(InfoError::BadSignal)
}

/// A DTMF key from its text: the key itself, or its RFC 4733 event number (10 is `*`,
/// 11 is `#`, 12-15 are A-D), as some phones send.
fn signal_key(signal: &str) -> Option<char> {
    let mut chars = signal.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Some(c),
        (Some(c @ ('A'..='D' | 'a'..='d')), None) => Some(c.to_ascii_uppercase()),
        _ => signal.parse::<u8>().ok().and_then(digit_for_event),
    }
}

/// A keypad command of a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfCommand {
    /// `*6`: mute or unmute oneself.
    ToggleMute,
    /// `*1`: raise or lower one's hand.
    ToggleHand,
}

/// How long after `*` the command digit may come.
pub const COMMAND_WINDOW: Duration = Duration::from_secs(3);

/// Recognises `*6` and `*1` in a caller's digits: a `*` followed within the window by
/// the command digit; any other key resets. Fed one key per press (the caller collapses
/// an RFC 4733 event's retransmissions and end packets into one press).
#[derive(Debug, Clone)]
pub struct DtmfCommands {
    star_at: Option<Instant>,
    window: Duration,
}

impl Default for DtmfCommands {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfCommands {
    /// A recognizer with the 3 s window.
    pub fn new() -> Self {
        Self::with_window(COMMAND_WINDOW)
    }

    /// A recognizer with another window (configuration, tests).
    pub fn with_window(window: Duration) -> Self {
        DtmfCommands {
            star_at: None,
            window,
        }
    }

    /// Feeds a key pressed at `now`; returns the command it completes, if any.
    pub fn push(&mut self, key: char, now: Instant) -> Option<DtmfCommand> {
        let star_at = self.star_at.take();
        if key == '*' {
            self.star_at = Some(now);
            return None;
        }
        let in_time = star_at.is_some_and(|t| now.saturating_duration_since(t) <= self.window);
        if !in_time {
            return None;
        }
        match key {
            '6' => Some(DtmfCommand::ToggleMute),
            '1' => Some(DtmfCommand::ToggleHand),
            _ => None,
        }
    }

    /// When a pending `*` lapses, if one is pending (it is dropped lazily on the next
    /// key; this is for callers that want to show or log the timeout).
    pub fn deadline(&self) -> Option<Instant> {
        self.star_at.and_then(|t| t.checked_add(self.window))
    }
}
