//! How every refusal and failure answers on every protocol: one table, checked by the
//! compiler.
//!
//! Each [`Rejection`], each [`EngineError`] and each [`JournalError`] it wraps gets an
//! [`ErrorMapping`]: its [`ErrorClass`], an HTTP status, a SIP final response
//! ([`SipStatus`], RFC 3261 §21), an XMPP stanza error ([`XmppError`], RFC 6120 §8.3 as
//! XEP-0045 uses it), what the Kamailio-IMC-compatible SIP gateway does with a refused
//! `MESSAGE` ([`ImcOutcome`]), and a retry hint for what is only temporarily impossible.
//! Every `match` below lists every variant and has no catch-all arm, so a new variant does
//! not compile until it is mapped; `engine/tests/mapping.rs` enumerates every variant and
//! checks the table's rules, and the table in docs/api.md ("Error codes across
//! protocols") is generated from it.
//!
//! The rules the table follows:
//! - [`ErrorClass::Refused`]: 4xx on HTTP; 4xx or 6xx on SIP, never 5xx (a SIP 5xx makes a
//!   proxy try another server or report the server broken); the XEP-0045 condition where
//!   the MUC specification has the case.
//! - [`ErrorClass::Unavailable`]: 503 with `Retry-After` on HTTP; on SIP 503 with
//!   `Retry-After` when the whole service is down for a moment, so that a proxy holds
//!   requests back or fails over (RFC 3261 §21.5.4); an XMPP condition of type `wait`.
//! - [`ErrorClass::Internal`]: 500, 500 `Server Internal Error`, `internal-server-error`
//!   of type `cancel` (RFC 6120 §8.3.3.6 recommends `cancel`: retrying the same request
//!   meets the same fault). Details go to the log, never to the client.

use conclave_journal::JournalError;

use crate::rejection::Rejection;
use crate::service::EngineError;

/// Seconds to wait before retrying after a lost race inside the engine (the decider
/// resynchronizes with the journal at once).
pub const RETRY_SOON_SECS: u32 = 1;

/// Seconds to wait before retrying when the engine or journal is stopped or poisoned
/// (it comes back with a restart) or the server is at its user limit.
pub const RETRY_LATER_SECS: u32 = 30;

/// Whose problem an answer is: decides 4xx against 5xx on every protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The command was refused: its input, the caller's rights, or the state of the
    /// room or account. Retrying the same request gives the same answer until something
    /// changes.
    Refused,
    /// The server cannot take the request now but will again: it is stopping or
    /// restarting, lost a race with its own journal, or is at its configured user limit.
    /// Retry after the hint.
    Unavailable,
    /// The server failed: a bug, a corrupt record, a storage failure.
    Internal,
}

impl ErrorClass {
    /// Lowercase name, as in docs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Refused => "refused",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Internal => "internal",
        }
    }
}

/// The SIP final responses Conclave answers refusals and failures with (RFC 3261 §21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SipStatus {
    /// 403: refused by policy or rights. Also for wrong or missing room passwords: SIP's
    /// 401/407 are digest challenges of the proxy or gateway, and a room password is not
    /// a digest credential, so a 401 would make the phone retry with the SIP account's
    /// password.
    Forbidden,
    /// 404: the room or account the Request-URI names does not exist (and other unknown
    /// things named by a command).
    NotFound,
    /// 410: an invitation that was used, revoked or expired.
    Gone,
    /// 413: a `MESSAGE` body over the chat length limit (RFC 3428).
    RequestEntityTooLarge,
    /// 480: the callee cannot take the call now (a lobby to wait in, a disabled account,
    /// an account not in rendezvous mode).
    TemporarilyUnavailable,
    /// 481: the request names a session the engine does not have; a UA receiving it for
    /// a request inside a dialog ends that dialog (RFC 5057).
    CallDoesNotExist,
    /// 486: a full room. The phone plays busy; another room (another destination of a
    /// forking proxy) could still answer.
    BusyHere,
    /// 488: the request's content is not acceptable (invalid input, an empty message).
    NotAcceptableHere,
    /// 500: a failure of the server.
    ServerInternalError,
    /// 503 with `Retry-After`: the service is down for a moment; a proxy fails over or
    /// holds further requests back for the `Retry-After` time (RFC 3261 §21.5.4).
    ServiceUnavailable,
    /// 600 with `Retry-After`: the server is at its user limit. Not 503, which would make
    /// a proxy stop sending *every* request (those of people already in rooms too) to the
    /// gateway for the `Retry-After` time; "busy everywhere" because no other room on the
    /// server would take the call either.
    BusyEverywhere,
}

