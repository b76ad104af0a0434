//! Email, as VROOM sends it: `mailto:` invitations with a link that opens the page and
//! carries the single-use bearer secret, and optional join notifications to a room's
//! owners. Mail goes through an SMTP relay from the configuration (lettre).
//!
//! The engine keeps only the digest of an invitation's secret, so the committed feed
//! cannot give the secret back: invitations are delivered from the command's outcome by
//! the gateway that made the secret (after the `send_invitation` event is committed,
//! never before, and never holding the request). Join notifications follow the committed
//! feed. Every mail is sent by a task of its own, retried with exponential backoff while
//! the relay fails transiently (a permanent 5xx refusal is not retried); the outcome is
//! logged (never the secret) and counted in `/metrics` and `/about/health` (the `mail`
//! source). Deliveries are not journaled.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use conclave_engine::event::EventKind;
use conclave_engine::ids::{Address, Principal, RoomName, Scheme};
use conclave_engine::service::{Engine, FeedFilter};
use conclave_engine::Role;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Value};

use crate::StatusSource;

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpSecurity {
    /// Plain SMTP (a relay on the same host or a test sink).
    #[default]
    None,
    /// STARTTLS, required (port 587).
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

impl std::str::FromStr for SmtpSecurity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(SmtpSecurity::None),
            "starttls" => Ok(SmtpSecurity::StartTls),
            "tls" => Ok(SmtpSecurity::Tls),
            _ => Err(format!("{s:?}: use none, starttls or tls")),
        }
    }
}

/// The mail settings of `conclave serve` (`[smtp]`, `web.public_url`).
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// Relay host name or address.
    pub host: String,
    /// Relay port.
    pub port: u16,
    /// Transport security.
    pub security: SmtpSecurity,
    /// User name and password for SMTP AUTH, if the relay wants them.
    pub credentials: Option<(String, String)>,
    /// The From of every mail.
    pub from: Mailbox,
    /// The server's address as browsers reach it (`https://meet.example.org`): links
    /// are `<public_url>/r/<room>?invitation=<secret>`.
    pub public_url: String,
    /// Mail a room's owners when someone joins it (VROOM's join notifications).
    pub notify_joins: bool,
    /// Tries per mail before giving up.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled each time, at most [`MAX_BACKOFF`].
    pub first_backoff: Duration,
    /// Connection and command timeout.
    pub timeout: Duration,
}

/// The longest wait between two tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Mails being sent or waiting for a retry at once; past that, new ones are dropped
/// (counted), so a dead relay cannot make the server hold unbounded memory.
const MAX_PENDING: usize = 1024;

/// Why a mail could not be composed.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The address is not a usable mailbox.
    #[error("not a mailbox: {0}")]
    Address(String),
    /// The message could not be built.
    #[error("cannot compose the mail: {0}")]
    Compose(String),
}

/// What kind of mail, as counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// An email invitation.
    Invitation,
    /// A join notification.
    JoinNotification,
}

impl MailKind {
    fn as_str(self) -> &'static str {
        match self {
            MailKind::Invitation => "invitation",
            MailKind::JoinNotification => "join_notification",
        }
    }
    const ALL: [MailKind; 2] = [MailKind::Invitation, MailKind::JoinNotification];
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// Reads one counter of a [`Counters`].
type Field = fn(&Counters) -> &AtomicU64;

#[derive(Default)]
struct Stats {
    by_kind: [Counters; 2],
    pending: AtomicUsize,
}

impl Stats {
    fn of(&self, kind: MailKind) -> &Counters {
        &self.by_kind[kind as usize]
    }
}

/// The mailer: composes and queues mail; cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    settings: Arc<MailSettings>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field(
                "relay",
                &format_args!("{}:{}", self.settings.host, self.settings.port),
            )
            .finish()
    }
}