impl SipStatus {
    /// Every status used, for tests and docs.
    pub const ALL: &'static [SipStatus] = &[
        SipStatus::Forbidden,
        SipStatus::NotFound,
        SipStatus::Gone,
        SipStatus::RequestEntityTooLarge,
        SipStatus::TemporarilyUnavailable,
        SipStatus::CallDoesNotExist,
        SipStatus::BusyHere,
        SipStatus::NotAcceptableHere,
        SipStatus::ServerInternalError,
        SipStatus::ServiceUnavailable,
        SipStatus::BusyEverywhere,
    ];

    /// The status code.
    pub fn code(self) -> u16 {
        match self {
            SipStatus::Forbidden => 403,
            SipStatus::NotFound => 404,
            SipStatus::Gone => 410,
            SipStatus::RequestEntityTooLarge => 413,
            SipStatus::TemporarilyUnavailable => 480,
            SipStatus::CallDoesNotExist => 481,
            SipStatus::BusyHere => 486,
            SipStatus::NotAcceptableHere => 488,
            SipStatus::ServerInternalError => 500,
            SipStatus::ServiceUnavailable => 503,
            SipStatus::BusyEverywhere => 600,
        }
    }

    /// RFC 3261's reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            SipStatus::Forbidden => "Forbidden",
            SipStatus::NotFound => "Not Found",
            SipStatus::Gone => "Gone",
            SipStatus::RequestEntityTooLarge => "Request Entity Too Large",
            SipStatus::TemporarilyUnavailable => "Temporarily Unavailable",
            SipStatus::CallDoesNotExist => "Call/Transaction Does Not Exist",
            SipStatus::BusyHere => "Busy Here",
            SipStatus::NotAcceptableHere => "Not Acceptable Here",
            SipStatus::ServerInternalError => "Server Internal Error",
            SipStatus::ServiceUnavailable => "Service Unavailable",
            SipStatus::BusyEverywhere => "Busy Everywhere",
        }
    }
}

/// RFC 6120 §8.3.3's defined stanza error conditions (all of them, so that the type
/// admits nothing else).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XmppCondition {
    BadRequest,
    Conflict,
    FeatureNotImplemented,
    Forbidden,
    Gone,
    InternalServerError,
    ItemNotFound,
    JidMalformed,
    NotAcceptable,
    NotAllowed,
    NotAuthorized,
    PolicyViolation,
    RecipientUnavailable,
    Redirect,
    RegistrationRequired,
    RemoteServerNotFound,
    RemoteServerTimeout,
    ResourceConstraint,
    ServiceUnavailable,
    SubscriptionRequired,
    UndefinedCondition,
    UnexpectedRequest,
}

impl XmppCondition {
    /// Every defined condition.
    pub const ALL: &'static [XmppCondition] = &[
        XmppCondition::BadRequest,
        XmppCondition::Conflict,
        XmppCondition::FeatureNotImplemented,
        XmppCondition::Forbidden,
        XmppCondition::Gone,
        XmppCondition::InternalServerError,
        XmppCondition::ItemNotFound,
        XmppCondition::JidMalformed,
        XmppCondition::NotAcceptable,
        XmppCondition::NotAllowed,
        XmppCondition::NotAuthorized,
        XmppCondition::PolicyViolation,
        XmppCondition::RecipientUnavailable,
        XmppCondition::Redirect,
        XmppCondition::RegistrationRequired,
        XmppCondition::RemoteServerNotFound,
        XmppCondition::RemoteServerTimeout,
        XmppCondition::ResourceConstraint,
        XmppCondition::ServiceUnavailable,
        XmppCondition::SubscriptionRequired,
        XmppCondition::UndefinedCondition,
        XmppCondition::UnexpectedRequest,
    ];

    /// The element name (in the `urn:ietf:params:xml:ns:xmpp-stanzas` namespace).
    pub fn as_str(self) -> &'static str {
        match self {
            XmppCondition::BadRequest => "bad-request",
            XmppCondition::Conflict => "conflict",
            XmppCondition::FeatureNotImplemented => "feature-not-implemented",
            XmppCondition::Forbidden => "forbidden",
            XmppCondition::Gone => "gone",
            XmppCondition::InternalServerError => "internal-server-error",
            XmppCondition::ItemNotFound => "item-not-found",
            XmppCondition::JidMalformed => "jid-malformed",
            XmppCondition::NotAcceptable => "not-acceptable",
            XmppCondition::NotAllowed => "not-allowed",
            XmppCondition::NotAuthorized => "not-authorized",
            XmppCondition::PolicyViolation => "policy-violation",
            XmppCondition::RecipientUnavailable => "recipient-unavailable",
            XmppCondition::Redirect => "redirect",
            XmppCondition::RegistrationRequired => "registration-required",
            XmppCondition::RemoteServerNotFound => "remote-server-not-found",
            XmppCondition::RemoteServerTimeout => "remote-server-timeout",
            XmppCondition::ResourceConstraint => "resource-constraint",
            XmppCondition::ServiceUnavailable => "service-unavailable",
            XmppCondition::SubscriptionRequired => "subscription-required",
            XmppCondition::UndefinedCondition => "undefined-condition",
            XmppCondition::UnexpectedRequest => "unexpected-request",
        }
    }
}

/// The `type` attribute of an XMPP stanza error (RFC 6120 §8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XmppErrorType {
    /// Retry after providing credentials.
    Auth,
    /// Do not retry (the error cannot be remedied).
    Cancel,
    /// Proceed (the condition was only a warning).
    Continue,
    /// Retry after changing the data sent.
    Modify,
    /// Retry after waiting (the error is temporary).
    Wait,
}

impl XmppErrorType {
    /// Every type.
    pub const ALL: &'static [XmppErrorType] = &[
        XmppErrorType::Auth,
        XmppErrorType::Cancel,
        XmppErrorType::Continue,
        XmppErrorType::Modify,
        XmppErrorType::Wait,
    ];

    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            XmppErrorType::Auth => "auth",
            XmppErrorType::Cancel => "cancel",
            XmppErrorType::Continue => "continue",
            XmppErrorType::Modify => "modify",
            XmppErrorType::Wait => "wait",
        }
    }
}

/// An XMPP stanza error: `<error type='…'><condition xmlns='…-stanzas'/></error>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct XmppError {
    /// The defined condition.
    pub condition: XmppCondition,
    /// The error type.
    pub kind: XmppErrorType,
}