impl Mailer {
    /// A mailer for `settings` (no connection is made until the first mail).
    pub fn new(settings: MailSettings) -> Result<Mailer, String> {
        let s = &settings;
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.as_str())
            .port(s.port)
            .timeout(Some(s.timeout));
        let tls = || {
            TlsParameters::new(s.host.clone()).map_err(|e| format!("smtp TLS for {}: {e}", s.host))
        };
        b = match s.security {
            SmtpSecurity::None => b.tls(Tls::None),
            SmtpSecurity::StartTls => b.tls(Tls::Required(tls()?)),
            SmtpSecurity::Tls => b.tls(Tls::Wrapper(tls()?)),
        };
        if let Some((user, pass)) = &s.credentials {
            b = b.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        Ok(Mailer {
            transport: b.build(),
            settings: Arc::new(settings),
            stats: Arc::default(),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &MailSettings {
        &self.settings
    }

    /// The mailer's contribution to health and metrics.
    pub fn status(&self) -> Arc<dyn StatusSource> {
        Arc::new(self.clone())
    }

    /// Queues an email invitation; returns at once.
    pub fn send_invitation(&self, invite: &Invitation<'_>) {
        match invitation_mail(&self.settings, invite) {
            Ok(m) => self.queue(MailKind::Invitation, m, invite.invitation.to_owned()),
            Err(e) => {
                self.stats
                    .of(MailKind::Invitation)
                    .failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(invitation = invite.invitation, error = %e, "email invitation not sent");
            }
        }
    }

    fn queue(&self, kind: MailKind, message: Message, what: String) {
        let counters = self.stats.of(kind);
        if self.stats.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING {
            self.stats.pending.fetch_sub(1, Ordering::AcqRel);
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                kind = kind.as_str(),
                what,
                "mail dropped: too many waiting for the relay"
            );
            return;
        }
        let me = self.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.stats.pending.fetch_sub(1, Ordering::AcqRel);
            counters.failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        rt.spawn(async move {
            me.deliver(kind, message, &what).await;
            me.stats.pending.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// Tries until sent, refused for good, or out of attempts.
    async fn deliver(&self, kind: MailKind, message: Message, what: &str) {
        let counters = self.stats.of(kind);
        let mut wait = self.settings.first_backoff;
        let attempts = self.settings.max_attempts.max(1);
        for attempt in 1..=attempts {
            match self.transport.send(message.clone()).await {
                Ok(_) => {
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(kind = kind.as_str(), what, attempt, "mail sent");
                    return;
                }
                Err(e) if e.is_permanent() => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(kind = kind.as_str(), what, error = %e, "mail refused by the relay");
                    return;
                }
                Err(e) if attempt < attempts => {
                    counters.retried.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(kind = kind.as_str(), what, attempt, error = %e, retry_in_ms = wait.as_millis() as u64, "mail relay failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(kind = kind.as_str(), what, attempts, error = %e, "mail not sent: giving up");
                }
            }
        }
    }

    /// Follows the committed feed and mails a room's owners when someone joins it
    /// (only when [`MailSettings::notify_joins`]); runs until the engine stops.
    pub async fn notify_joins(self, engine: Engine) {
        if !self.settings.notify_joins {
            return;
        }
        let mut feed = engine.subscribe(engine.head() + 1, FeedFilter::all());
        while let Some(e) = feed.follow("join notifications").await {
            let EventKind::Joined {
                room,
                principal,
                address,
                ..
            } = &e.event.kind
            else {
                continue;
            };
            let owners = engine.read(|st| owner_mailboxes(st, room, principal));
            for to in owners {
                let n = JoinNotice {
                    to: &to,
                    room,
                    who: address,
                    at: e.event.at,
                };
                match join_notification_mail(&self.settings, &n) {
                    Ok(m) => self.queue(MailKind::JoinNotification, m, format!("{room}")),
                    Err(err) => tracing::warn!(%room, error = %err, "join notification not sent"),
                }
            }
        }
    }
}

/// The `mailto:` addresses of a room's owners (an owner by address, or an account's
/// linked `mailto:` identities), the joiner excepted.
fn owner_mailboxes(
    st: &conclave_engine::State,
    room: &RoomName,
    joiner: &Principal,
) -> Vec<Address> {
    let Some(r) = st.rooms.get(room) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (p, role) in &r.affiliations {
        if *role != Role::Owner || p == joiner {
            continue;
        }
        match p {
            Principal::Address(a) if a.scheme() == Scheme::Mailto => out.push(a.clone()),
            Principal::Address(_) => {}
            Principal::Account(id) => {
                if let Some(acc) = st.accounts.get(id) {
                    out.extend(
                        acc.identities
                            .iter()
                            .filter(|a| a.scheme() == Scheme::Mailto)
                            .cloned(),
                    );
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What an invitation mail says.
#[derive(Debug)]
pub struct Invitation<'a> {
    /// The invitee (`mailto:`).
    pub to: &'a Address,
    /// The room.
    pub room: &'a RoomName,
    /// Who invited (as the journal names them).
    pub by: &'a str,
    /// The invitation id (logged; not in the mail).
    pub invitation: &'a str,
    /// The bearer secret (only in the link).
    pub secret: &'a str,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether the link works once.
    pub single_use: bool,
}

/// A join notification.
#[derive(Debug)]
pub struct JoinNotice<'a> {
    /// The owner (`mailto:`).
    pub to: &'a Address,
    /// The room.
    pub room: &'a RoomName,
    /// Who joined.
    pub who: &'a Address,
    /// When.
    pub at: DateTime<Utc>,
}

fn mailbox(a: &Address) -> Result<Mailbox, MailError> {
    if a.scheme() != Scheme::Mailto {
        return Err(MailError::Address(a.to_string()));
    }
    let email = a.to_string();
    let email = email.strip_prefix("mailto:").unwrap_or(&email);
    email
        .parse::<Mailbox>()
        .map_err(|e| MailError::Address(format!("{email}: {e}")))
}

/// Percent-encodes a path segment or query value (RFC 3986 unreserved kept).
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The page's address for `room` carrying the invitation `secret`.
pub fn invitation_link(public_url: &str, room: &RoomName, secret: &str) -> String {
    format!(
        "{}/r/{}?invitation={}",
        public_url.trim_end_matches('/'),
        encode_component(room.as_str()),
        encode_component(secret)
    )
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Composes an invitation mail (text/plain, UTF-8).
pub fn invitation_mail(s: &MailSettings, i: &Invitation<'_>) -> Result<Message, MailError> {
    let link = invitation_link(&s.public_url, i.room, i.secret);
    let mut body = format!(
        "{} invites you to the conference room \"{}\".\n\nOpen this link to join it{}:\n\n{}\n",
        i.by,
        i.room.as_str(),
        if i.single_use { " (it works once)" } else { "" },
        link
    );
    if let Some(t) = i.expires_at {
        let _ = write!(body, "\nThe invitation expires at {}.\n", time(t));
    }
    body.push_str("\nIf you did not expect this invitation, you can ignore this message.\n");
    Message::builder()
        .from(s.from.clone())
        .to(mailbox(i.to)?)
        .subject(format!("Invitation to the room {}", i.room.as_str()))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| MailError::Compose(e.to_string()))
}

/// Composes a join notification (text/plain, UTF-8).
pub fn join_notification_mail(s: &MailSettings, n: &JoinNotice<'_>) -> Result<Message, MailError> {
    let page = format!(
        "{}/r/{}",
        s.public_url.trim_end_matches('/'),
        encode_component(n.room.as_str())
    );
    let body = format!(
        "{} joined your room \"{}\" at {}.\n\n{}\n\nYou get this message because you own the room.\n",
        n.who,
        n.room.as_str(),
        time(n.at),
        page
    );
    Message::builder()
        .from(s.from.clone())
        .to(mailbox(n.to)?)
        .subject(format!("{} joined {}", n.who, n.room.as_str()))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| MailError::Compose(e.to_string()))
}

impl StatusSource for Mailer {
    fn name(&self) -> String {
        "mail".into()
    }

    fn health(&self) -> Value {
        let mut kinds = serde_json::Map::new();
        for k in MailKind::ALL {
            let c = self.stats.of(k);
            kinds.insert(
                k.as_str().to_owned(),
                json!({
                    "sent": c.sent.load(Ordering::Relaxed),
                    "retried": c.retried.load(Ordering::Relaxed),
                    "failed": c.failed.load(Ordering::Relaxed),
                    "dropped": c.dropped.load(Ordering::Relaxed),
                }),
            );
        }
        json!({
            "relay": format!("{}:{}", self.settings.host, self.settings.port),
            "pending": self.stats.pending.load(Ordering::Relaxed),
            "notify_joins": self.settings.notify_joins,
            "mail": kinds,
        })
    }

    fn metrics(&self) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, Field); 4] = [
            (
                "conclave_mail_sent_total",
                "Mails the relay accepted.",
                |c| &c.sent,
            ),
            (
                "conclave_mail_retries_total",
                "Failed tries at the relay that were retried.",
                |c| &c.retried,
            ),
            (
                "conclave_mail_failed_total",
                "Mails given up (refused, out of tries, or not composable).",
                |c| &c.failed,
            ),
            (
                "conclave_mail_dropped_total",
                "Mails dropped because too many were waiting for the relay.",
                |c| &c.dropped,
            ),
        ];
        for (name, help, field) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for k in MailKind::ALL {
                let v = field(self.stats.of(k)).load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{kind=\"{}\"}} {v}", k.as_str());
            }
        }
        let _ = writeln!(
            out,
            "# HELP conclave_mail_pending Mails being sent or waiting for a retry.\n# TYPE conclave_mail_pending gauge\nconclave_mail_pending {}",
            self.stats.pending.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn settings() -> MailSettings {
        MailSettings {
            host: "127.0.0.1".into(),
            port: 2525,
            security: SmtpSecurity::None,
            credentials: None,
            from: "Conclave <conclave@example.org>".parse().unwrap(),
            public_url: "https://meet.example.org/".into(),
            notify_joins: false,
            max_attempts: 3,
            first_backoff: Duration::from_millis(10),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn an_invitation_mail_carries_the_link_with_the_secret() {
        let to = Address::parse("mailto:x@example.org").unwrap();
        let room = RoomName::from_stored("café standup".into());
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let m = invitation_mail(
            &settings(),
            &Invitation {
                to: &to,
                room: &room,
                by: "web:alice",
                invitation: "0123",
                secret: "s3cr3t-0f-64-hex",
                expires_at: Some(at),
                single_use: true,
            },
        )
        .unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(
            text.contains("From: Conclave <conclave@example.org>\r\n"),
            "{text}"
        );
        assert!(text.contains("To: x@example.org\r\n"), "{text}");
        assert!(text.contains("Subject: "), "{text}");
        assert!(
            text.contains("Content-Type: text/plain; charset=utf-8"),
            "{text}"
        );
        // The body may be quoted-printable or base64: decode it as the sink does.
        let body = decoded_body(&text);
        assert!(
            body.contains(
                "https://meet.example.org/r/caf%C3%A9%20standup?invitation=s3cr3t-0f-64-hex"
            ),
            "{body}"
        );
        assert!(body.contains("web:alice invites you"), "{body}");
        assert!(body.contains("(it works once)"), "{body}");
        assert!(body.contains("expires at 2023-11-14T22:13:20Z"), "{body}");
        assert!(!body.contains("0123"), "the id is not in the mail");
        // The envelope goes to the invitee only.
        let env = m.envelope();
        assert_eq!(env.to().len(), 1);
        assert_eq!(env.to()[0].to_string(), "x@example.org");
    }

    #[test]
    fn only_mailto_addresses_get_mail() {
        let to = Address::parse("sip:bob@example.org").unwrap();
        let room = RoomName::from_stored("r".into());
        let n = JoinNotice {
            to: &to,
            room: &room,
            who: &to,
            at: Utc::now(),
        };
        assert!(matches!(
            join_notification_mail(&settings(), &n),
            Err(MailError::Address(_))
        ));
    }

    #[test]
    fn a_join_notification_names_who_and_where() {
        let to = Address::parse("mailto:owner@example.org").unwrap();
        let who = Address::parse("web:bob").unwrap();
        let room = RoomName::from_stored("standup".into());
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let n = JoinNotice {
            to: &to,
            room: &room,
            who: &who,
            at,
        };
        let text = String::from_utf8(join_notification_mail(&settings(), &n).unwrap().formatted())
            .unwrap();
        let body = decoded_body(&text);
        assert!(
            body.contains("web:bob joined your room \"standup\""),
            "{body}"
        );
        assert!(
            body.contains("https://meet.example.org/r/standup"),
            "{body}"
        );
    }

    /// The body of a formatted single-part message, undoing its transfer encoding.
    fn decoded_body(text: &str) -> String {
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        if head.contains("Content-Transfer-Encoding: base64") {
            use base64::Engine as _;
            let raw: String = body.split_whitespace().collect();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(raw)
                    .unwrap(),
            )
            .unwrap()
        } else if head.contains("Content-Transfer-Encoding: quoted-printable") {
            let joined = body.replace("=\r\n", "");
            let bytes = joined.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'=' && i + 2 < bytes.len() {
                    let h = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(h, 16).unwrap());
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap().replace("\r\n", "\n")
        } else {
            body.replace("\r\n", "\n")
        }
    }
}