/// What the Kamailio-IMC-compatible SIP gateway does with a `MESSAGE` (a `#command` or a
/// chat line sent to a room) that was refused or failed.
///
/// Kamailio's IMC answers commands with `MESSAGE`s from the room to the user (`*** room
/// was created`, `invalid command '…' - send '#help' for details`) and fails a `MESSAGE`
/// it cannot handle (`imc_manager()` returns a negative code and the routing script
/// answers `500 command error`). Conclave keeps that split, with a SIP status that says
/// what happened instead of one 500. Refusals are journaled as events where the engine
/// journals them (a denied join), and the gateway relays those to the room like any
/// event (IMC's `*** <user> attempted to join the room`); the outcome is only about the
/// sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImcOutcome {
    /// `200 OK` to the `MESSAGE`, then a notice `MESSAGE` from the room's URI (or the
    /// manager's, for commands sent there) to the sender alone: `*** ` and the refusal's
    /// text. For commands that reached an existing room and were understood and refused:
    /// text-only SIP clients show the notice in the room's window, where a failed
    /// `MESSAGE` would only show as undelivered.
    Notice,
    /// Fail the `MESSAGE` with the mapping's SIP status (4xx/6xx) and the refusal's text
    /// as the reason phrase; no notice. For a chat line that was not delivered (the UA
    /// must not show it as sent) and for a Request-URI that names no room or account
    /// (there is nothing to send a notice from).
    Refuse,
    /// Fail the `MESSAGE` with the mapping's SIP status (500, or 503 with `Retry-After`)
    /// and its standard reason phrase; nothing about the cause leaves the server (the log
    /// has it under the correlation id). IMC's `500 command error`.
    Fail,
}

impl ImcOutcome {
    /// Lowercase name, as in docs.
    pub fn as_str(self) -> &'static str {
        match self {
            ImcOutcome::Notice => "notice",
            ImcOutcome::Refuse => "refuse",
            ImcOutcome::Fail => "fail",
        }
    }
}

/// How one refusal or failure answers on each protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorMapping {
    /// Whose problem it is.
    pub class: ErrorClass,
    /// HTTP status.
    pub http: u16,
    /// SIP final response.
    pub sip: SipStatus,
    /// XMPP stanza error.
    pub xmpp: XmppError,
    /// What the IMC-compatible SIP gateway does with a refused `MESSAGE`.
    pub imc: ImcOutcome,
    /// Seconds after which a retry may succeed: HTTP and SIP `Retry-After`. Set exactly
    /// for [`ErrorClass::Unavailable`].
    pub retry_after: Option<u32>,
}

use ErrorClass as C;
use ImcOutcome as I;
use SipStatus as S;
use XmppCondition as X;
use XmppErrorType as T;

const fn xmpp(condition: XmppCondition, kind: XmppErrorType) -> XmppError {
    XmppError { condition, kind }
}

/// A refusal.
const fn refused(http: u16, sip: SipStatus, xmpp: XmppError, imc: ImcOutcome) -> ErrorMapping {
    ErrorMapping {
        class: C::Refused,
        http,
        sip,
        xmpp,
        imc,
        retry_after: None,
    }
}

/// The service is down for a moment: 503 everywhere, an XMPP `wait`.
const fn unavailable(condition: XmppCondition, retry_after: u32) -> ErrorMapping {
    ErrorMapping {
        class: C::Unavailable,
        http: 503,
        sip: S::ServiceUnavailable,
        xmpp: xmpp(condition, T::Wait),
        imc: I::Fail,
        retry_after: Some(retry_after),
    }
}

/// A failure of the server.
const INTERNAL: ErrorMapping = ErrorMapping {
    class: C::Internal,
    http: 500,
    sip: S::ServerInternalError,
    xmpp: xmpp(X::InternalServerError, T::Cancel),
    imc: I::Fail,
    retry_after: None,
};

impl Rejection {
    /// How this refusal answers on each protocol.
    ///
    /// HTTP: 400 malformed input; 401 missing or wrong password (the client can retry with
    /// credentials); 403 refused by policy or rights; 404 unknown things; 409 conflicts
    /// with the current state (exists, full, last owner); 410 used or expired invitations;
    /// 413 oversized messages; 422 well-formed but unacceptable values; 503 server full.
    /// XMPP follows XEP-0045 where it has the case (cited per arm).
    pub fn mapping(&self) -> ErrorMapping {
        use Rejection as R;
        match self {
            // ---- input ----
            R::InvalidInput { .. } => refused(
                400,
                S::NotAcceptableHere,
                xmpp(X::BadRequest, T::Modify),
                I::Notice,
            ),
            // Malformed text, as any invalid input. IMC: mostly a chat line carrying a
            // control character, which was not delivered.
            R::ForbiddenChar { .. } => refused(
                400,
                S::NotAcceptableHere,
                xmpp(X::BadRequest, T::Modify),
                I::Refuse,
            ),
            // A well-formed name that cannot be had: like a common name, pick another.
            R::ConfusableName { .. } => refused(
                422,
                S::Forbidden,
                xmpp(X::NotAcceptable, T::Modify),
                I::Notice,
            ),
            R::IdentityRequired => {
                refused(403, S::Forbidden, xmpp(X::Forbidden, T::Auth), I::Notice)
            }
            // Only registered people may enter: XMPP's registration-required/auth (register,
            // that is link the identity to an account, then retry); 403 on HTTP and SIP,
            // since no credential sent with the request would change the answer.
            R::AccountRequired => refused(
                403,
                S::Forbidden,
                xmpp(X::RegistrationRequired, T::Auth),
                I::Notice,
            ),

            // ---- rooms ----
            // XEP-0045 (nonexistent room): item-not-found/cancel. IMC: the Request-URI
            // names no room, so there is no room to send a notice from.
            R::RoomNotFound(_) => refused(
                404,
                S::NotFound,
                xmpp(X::ItemNotFound, T::Cancel),
                I::Refuse,
            ),
            // The name is taken: conflict/cancel, as a taken nickname in XEP-0045.
            R::RoomExists(_) => refused(409, S::Forbidden, xmpp(X::Conflict, T::Cancel), I::Notice),
            R::ParentNotFound(_) => refused(
                404,
                S::NotFound,
                xmpp(X::ItemNotFound, T::Cancel),
                I::Notice,
            ),
            R::NestingLimit { .. } => refused(
                422,
                S::Forbidden,
                xmpp(X::NotAcceptable, T::Modify),
                I::Notice,
            ),
            R::CommonName(_) => refused(
                422,
                S::Forbidden,
                xmpp(X::NotAcceptable, T::Modify),
                I::Notice,
            ),
            R::NotReserved => refused(409, S::Forbidden, xmpp(X::NotAllowed, T::Cancel), I::Notice),
            R::MaxMembers { .. } => refused(
                422,
                S::Forbidden,
                xmpp(X::NotAcceptable, T::Modify),
                I::Notice,
            ),
            R::OwnerRequired => refused(
                422,
                S::Forbidden,
                xmpp(X::NotAcceptable, T::Modify),
                I::Notice,
            ),
            // XEP-0045 (max users): service-unavailable/wait.
            R::RoomFull { .. } => refused(
                409,
                S::BusyHere,
                xmpp(X::ServiceUnavailable, T::Wait),
                I::Notice,
            ),
            // The one refusal that is `Unavailable`: nothing is wrong with the request and
            // the same request succeeds once people leave. 503 + Retry-After on HTTP; 600
            // on SIP (see `SipStatus::BusyEverywhere` for why not 503); XEP-0045's max
            // users answer on XMPP. IMC: the join command gets a notice like any refusal.
            R::ServerFull { .. } => ErrorMapping {
                class: C::Unavailable,
                http: 503,
                sip: S::BusyEverywhere,
                xmpp: xmpp(X::ServiceUnavailable, T::Wait),
                imc: I::Notice,
                retry_after: Some(RETRY_LATER_SECS),
            },
            // A quota of the person, not of the server: 429 on HTTP; 486 Busy Here on
            // SIP (this user is busy enough); resource-constraint/wait on XMPP.
            R::TooManySessions { .. } => refused(
                429,
                S::BusyHere,
                xmpp(X::ResourceConstraint, T::Wait),
                I::Notice,
            ),
            // A gateway bug or a forged request, refused like any permission: 403 /
            // 403 Forbidden / forbidden+auth.
            R::OutOfScope { .. } => {
                refused(403, S::Forbidden, xmpp(X::Forbidden, T::Auth), I::Notice)
            }
            // XEP-0045's locked room (entry refused to all but its owner until it is
            // unlocked): item-not-found/cancel, which MUC clients report as a locked room.
            R::Locked => refused(
                403,
                S::Forbidden,
                xmpp(X::ItemNotFound, T::Cancel),
                I::Notice,
            ),
            // Entry needs someone's approval, as in XEP-0045's members-only rooms:
            // registration-required/auth, which is also how Prosody's lobby (Jitsi)
            // answers. SIP: 480, the caller may call again once admitted.
            R::LobbyRequired => refused(
                403,
                S::TemporarilyUnavailable,
                xmpp(X::RegistrationRequired, T::Auth),
                I::Notice,
            ),
            R::LobbyDisabled => {
                refused(409, S::Forbidden, xmpp(X::NotAllowed, T::Cancel), I::Notice)
            }

            // ---- authentication ----
            // XEP-0045 (password-protected room): not-authorized/auth. SIP: 403,
            // see `SipStatus::Forbidden`.
            R::PasswordRequired(_) => refused(
                401,
                S::Forbidden,
                xmpp(X::NotAuthorized, T::Auth),
                I::Notice,
            ),
            R::WrongPassword(_) => refused(
                401,
                S::Forbidden,
                xmpp(X::NotAuthorized, T::Auth),
                I::Notice,
            ),

            // ---- permissions ----
            // XEP-0045 (moderator, admin and owner use cases): lacking the role or
            // affiliation is forbidden/auth.
            R::NotModerator => refused(403, S::Forbidden, xmpp(X::Forbidden, T::Auth), I::Notice),
            R::NotOwner => refused(403, S::Forbidden, xmpp(X::Forbidden, T::Auth), I::Notice),
            R::NotAdmin => refused(403, S::Forbidden, xmpp(X::Forbidden, T::Auth), I::Notice),
            // XEP-0045 (kicking an occupant): acting on someone of higher affiliation is
            // not-allowed/cancel.
            R::Outranked => refused(403, S::Forbidden, xmpp(X::NotAllowed, T::Cancel), I::Notice),
            // XEP-0045 (a visitor's message in a moderated room): forbidden/auth. IMC: the
            // chat line was not delivered.
            R::ChatModerated => refused(403, S::Forbidden, xmpp(X::Forbidden, T::Auth), I::Refuse),
            R::VisitorCannotPost => {
                refused(403, S::Forbidden, xmpp(X::Forbidden, T::Auth), I::Refuse)
            }
            R::NotAllowed => refused(403, S::Forbidden, xmpp(X::Forbidden, T::Auth), I::Notice),
            R::NotYours => refused(403, S::Forbidden, xmpp(X::Forbidden, T::Auth), I::Notice),
            // XEP-0045 (room creation not allowed): not-allowed/cancel, as a MUC service
            // answers someone it does not let create rooms.
            R::GuestsMayNotCreate => {
                refused(403, S::Forbidden, xmpp(X::NotAllowed, T::Cancel), I::Notice)
            }
            // XEP-0045 (modifying the room subject): someone without the privilege gets
            // forbidden/auth.
            R::SubjectNotAllowed => {
                refused(403, S::Forbidden, xmpp(X::Forbidden, T::Auth), I::Notice)
            }

            // ---- membership ----
            // XEP-0045 (banned users): forbidden/auth.
            R::Banned { .. } => refused(403, S::Forbidden, xmpp(X::Forbidden, T::Auth), I::Notice),
            // XEP-0045 (members-only room): registration-required/auth; also for a room
            // that gives people without an affiliation no role (VROOM's no_role).
            R::NotInvited => refused(
                403,
                S::Forbidden,
                xmpp(X::RegistrationRequired, T::Auth),
                I::Notice,
            ),
            R::NoRole => refused(
                403,
                S::Forbidden,
                xmpp(X::RegistrationRequired, T::Auth),
                I::Notice,
            ),
            // Mostly a chat line or command from someone not in the room: XEP-0045
            // answers a non-occupant's message with not-acceptable/modify (join first).
            // SIP 403, not 404: the room exists, and a 404 would say it does not. IMC: the
            // line was not delivered (IMC fails it too).
            R::NotMember => refused(
                404,
                S::Forbidden,
                xmpp(X::NotAcceptable, T::Modify),
                I::Refuse,
            ),
            // XEP-0045 (nickname conflict): conflict/cancel.
            R::SessionExists => refused(409, S::Forbidden, xmpp(X::Conflict, T::Cancel), I::Notice),
            // SIP 481: see `SipStatus::CallDoesNotExist`.
            R::SessionNotFound => refused(
                404,
                S::CallDoesNotExist,
                xmpp(X::ItemNotFound, T::Cancel),
                I::Notice,
            ),
            R::NotKnocking => refused(
                404,
                S::NotFound,
                xmpp(X::ItemNotFound, T::Cancel),
                I::Notice,
            ),

            // ---- roles ----
            // XEP-0045 (revoking owner status): removing the only owner is
            // conflict/cancel.
            R::LastOwner => refused(409, S::Forbidden, xmpp(X::Conflict, T::Cancel), I::Notice),

            // ---- invitations ----
            R::InvitationNotFound => refused(
                404,
                S::NotFound,
                xmpp(X::ItemNotFound, T::Cancel),
                I::Notice,
            ),
            // RFC 6120 §8.3.3.5 gone/cancel: no longer available, for good.
            R::InvitationClosed => refused(410, S::Gone, xmpp(X::Gone, T::Cancel), I::Notice),
            R::InvitationExpired => refused(410, S::Gone, xmpp(X::Gone, T::Cancel), I::Notice),

            // ---- accounts ----
            // IMC: as for a room, the Request-URI names nothing to send a notice from.
            R::AccountNotFound(_) => refused(
                404,
                S::NotFound,
                xmpp(X::ItemNotFound, T::Cancel),
                I::Refuse,
            ),
            R::AccountExists(_) => {
                refused(409, S::Forbidden, xmpp(X::Conflict, T::Cancel), I::Notice)
            }
            // The joiner's account or the called account is disabled: answered as the
            // callee being unavailable, which tells a caller nothing about the account.
            R::AccountDisabled => refused(
                403,
                S::TemporarilyUnavailable,
                xmpp(X::ServiceUnavailable, T::Cancel),
                I::Notice,
            ),
            R::IdentityAlreadyLinked(_) => {
                refused(409, S::Forbidden, xmpp(X::Conflict, T::Cancel), I::Notice)
            }
            R::IdentityNotLinked => {
                refused(409, S::Forbidden, xmpp(X::NotAllowed, T::Cancel), I::Notice)
            }
            R::NotRendezvous => refused(
                409,
                S::TemporarilyUnavailable,
                xmpp(X::ServiceUnavailable, T::Cancel),
                I::Notice,
            ),

            // ---- bans ----
            R::BanNotFound => refused(
                404,
                S::NotFound,
                xmpp(X::ItemNotFound, T::Cancel),
                I::Notice,
            ),
            // Nothing to ban: the person is not there (as NotMember would say) or came
            // without an address. 409: the request is fine, the state does not allow it.
            R::NoKnownAddress => refused(
                409,
                S::NotFound,
                xmpp(X::ItemNotFound, T::Cancel),
                I::Notice,
            ),
            // The server's configuration (obfuscation) forbids it: not-allowed/cancel.
            R::NetworkWhileObfuscated => {
                refused(409, S::Forbidden, xmpp(X::NotAllowed, T::Cancel), I::Notice)
            }

            // ---- chat ----
            // IMC: the chat line was not delivered; 413 is RFC 3428's answer.
            R::MessageTooLong { .. } => refused(
                413,
                S::RequestEntityTooLarge,
                xmpp(X::NotAcceptable, T::Modify),
                I::Refuse,
            ),
            R::MessageEmpty => refused(
                400,
                S::NotAcceptableHere,
                xmpp(X::BadRequest, T::Modify),
                I::Refuse,
            ),

            // ---- gateways ----
            // The answer of `record_gateway_refusal`, which only the gateway that already
            // answered its client (with its own status: 488, 422, 423, 401) ever sends;
            // this row is never seen by a client. A refusal, like any permission: 403.
            R::GatewayRefused { .. } => {
                refused(403, S::Forbidden, xmpp(X::Forbidden, T::Auth), I::Refuse)
            }

            // ---- recording ----
            // The room's recording is in the other state than the command needs: a
            // conflict, as a reservation that is not there (409 / not-allowed/cancel).
            R::RecordingActive | R::RecordingNotActive => {
                refused(409, S::Forbidden, xmpp(X::NotAllowed, T::Cancel), I::Notice)
            }
            R::RecordingNotFound => refused(
                404,
                S::NotFound,
                xmpp(X::ItemNotFound, T::Cancel),
                I::Notice,
            ),
            // Only the media node inside the process states files: malformed input.
            R::RecordingFileInvalid(_) => refused(
                400,
                S::NotAcceptableHere,
                xmpp(X::BadRequest, T::Modify),
                I::Refuse,
            ),
        }
    }
}

/// How a journal error answers on each protocol. Lost races and a stopped or poisoned
/// journal are [`ErrorClass::Unavailable`]; everything else is a failure of the server
/// (most happen only when opening, before any gateway runs).
pub fn journal_mapping(e: &JournalError) -> ErrorMapping {
    match e {
        // A lost race with the journal's own state: the decider resynchronizes at once.
        // resource-constraint/wait: busy, retry shortly.
        JournalError::Conflict { .. } | JournalError::HeadConflict { .. } => {
            unavailable(X::ResourceConstraint, RETRY_SOON_SECS)
        }
        // Nothing more is written until the journal has recovered by itself (it retries
        // with backoff up to 30 s, hence Retry-After) or, on a read-only start, ever.
        JournalError::Poisoned(_) | JournalError::Closed => {
            unavailable(X::ServiceUnavailable, RETRY_LATER_SECS)
        }
        // The decider validates records before appending, so an invalid record is an
        // engine bug, not a client error.
        JournalError::InvalidRecord(_)
        | JournalError::Corrupt { .. }
        | JournalError::UnsupportedFormat { .. }
        | JournalError::ContentCorrupt { .. }
        | JournalError::UnsupportedLayout { .. }
        | JournalError::Truncated { .. }
        | JournalError::Open { .. }
        | JournalError::Storage(_) => INTERNAL,
    }
}

impl EngineError {
    /// How this error answers on each protocol: a refusal's own mapping, a journal
    /// error's ([`journal_mapping`]), a stopped engine as unavailable, the rest as
    /// failures of the server.
    pub fn mapping(&self) -> ErrorMapping {
        match self {
            EngineError::Rejected { rejection, .. } => rejection.mapping(),
            EngineError::Journal(e) => journal_mapping(e),
            // Shutting down or restarting: retry against the next process.
            EngineError::Stopped => unavailable(X::ServiceUnavailable, RETRY_LATER_SECS),
            // Overload: the costly part of a request (argon2) had no free slot in time.
            EngineError::Busy(_) => unavailable(X::ResourceConstraint, RETRY_SOON_SECS),
            EngineError::Codec { .. }
            | EngineError::Encode(_)
            | EngineError::Checkpoint(_)
            | EngineError::Task(_) => INTERNAL,
        }
    }
}
