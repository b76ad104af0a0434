//! The route table: one list drives both the router and the OpenAPI document, so the
//! two cannot drift apart.

use axum::http::Method;
use axum::routing::{delete, get, patch, post, put, MethodRouter};
use serde_json::{json, Map, Value};

use crate::{api, events, lease, meta, page, query, replay_routes as rp, App};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; a token changes nothing.
    Public,
    /// Anyone; a token (or `as` for guests) says who acts or widens the view.
    Optional,
    /// A participant token of the room, or the admin token.
    Token,
    /// Only the admin token.
    Admin,
}

/// One route and its documentation.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub handler: MethodRouter<App>,
    pub summary: &'static str,
    pub tag: &'static str,
    pub access: Access,
    pub body: Option<Value>,
    pub ok: u16,
    pub response: Value,
    /// `(name, schema, description)` of query parameters.
    pub query: Vec<(&'static str, Value, &'static str)>,
    /// Media types of the success answer; empty means JSON.
    pub content: &'static [&'static str],
}

fn s() -> Value {
    json!({"type": "string"})
}
fn sd(d: &str) -> Value {
    json!({"type": "string", "description": d})
}
fn b() -> Value {
    json!({"type": "boolean"})
}
fn u() -> Value {
    json!({"type": "integer", "minimum": 0})
}
fn nullable(mut v: Value) -> Value {
    if let Some(t) = v.get("type").cloned() {
        v["type"] = json!([t, "null"]);
    }
    v
}
fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}
fn obj(required: &[&str], props: Vec<(&str, Value)>) -> Value {
    let props: Map<String, Value> = props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    json!({"type": "object", "additionalProperties": false, "required": required, "properties": props})
}
fn subject() -> Value {
    obj(&["subject"], vec![("subject", r("Principal"))])
}
fn address_ban_body() -> Value {
    obj(
        &[],
        vec![
            ("subject", nullable(r("Principal"))),
            ("ip", nullable(s())),
            ("reason", nullable(s())),
            (
                "until",
                nullable(json!({"type": "string", "format": "date-time"})),
            ),
            ("duration_secs", nullable(u())),
        ],
    )
}
fn address_ban_row() -> Value {
    json!({"type": "object", "required": ["id", "address", "subject", "reason", "by", "at", "until"], "properties": {"id": s(), "address": nullable(s()), "subject": nullable(s()), "reason": nullable(s()), "by": s(), "at": s(), "until": nullable(s())}})
}
fn ban_body() -> Value {
    obj(
        &["subject"],
        vec![
            ("subject", r("Principal")),
            ("reason", nullable(s())),
            (
                "until",
                nullable(json!({"type": "string", "format": "date-time"})),
            ),
            ("duration_secs", nullable(u())),
        ],
    )
}
fn entry_body() -> Value {
    obj(
        &[],
        vec![
            ("as", nullable(sd("identity to act as: a guest `web:` name when anonymous, any identity with the admin token"))),
            ("session", nullable(sd("session id ([A-Za-z0-9._-]{1,128}); generated when absent"))),
            ("password", nullable(sd("room access password"))),
            ("owner_password", nullable(sd("owner password of a reserved room; grants the owner role"))),
            ("server_password", nullable(sd("server password"))),
            ("invitation", nullable(sd("invitation id (a personal invitation)"))),
            ("invitation_secret", nullable(sd("an email invitation's bearer secret (the `invitation` parameter of its link)"))),
            ("guest_key", nullable(sd("the guest key of the `as` name, needed once that guest name has a role or a place in a room (returned with the name's first token)"))),
        ],
    )
}
fn recordings_list() -> Value {
    let file = obj(
        &["name", "kind", "bytes", "duration_ms", "blake3"],
        vec![
            ("name", sd("relative to <data>/recordings/")),
            (
                "kind",
                json!({"type": "string", "enum": ["audio", "video"]}),
            ),
            ("track", nullable(sd("the forwarded track id (video)"))),
            ("bytes", u()),
            ("duration_ms", u()),
            ("blake3", sd("64 lowercase hex digits")),
        ],
    );
    let recording = obj(
        &["id", "started_at", "stopped_at", "video", "files", "erased"],
        vec![
            ("id", s()),
            ("started_at", sd("RFC 3339")),
            ("stopped_at", nullable(sd("RFC 3339; null while it runs"))),
            ("video", b()),
            ("by", nullable(r("Principal"))),
            ("files", json!({"type": "array", "items": file})),
            (
                "erased",
                nullable(json!({"type": "string", "enum": ["retention", "erasure"]})),
            ),
        ],
    );
    obj(
        &["room", "recordings"],
        vec![
            ("room", s()),
            ("active", nullable(sd("the id of the recording running"))),
            ("recordings", json!({"type": "array", "items": recording})),
        ],
    )
}

fn cmd() -> Value {
    r("CommandResult")
}
fn list(key: &str, item: Value) -> Value {
    json!({"type": "object", "required": [key], "properties": {key: {"type": "array", "items": item}}})
}

#[allow(clippy::too_many_arguments)]
fn route(
    method: Method,
    path: &'static str,
    handler: MethodRouter<App>,
    tag: &'static str,
    access: Access,
    summary: &'static str,
    body: Option<Value>,
    ok: u16,
    response: Value,
) -> Route {
    Route {
        method,
        path,
        handler,
        summary,
        tag,
        access,
        body,
        ok,
        response,
        query: Vec::new(),
        content: &[],
    }
}

/// The tag (API area) of the route matched as `path` (the route's pattern) for
/// `method`; operator credentials are scoped by tags.
pub fn tag_of(method: &Method, path: &str) -> Option<&'static str> {
    static TAGS: std::sync::LazyLock<
        std::collections::HashMap<(Method, &'static str), &'static str>,
    > = std::sync::LazyLock::new(|| {
        table()
            .into_iter()
            .map(|r| ((r.method, r.path), r.tag))
            .collect()
    });
    TAGS.get(&(method.clone(), path)).copied()
}

/// Every tag (API area) of the table.
pub fn tags() -> std::collections::BTreeSet<&'static str> {
    table().into_iter().map(|r| r.tag).collect()
}

/// Every route of the API.
pub fn table() -> Vec<Route> {
    use Access::*;
    let (g, p, d) = (Method::GET, Method::POST, Method::DELETE);
    let mut t = vec![
        // ---- meta ----
        route(g.clone(), "/about/health", get(meta::health), "meta", Public, "Health (Jitsi-style): 200 ok or 503", None, 200, r("Health")),
        route(g.clone(), "/metrics", get(meta::metrics), "meta", Public, "Prometheus metrics (text format)", None, 200, json!({"type": "string"})),
        route(g.clone(), "/debug/media", get(query::debug_media), "server", Admin, "Media statistics per room and participant (as Jitsi's colibri stats): each published track with packets and bytes in, withheld by moderation, keyframe requests, and per subscriber packets and bytes forwarded, drops and send errors; the room's dominant speaker; totals", None, 200, json!({"type": "object", "required": ["enabled"], "properties": {"enabled": b(), "sessions": u(), "stats": {"type": "object"}}})),
        route(g.clone(), "/openapi.json", get(meta::openapi), "meta", Public, "This OpenAPI document", None, 200, json!({"type": "object"})),
        route(g.clone(), "/me", get(query::me), "meta", Token, "What the bearer token stands for", None, 200, json!({"type": "object", "properties": {"admin": b(), "identity": s(), "room": s(), "session": nullable(s()), "issued_at": s()}})),
        // ---- rooms ----
        route(g.clone(), "/rooms", get(query::list_rooms), "rooms", Optional, "List rooms (Kamailio imc_list_rooms); private rooms only with the admin token", None, 200, list("rooms", r("RoomSummary"))),
        route(p.clone(), "/rooms", post(api::create_room), "rooms", Optional, "Create a room; an identity creating it becomes its owner and gets a token", Some(obj(&["room"], vec![
            ("room", sd("room name (Mumble channel-name rule)")),
            ("as", nullable(sd("creator identity: a guest `web:` name when anonymous; any identity with the admin token"))),
            ("parent", nullable(sd("parent room (nesting)"))),
            ("private", b()),
            ("owner", nullable(r("Principal"))),
            ("max_members", nullable(u())),
            ("welcome_text", nullable(s())),
            ("password", nullable(sd("access password (plaintext; stored as argon2)"))),
            ("server_password", nullable(sd("server password: needed by a creator not linked to an account when the server has one (the admin never needs it)"))),
            ("guest_key", nullable(sd("the guest key of the `as` name, once it has standing"))),
        ])), 201, r("CreateRoomResult")),
        route(g.clone(), "/rooms/{room}", get(query::get_room), "rooms", Optional, "A room: public summary, or details for its participants and the admin", None, 200, r("RoomDetail")),
        route(Method::PATCH, "/rooms/{room}", patch(api::configure_room), "rooms", Token, "Configure a room (owner); null clears a setting", Some(obj(&[], vec![
            ("private", b()), ("locked", b()), ("max_members", nullable(u())), ("welcome_text", nullable(s())),
            ("moderated_chat", b()), ("lobby", b()),
            ("default_role", nullable(json!({"type": "string", "enum": ["visitor", "member", "moderator", "owner"]}))),
            ("owner_exit_destroys", b()), ("password", nullable(sd("new access password, null to remove"))),
            ("invite", json!({"type": "string", "enum": ["members", "moderators", "owners"], "description": "who may invite (default moderators: moderators and owners); only a moderator's, an owner's or the admin's invitation spares its holder the access password and the lobby"})),
            ("name", nullable(sd("room title (one line, at most 200 characters), null to remove"))),
            ("description", nullable(sd("room description (bounded like the welcome text), null to remove"))),
            ("members_change_subject", json!({"type": "boolean", "description": "members, not only moderators, may change the subject (default false)"})),
            ("persistent", json!({"type": "boolean", "description": "never expired for inactivity (default false)"})),
            ("public_addresses", json!({"type": "boolean", "description": "every participant sees the others' real addresses (XEP-0045 non-anonymous); default false: moderators only"})),
        ])), 200, cmd()),
        route(d.clone(), "/rooms/{room}", delete(api::destroy_room), "rooms", Token, "Destroy a room and its sub-rooms (owner)", None, 200, cmd()),
        route(p.clone(), "/rooms/{room}/lock", post(api::lock_room), "rooms", Token, "Lock: only moderators and owners may join (moderator)", None, 200, cmd()),
        route(p.clone(), "/rooms/{room}/unlock", post(api::unlock_room), "rooms", Token, "Unlock (moderator)", None, 200, cmd()),
        route(p.clone(), "/rooms/{room}/reserve", post(api::reserve_room), "rooms", Token, "Reserve with an owner password (owner; not for common names)", Some(obj(&["owner_password"], vec![("owner_password", s())])), 200, cmd()),
        route(p.clone(), "/rooms/{room}/unreserve", post(api::unreserve_room), "rooms", Token, "Drop the reservation (owner)", None, 200, cmd()),
        // ---- membership ----
        route(p.clone(), "/rooms/{room}/join", post(api::join), "membership", Optional, "Join with one session; answers a participant bearer token", Some(entry_body()), 201, r("EntryResult")),
        route(p.clone(), "/rooms/{room}/leave", post(api::leave), "membership", Token, "Leave with a session (default: the token's); revokes that token", Some(obj(&[], vec![("session", nullable(s()))])), 200, cmd()),
        route(p.clone(), "/rooms/{room}/heartbeat", post(lease::heartbeat), "membership", Token, "Keep the token's session alive (any use of the token, or an open event stream, does too); answers when its lease ends", None, 200, json!({"type": "object", "properties": {"room": s(), "session": nullable(s()), "lease_until": nullable(sd("RFC 3339; null for a session without a lease"))}})),
        route(g.clone(), "/rooms/{room}/members", get(query::list_members), "membership", Token, "Who is present (Kamailio imc_list_members)", None, 200, list("members", r("Member"))),
        route(p.clone(), "/rooms/{room}/knock", post(api::knock), "lobby", Optional, "Wait in the lobby; answers a token for the waiting session", Some(obj(&[], vec![("as", nullable(s())), ("session", nullable(s())), ("guest_key", nullable(s())), ("server_password", nullable(sd("the server password, when the server has one and the caller no account")))])), 201, r("EntryResult")),
        route(g.clone(), "/rooms/{room}/lobby", get(query::list_lobby), "lobby", Token, "Who waits in the lobby (moderator)", None, 200, list("lobby", json!({"type": "object"}))),
        route(p.clone(), "/rooms/{room}/admit", post(api::admit), "lobby", Token, "Admit a knocking person (moderator)", Some(subject()), 200, cmd()),
        route(p.clone(), "/rooms/{room}/reject", post(api::reject_knock), "lobby", Token, "Turn a knocking person away (moderator)", Some(subject()), 200, cmd()),
        // ---- roles ----
        route(g.clone(), "/rooms/{room}/roles", get(query::list_roles), "roles", Token, "Affiliations", None, 200, json!({"type": "object", "properties": {"room": s(), "affiliations": {"type": "object", "additionalProperties": {"type": "string"}}}})),
        route(p.clone(), "/rooms/{room}/roles", post(api::grant_role), "roles", Token, "Grant a role (moderators up to moderator, owners anything)", Some(obj(&["subject", "role"], vec![("subject", r("Principal")), ("role", json!({"type": "string", "enum": ["visitor", "member", "moderator", "owner"]}))])), 200, cmd()),
        route(d.clone(), "/rooms/{room}/roles/{subject}", delete(api::revoke_role), "roles", Token, "Remove an affiliation (the last owner stays)", None, 200, cmd()),
        // ---- invitations ----
        route(g.clone(), "/rooms/{room}/invitations", get(query::list_invitations), "invitations", Token, "Invitations of a room, every state (moderator)", None, 200, list("invitations", r("Invitation"))),
        route(p.clone(), "/rooms/{room}/invitations", post(api::invite), "invitations", Token, "Invite an identity or a mailto: address (single use by default)", Some(obj(&["invitee"], vec![("invitee", r("Address")), ("ttl_secs", nullable(u())), ("single_use", b())])), 201, r("InvitationResult")),
        route(p.clone(), "/rooms/{room}/invitations/{invitation}/accept", post(api::accept_invitation), "invitations", Optional, "Accept (the invitee becomes a member)", Some(obj(&[], vec![("as", nullable(s())), ("guest_key", nullable(s()))])), 200, cmd()),
        route(p.clone(), "/rooms/{room}/invitations/{invitation}/deny", post(api::deny_invitation), "invitations", Optional, "Decline", Some(obj(&[], vec![("as", nullable(s())), ("guest_key", nullable(s()))])), 200, cmd()),
        route(d.clone(), "/rooms/{room}/invitations/{invitation}", delete(api::revoke_invitation), "invitations", Token, "Withdraw (issuer or moderator)", None, 200, cmd()),
        // ---- moderation ----
        route(p.clone(), "/rooms/{room}/mute", post(api::mute), "moderation", Token, "Mute audio (moderator, or oneself)", Some(subject()), 200, cmd()),
        route(p.clone(), "/rooms/{room}/unmute", post(api::unmute), "moderation", Token, "Lift an audio mute", Some(subject()), 200, cmd()),
        route(p.clone(), "/rooms/{room}/pause-video", post(api::pause_video), "moderation", Token, "Pause video (moderator, or oneself)", Some(subject()), 200, cmd()),
        route(p.clone(), "/rooms/{room}/resume-video", post(api::resume_video), "moderation", Token, "Resume video", Some(subject()), 200, cmd()),
        route(p.clone(), "/rooms/{room}/kick", post(api::kick), "moderation", Token, "Remove someone's sessions (moderator)", Some(obj(&["subject"], vec![("subject", r("Principal")), ("reason", nullable(s()))])), 200, cmd()),
        route(g.clone(), "/rooms/{room}/bans", get(query::list_room_bans), "moderation", Token, "Room bans (moderator)", None, 200, list("bans", r("Ban"))),
        route(p.clone(), "/rooms/{room}/bans", post(api::ban_room), "moderation", Token, "Ban from the room (moderator); strips moderation rights", Some(ban_body()), 201, cmd()),
        route(d.clone(), "/rooms/{room}/bans/{subject}", delete(api::unban_room), "moderation", Token, "Lift a room ban (moderator)", None, 200, cmd()),
        route(g.clone(), "/rooms/{room}/address-bans", get(query::list_room_address_bans), "moderation", Token, "Room address bans (moderator): id, address as stored (a keyed hash; a plain address or network only to the admin)", None, 200, list("address_bans", address_ban_row())),
        route(p.clone(), "/rooms/{room}/address-bans", post(api::ban_address_room), "moderation", Token, "Ban the address of a present person (`subject`, moderator) or an IP address or network (`ip`, admin): joins, knocks from it are refused under any name; the person's sessions end, others' at the address stay", Some(address_ban_body()), 201, cmd()),
        route(d.clone(), "/rooms/{room}/address-bans/{ban}", delete(api::unban_address_room), "moderation", Token, "Lift a room address ban by its id or address as listed (admin: also the plain IP address or network)", None, 200, cmd()),
        route(p.clone(), "/rooms/{room}/hand/raise", post(api::raise_hand), "moderation", Token, "Raise one's hand", None, 200, cmd()),
        route(p.clone(), "/rooms/{room}/hand/lower", post(api::lower_hand), "moderation", Token, "Lower one's hand, or someone's (moderator)", Some(obj(&[], vec![("subject", nullable(r("Principal")))])), 200, cmd()),
        route(Method::PUT, "/rooms/{room}/subject", put(api::set_subject), "moderation", Token, "Set the room's subject, or clear it with null (moderator, or member where the room lets members; present in the room)", Some(obj(&["subject"], vec![("subject", nullable(sd("multi-line text, at most 1000 characters; HTML stripped unless allowed")))])), 200, cmd()),
        route(p.clone(), "/rooms/{room}/moderated-chat", post(api::moderated_chat), "moderation", Token, "Moderators-only chat on or off (moderator)", Some(obj(&["enabled"], vec![("enabled", b())])), 200, cmd()),
        // ---- recording ----
        route(p.clone(), "/rooms/{room}/recording", post(api::start_recording), "recording", Token, "Start recording the room (moderator): its mixed audio, and each video track with video; every participant sees recording_started. Refused with recording.already_active while one runs", Some(obj(&[], vec![("video", json!({"type": "boolean", "description": "also record each video track as it arrives (default false)"}))])), 201, json!({"allOf": [cmd(), {"type": "object", "properties": {"recording": s()}}]})),
        route(d.clone(), "/rooms/{room}/recording", delete(api::stop_recording), "recording", Token, "Stop the room's recording (moderator); recording.not_active when none runs", None, 200, cmd()),
        route(g.clone(), "/rooms/{room}/recordings", get(api::list_recordings), "recording", Token, "The room's recordings, oldest first, with the files the media node closed (name relative to <data>/recordings/, kind, track, bytes, duration_ms, blake3) and whether they were erased (retention or erasure); the admin also sees those of a room that is gone", None, 200, recordings_list()),
        // ---- chat ----
        route(p.clone(), "/rooms/{room}/messages", post(api::post_message), "chat", Token, "Post a chat message (HTML stripped unless allowed)", Some(obj(&["body"], vec![("body", s())])), 201, json!({"allOf": [cmd(), {"type": "object", "properties": {"message": s(), "html_stripped": b()}}]})),
        // ---- server bans ----
        route(g.clone(), "/bans", get(query::list_server_bans), "moderation", Admin, "Server-wide bans", None, 200, list("bans", r("Ban"))),
        route(p.clone(), "/bans", post(api::ban_server), "moderation", Admin, "Ban from the whole server, every protocol", Some(ban_body()), 201, cmd()),
        route(d.clone(), "/bans/{subject}", delete(api::unban_server), "moderation", Admin, "Lift a server ban", None, 200, cmd()),
        route(g.clone(), "/address-bans", get(query::list_server_address_bans), "moderation", Admin, "Server-wide address bans", None, 200, list("address_bans", address_ban_row())),
        route(p.clone(), "/address-bans", post(api::ban_address_server), "moderation", Admin, "Ban an address server-wide: `ip` (an IP address; a CIDR network only with obfuscation off) or `subject` (the addresses of their sessions anywhere); joins, knocks and room creations from it are refused", Some(address_ban_body()), 201, cmd()),
        route(d.clone(), "/address-bans/{ban}", delete(api::unban_address_server), "moderation", Admin, "Lift a server address ban: its id, its address as listed, or the plain IP address or network", None, 200, cmd()),
        route(g.clone(), "/autobans", get(query::list_autobans), "moderation", Admin, "Autobans in force (Mumble): identities and remote addresses (stored form) refused after too many failed joins", None, 200, list("autobans", json!({"type": "object", "required": ["kind", "value", "until"], "properties": {"kind": {"enum": ["identity", "remote"]}, "value": s(), "until": s()}}))),
        route(d.clone(), "/autobans/{kind}/{value}", delete(api::lift_autoban), "moderation", Admin, "Lift an autoban early: kind identity (an address) or remote (as listed, or a plain IP address)", None, 200, cmd()),
        // ---- accounts ----
        route(g.clone(), "/accounts", get(query::list_accounts), "accounts", Admin, "Accounts with every detail (Jami list-accounts, list-account-details)", None, 200, list("accounts", r("Account"))),
        route(p.clone(), "/accounts", post(api::create_account), "accounts", Admin, "Create an account", Some(obj(&["account"], vec![("account", s()), ("display_name", nullable(s()))])), 201, cmd()),
        route(g.clone(), "/accounts/{account}", get(query::get_account), "accounts", Admin, "One account", None, 200, r("Account")),
        route(Method::PATCH, "/accounts/{account}", patch(api::set_display_name), "accounts", Token, "Set or clear the display name (admin or the account holder)", Some(obj(&["display_name"], vec![("display_name", nullable(s()))])), 200, cmd()),
        route(p.clone(), "/accounts/{account}/enable", post(api::enable_account), "accounts", Admin, "Jami enable-account", None, 200, cmd()),
        route(p.clone(), "/accounts/{account}/disable", post(api::disable_account), "accounts", Admin, "Jami disable-account: its sessions end", None, 200, cmd()),
        route(p.clone(), "/accounts/{account}/identities", post(api::link_identity), "accounts", Admin, "Link an identity to the account", Some(obj(&["address"], vec![("address", r("Address"))])), 200, cmd()),
        route(d.clone(), "/accounts/{account}/identities/{address}", delete(api::unlink_identity), "accounts", Admin, "Unlink an identity", None, 200, cmd()),
        route(Method::PUT, "/accounts/{account}/sip-credentials", put(api::set_sip_credential), "accounts", Admin, "Set the SIP digest password of a sip: identity (linked to the account if it is not yet): stored as MD5 and SHA-256 HA1 values, never in plaintext; realm defaults to the address's host", Some(obj(&["address", "password"], vec![("address", r("Address")), ("password", s()), ("realm", s())])), 200, cmd()),
        route(d.clone(), "/accounts/{account}/sip-credentials/{address}", delete(api::clear_sip_credential), "accounts", Admin, "Remove a sip: identity's digest credentials (the identity stays linked)", None, 200, cmd()),
        route(g.clone(), "/accounts/{account}/contacts", get(query::list_contacts), "accounts", Admin, "Allowed contacts (Jami list-contacts)", None, 200, json!({"type": "object", "properties": {"account": s(), "contacts_restricted": b(), "allowed_contacts": {"type": "array", "items": s()}}})),
        route(p.clone(), "/accounts/{account}/contacts", post(api::allow_contact), "accounts", Admin, "Allow a contact (the first turns the restriction on)", Some(obj(&["contact"], vec![("contact", r("Principal"))])), 200, cmd()),
        route(d.clone(), "/accounts/{account}/contacts", delete(api::open_contacts), "accounts", Admin, "Clear the allow-list: anyone may reach the account", None, 200, cmd()),
        route(d.clone(), "/accounts/{account}/contacts/{contact}", delete(api::disallow_contact), "accounts", Admin, "Remove an allowed contact", None, 200, cmd()),
        route(g.clone(), "/accounts/{account}/moderators", get(query::list_moderators), "accounts", Admin, "Jami list-moderators", None, 200, json!({"type": "object", "properties": {"account": s(), "moderators": {"type": "array", "items": s()}}})),
        route(p.clone(), "/accounts/{account}/moderators", post(api::add_moderator), "accounts", Admin, "Jami add-moderator", Some(obj(&["moderator"], vec![("moderator", r("Principal"))])), 200, cmd()),
        route(d.clone(), "/accounts/{account}/moderators/{moderator}", delete(api::remove_moderator), "accounts", Admin, "Remove a moderator", None, 200, cmd()),
        route(g.clone(), "/accounts/{account}/bans", get(query::list_account_bans), "accounts", Admin, "Jami list-banned-contacts", None, 200, list("bans", r("Ban"))),
        route(p.clone(), "/accounts/{account}/bans", post(api::ban_account), "accounts", Admin, "Jami ban-contact (the account's conferences)", Some(ban_body()), 201, cmd()),
        route(d.clone(), "/accounts/{account}/bans/{subject}", delete(api::unban_account), "accounts", Admin, "Lift an account ban", None, 200, cmd()),
        route(Method::PUT, "/accounts/{account}/rendezvous", put(api::set_rendezvous), "accounts", Admin, "Rendezvous mode: calls land in this room (null leaves it)", Some(obj(&["room"], vec![("room", nullable(s()))])), 200, cmd()),
        route(p.clone(), "/accounts/{account}/call", post(api::call_account), "accounts", Optional, "Call an account: join its rendezvous room; answers a token", Some(entry_body()), 201, r("EntryResult")),
        // ---- server policy ----
        route(g.clone(), "/server/policy", get(query::get_policy), "server", Admin, "The server policy in force (hashes never shown)", None, 200, json!({"type": "object"})),
        route(Method::PUT, "/server/password", put(api::set_server_password), "server", Admin, "Set (plaintext, stored as argon2) or clear (null) the server password", Some(obj(&["password"], vec![("password", nullable(s()))])), 200, cmd()),
        route(Method::PUT, "/server/log-days", put(api::set_log_days), "server", Admin, "Retention of personal content in days (0 forever, -1 none)", Some(obj(&["days"], vec![("days", json!({"type": "integer", "minimum": -1}))])), 200, cmd()),
        route(Method::PUT, "/server/obfuscate-ips", put(api::set_obfuscate_ips), "server", Admin, "Store keyed hashes instead of remote addresses", Some(obj(&["enabled"], vec![("enabled", b())])), 200, cmd()),
        route(Method::PUT, "/server/welcome-text", put(api::set_welcome_text), "server", Admin, "Server welcome text", Some(obj(&["text"], vec![("text", s())])), 200, cmd()),
        route(p.clone(), "/credentials", post(api::mint_credential), "server", Admin, "Mint a scoped, time-limited operator credential for automation (master admin token only): it acts as the admin on routes of its areas (tags), and what it does is journaled as authorized by it", Some(obj(&["label", "scopes"], vec![("label", sd("what it is for, [A-Za-z0-9._-]{1,64}")), ("scopes", json!({"type": "array", "items": {"type": "string"}, "description": "route tags it may call (moderation, accounts, server, replay, rooms...)"})), ("read_only", b()), ("ttl_secs", nullable(json!({"type": "integer", "minimum": 60, "maximum": 2592000})))])), 201, json!({"type": "object", "required": ["credential", "id", "label", "scopes", "read_only", "expires_at"]})),
    ];
    let mut audit = route(
        g,
        "/audit",
        get(query::audit),
        "audit",
        Admin,
        "The audit trail: every event, denials included",
        None,
        200,
        json!({"type": "object", "properties": {
        "entries": {"type": "array", "items": r("AuditEntry")},
        "next_after": nullable(u()), "complete": b()}}),
    );
    audit.query = vec![
        ("room", s(), "only this room's events"),
        (
            "actor",
            s(),
            "only events by this actor (`admin`, `service:clock`, an address)",
        ),
        ("subject", s(), "only events mentioning this principal"),
        (
            "type",
            s(),
            "only this event type (room_join, peer_role, ...)",
        ),
        (
            "from",
            json!({"type": "string", "format": "date-time"}),
            "at or after (RFC 3339)",
        ),
        (
            "to",
            json!({"type": "string", "format": "date-time"}),
            "at or before (RFC 3339)",
        ),
        (
            "after",
            u(),
            "only records after this sequence number (paging)",
        ),
        (
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": 10000}),
            "page size, default 1000",
        ),
    ];
    t.push(audit);
    t.extend(event_table());
    t.extend(page_table());
    t.extend(replay_table());
    t
}

/// The browser client (docs/page.md).
fn page_table() -> Vec<Route> {
    let g = Method::GET;
    let mut page = route(g.clone(), "/r/{room}", get(page::room_page), "page", Access::Public, "The browser client of a room: join form, video tiles, chat, participants, moderation (HTML; plain JavaScript over the REST API and the room WebSocket)", None, 200, json!({"type": "string"}));
    page.content = &["text/html"];
    let mut js = route(
        g.clone(),
        "/assets/room.js",
        get(page::room_js),
        "page",
        Access::Public,
        "The page's script",
        None,
        200,
        json!({"type": "string"}),
    );
    js.content = &["text/javascript"];
    let mut css = route(
        g,
        "/assets/room.css",
        get(page::room_css),
        "page",
        Access::Public,
        "The page's style sheet",
        None,
        200,
        json!({"type": "string"}),
    );
    css.content = &["text/css"];
    vec![page, js, css]
}

/// The committed event feed, live: SSE and WebSocket, and chat history.
fn event_table() -> Vec<Route> {
    use Access::{Admin, Token};
    let g = Method::GET;
    let stream_query = || {
        vec![
            ("from", u(), "first sequence number wanted (resume: the last `seq` received + 1); default: live events only"),
            ("access_token", s(), "the bearer token, for clients that cannot send headers (EventSource, browser WebSocket)"),
            ("signalling", b(), "WebSocket only: begin with a `media.config` message (ICE servers, whether media is on); the socket takes commands and media signalling either way (docs/api.md)"),
        ]
    };
    let event = r("FeedEvent");
    let mut room_sse = with_query(
        route(g.clone(), "/rooms/{room}/events", get(events::room_sse), "events", Token, "The room's committed events as Server-Sent Events (id = seq; Last-Event-ID resumes); a last `revoked` event when the token's session ends", None, 200, event.clone()),
        stream_query(),
    );
    room_sse.content = &["text/event-stream"];
    let mut all_sse = with_query(
        route(
            g.clone(),
            "/events",
            get(events::all_sse),
            "events",
            Admin,
            "Every room's committed events as Server-Sent Events (admin)",
            None,
            200,
            event.clone(),
        ),
        stream_query(),
    );
    all_sse.content = &["text/event-stream"];
    let room_ws = with_query(
        route(g.clone(), "/rooms/{room}/ws", get(events::room_ws), "events", Token, "The room's committed events over a WebSocket (one JSON text message each; close code 4001 when the token's session ends)", None, 101, event.clone()),
        stream_query(),
    );
    let all_ws = with_query(
        route(
            g.clone(),
            "/ws",
            get(events::all_ws),
            "events",
            Admin,
            "Every room's committed events over a WebSocket (admin)",
            None,
            101,
            event,
        ),
        stream_query(),
    );
    let messages = with_query(
        route(
            g,
            "/rooms/{room}/messages",
            get(query::list_messages),
            "chat",
            Token,
            "Chat history, oldest first, paged by sequence (participants and the admin)",
            None,
            200,
            json!({"type": "object", "properties": {
            "room": s(), "messages": {"type": "array", "items": r("ChatMessage")}, "next_after": nullable(u())}}),
        ),
        vec![
            (
                "after",
                u(),
                "only messages after this sequence number (paging)",
            ),
            (
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": 1000}),
                "page size, default 100",
            ),
        ],
    );
    vec![room_sse, all_sse, room_ws, all_ws, messages]
}

fn time_param(name: &'static str, what: &'static str) -> (&'static str, Value, &'static str) {
    (
        name,
        json!({"type": "string", "description": "RFC 3339, YYYY-MM-DDTHH:MM:SS or YYYY-MM-DD (UTC)"}),
        what,
    )
}

fn with_query(mut r: Route, query: Vec<(&'static str, Value, &'static str)>) -> Route {
    r.query = query;
    r
}

/// The replay routes (admin only): the replay library over the live journal.
fn replay_table() -> Vec<Route> {
    use Access::Admin;
    let (g, p) = (Method::GET, Method::POST);
    let room = ("room", s(), "room name");
    let person = (
        "person",
        r("Principal"),
        "`account:<id>` or an address; every identity ever linked to the account counts",
    );
    let seq = |name| (name, u(), "a journal sequence number (instead of the time)");
    let period = || {
        vec![
            room.clone(),
            time_param("from", "start, inclusive (default: the first record)"),
            time_param("to", "end, inclusive (default: now)"),
        ]
    };
    let obj_any = || json!({"type": "object"});
    let mut report = with_query(
        route(g.clone(), "/replay/report", get(rp::report), "replay", Admin, "Compliance report for a period: json, csv, xlsx, rec or html (downloads carry Content-Disposition)", None, 200, obj_any()),
        {
            let mut q = period();
            q.push(("format", json!({"type": "string", "enum": ["json", "csv", "xlsx", "rec", "html"]}), "default json"));
            q.push(("table", s(), "with format=csv: only this table (attendance, moderation, ...)"));
            q
        },
    );
    report.content = &[
        "application/json",
        "text/csv",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "text/plain",
        "text/html",
    ];
    let mut bundle = with_query(
        route(
            g.clone(),
            "/replay/bundle",
            get(rp::bundle),
            "replay",
            Admin,
            "Export bundle (JSON lines + signed checkpoint) for conclave verify-bundle",
            None,
            200,
            json!({"type": "string"}),
        ),
        vec![
            ("from_seq", u(), "first record (default 1)"),
            (
                "force",
                b(),
                "export a broken chain as stored (the checkpoint signs the good prefix)",
            ),
        ],
    );
    bundle.content = &["application/x-ndjson"];
    vec![
        with_query(
            route(
                g.clone(),
                "/replay/state",
                get(rp::state),
                "replay",
                Admin,
                "State of a room (or the server) as of a time or sequence number",
                None,
                200,
                obj_any(),
            ),
            vec![
                room.clone(),
                time_param("at", "as of this time (default: now)"),
                seq("seq"),
            ],
        ),
        with_query(
            route(
                g.clone(),
                "/replay/diff",
                get(rp::diff),
                "replay",
                Admin,
                "What changed in a room between two moments",
                None,
                200,
                obj_any(),
            ),
            vec![
                ("room", s(), "room name (required)"),
                time_param("from", "start time (default: the beginning)"),
                seq("from_seq"),
                time_param("to", "end time (default: now)"),
                seq("to_seq"),
            ],
        ),
        with_query(
            route(
                g.clone(),
                "/replay/timeline",
                get(rp::timeline),
                "replay",
                Admin,
                "Events of a room, a person (all linked identities) or a moderator's actions",
                None,
                200,
                obj_any(),
            ),
            vec![
                room.clone(),
                person.clone(),
                ("moderator", r("Principal"), "actions taken by this person"),
                time_param("from", "start, inclusive"),
                time_param("to", "end, inclusive"),
                (
                    "limit",
                    json!({"type": "integer", "minimum": 1, "maximum": rp::MAX_TIMELINE_LIMIT}),
                    "default 1000",
                ),
            ],
        ),
        with_query(
            route(
                g.clone(),
                "/replay/who-was-there",
                get(rp::who_was_there),
                "replay",
                Admin,
                "Who was present in a room at a moment, with sessions and protocols",
                None,
                200,
                obj_any(),
            ),
            vec![
                ("room", s(), "room name (required)"),
                time_param("at", "the moment (default: now)"),
                seq("seq"),
            ],
        ),
        with_query(
            route(
                g.clone(),
                "/replay/moderation",
                get(rp::moderation),
                "replay",
                Admin,
                "Who muted, kicked, banned whom, with the moderators in office then",
                None,
                200,
                obj_any(),
            ),
            period(),
        ),
        with_query(
            route(
                g.clone(),
                "/replay/denials",
                get(rp::denials),
                "replay",
                Admin,
                "Why joins were refused, with the ban or autoban that applied",
                None,
                200,
                obj_any(),
            ),
            {
                let mut q = period();
                q.push(person.clone());
                q
            },
        ),
        with_query(
            route(
                g.clone(),
                "/replay/invitations",
                get(rp::invitations),
                "replay",
                Admin,
                "Invitations issued, answered, used (by whom), expired",
                None,
                200,
                obj_any(),
            ),
            period(),
        ),
        report,
        route(
            g.clone(),
            "/replay/verify",
            get(rp::verify_journal),
            "replay",
            Admin,
            "Walk the hash chain; names the first bad record",
            None,
            200,
            json!({"type": "object", "properties": {"ok": b(), "records_checked": u(), "head": u(), "last_good_hash": s(), "purged_content": u(), "first_failure": nullable(json!({"type": "object"}))}}),
        ),
        route(
            p.clone(),
            "/replay/checkpoint",
            post(rp::checkpoint),
            "replay",
            Admin,
            "Verify the chain and sign its head (ed25519)",
            None,
            200,
            json!({"type": "object", "properties": {"checkpoint": obj_any(), "chain": obj_any()}}),
        ),
        bundle,
        route(
            p.clone(),
            "/replay/retention",
            post(rp::retention),
            "replay",
            Admin,
            "Log-days retention now, through the engine (content_purge journaled first)",
            Some(obj(
                &[],
                vec![(
                    "days",
                    nullable(
                        json!({"type": "integer", "minimum": -1, "description": "days to keep; 0 forever, -1 none; default the policy's log_days"}),
                    ),
                )],
            )),
            200,
            r("PurgeResult"),
        ),
        route(
            p,
            "/replay/erasure",
            post(rp::erasure),
            "replay",
            Admin,
            "Erase one person's personal content, every linked identity, through the engine",
            Some(obj(&["person"], vec![("person", r("Principal"))])),
            200,
            r("PurgeResult"),
        ),
    ]
}

/// Builds the OpenAPI 3.1 document from the table.
pub fn openapi(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for rt in routes {
        let mut params: Vec<Value> = rt
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|x| x.strip_suffix('}')))
            .map(|name| {
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"},
                       "description": "percent-encode `:` `@` `/` as needed"})
            })
            .collect();
        params.extend(rt.query.iter().map(|(name, schema, desc)| {
            json!({"name": name, "in": "query", "required": false, "schema": schema, "description": desc})
        }));
        let types: &[&str] = if rt.path == "/metrics" {
            &["text/plain; version=0.0.4"]
        } else if rt.content.is_empty() {
            &["application/json"]
        } else {
            rt.content
        };
        let content: Map<String, Value> = types
            .iter()
            .map(|t| ((*t).to_owned(), json!({"schema": rt.response})))
            .collect();
        let mut responses = Map::new();
        responses.insert(
            rt.ok.to_string(),
            json!({"description": "success", "content": content}),
        );
        if rt.path == "/about/health" {
            responses.insert("503".into(), json!({"description": "unhealthy", "content": {"application/json": {"schema": r("Health")}}}));
        }
        responses.insert(
            "default".into(),
            json!({"$ref": "#/components/responses/Error"}),
        );
        let mut op = json!({
            "operationId": operation_id(&rt.method, rt.path),
            "summary": rt.summary,
            "tags": [rt.tag],
            "parameters": params,
            "responses": responses,
            "x-access": match rt.access {
                Access::Public => "public",
                Access::Optional => "optional",
                Access::Token => "token",
                Access::Admin => "admin",
            },
        });
        op["security"] = match rt.access {
            Access::Public => json!([]),
            Access::Optional => json!([{}, {"bearer": []}]),
            Access::Token | Access::Admin => json!([{"bearer": []}]),
        };
        if let Some(body) = &rt.body {
            op["requestBody"] =
                json!({"required": false, "content": {"application/json": {"schema": body}}});
        }
        let entry = paths.entry(rt.path.to_owned()).or_insert_with(|| json!({}));
        entry[rt.method.as_str().to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Conclave REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every command and query of the Conclave engine over JSON. See docs/api.md.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": components(),
    })
}

fn operation_id(method: &Method, path: &str) -> String {
    let mut id = method.as_str().to_ascii_lowercase();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(
            seg.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
    }
    id.trim_end_matches('_')
        .replace("__", "_")
        .replace("{", "")
        .replace("}", "")
}

fn components() -> Value {
    let event = json!({"type": "object", "required": ["type", "at", "actor", "stream", "data"], "properties": {
        "seq": u(), "type": sd("stable event type (room_join, peer_role, ban, ...)"),
        "at": json!({"type": "string", "format": "date-time"}), "actor": s(), "stream": s(),
        "data": json!({"type": "object"})}});
    let command_result = json!({"type": "object", "required": ["correlation_id", "head", "events"], "properties": {
        "correlation_id": s(), "head": u(), "events": {"type": "array", "items": r("Event")}}});
    let entry = json!({"allOf": [r("CommandResult"), {"type": "object",
        "required": ["token", "token_type", "identity", "room", "session"], "properties": {
        "token": sd("participant bearer token (256 bits, in memory only: lost on restart)"),
        "token_type": json!({"const": "Bearer"}), "identity": s(), "room": s(), "session": s(),
        "role": nullable(s()), "welcome_text": nullable(s()), "server_welcome_text": s(),
        "guest_key": nullable(sd("for a guest name: the key to claim it again once it has standing (keep it; null for other identities)"))}}]});
    let create = json!({"allOf": [r("CommandResult"), {"type": "object", "required": ["room"], "properties": {
        "room": s(), "owners": {"type": "array", "items": s()}, "identity": s(),
        "token": sd("present when an identity created the room"), "token_type": s(),
        "guest_key": nullable(sd("for a guest creator: the key to claim the name again"))}}]});
    let invitation_result = json!({"allOf": [r("CommandResult"), {"type": "object", "properties": {
        "invitation": s(), "invitee": s(), "expires_at": nullable(s()), "single_use": b(),
        "delivery": sd("mailto: invitees: `email`, or `none` when no SMTP relay is configured"),
        "secret": sd("only with delivery `none`: the bearer secret to hand over"),
        "link": sd("only with delivery `none`: the page's relative link with the secret")}}]});
    let summary = json!({"type": "object", "properties": {
        "room": s(), "parent": nullable(s()), "depth": u(), "children": {"type": "array", "items": s()},
        "account": nullable(s()), "private": b(), "locked": b(), "lobby": b(), "moderated_chat": b(),
        "reserved": b(), "has_password": b(), "max_members": u(), "members": u(), "sessions": u(),
        "owners": {"type": "array", "items": s()}, "welcome_text": nullable(s()),
        "name": nullable(s()), "description": nullable(s()), "subject": nullable(s()), "persistent": b(),
        "created_at": s(), "last_activity": s()}});
    let detail = json!({"allOf": [r("RoomSummary"), {"type": "object", "description": "the extra fields appear for participants of the room and the admin", "properties": {
        "default_role": nullable(s()), "owner_exit_destroys": b(),
        "members_change_subject": b(), "public_addresses": b(), "subject_at": nullable(s()),
        "invite": {"enum": ["members", "moderators", "owners", "members_unless_private"], "description": "who may invite; members_unless_private is the rule rooms created before the setting keep"},
        "affiliations": {"type": "object", "additionalProperties": {"type": "string"}},
        "present": {"type": "array", "items": r("Member")}, "lobby_waiting": u()}}]});
    let member = json!({"type": "object", "properties": {
        "principal": s(), "role": nullable(s()),
        "audio": {"enum": ["open", "self_closed", "moderator"]}, "video": {"enum": ["open", "self_closed", "moderator"]},
        "hand_raised": b(), "sessions": {"type": "array", "items": {"type": "object", "properties": {
            "session": s(), "address": s(), "gateway": s(), "joined_at": s()}}}}});
    let ban = json!({"type": "object", "properties": {"subject": s(), "reason": nullable(s()), "by": s(), "at": s(), "until": nullable(s())}});
    let invitation = json!({"type": "object", "properties": {"invitation": s(), "invitee": s(), "by": s(), "issued_at": s(),
        "expires_at": nullable(s()), "single_use": b(),
        "state": {"enum": ["pending", "accepted", "denied", "used", "revoked", "expired"]}}});
    let account = json!({"type": "object", "properties": {"account": s(), "display_name": nullable(s()), "enabled": b(),
        "identities": {"type": "array", "items": s()}, "contacts_restricted": b(),
        "allowed_contacts": {"type": "array", "items": s()}, "moderators": {"type": "array", "items": s()},
        "bans": {"type": "array", "items": r("Ban")}, "rendezvous": nullable(s()),
        "sip_credentials": {"type": "array", "items": {"type": "object", "properties": {
            "address": s(), "realm": s(), "algorithms": {"type": "array", "items": s()}}}}}});
    let audit = json!({"type": "object", "properties": {"seq": u(), "at": s(), "stream": s(), "event_type": s(),
        "schema_version": u(), "actor": nullable(s()), "gateway": nullable(s()), "protocol": nullable(s()),
        "remote_addr": nullable(sd("keyed hash (h:...) when IP obfuscation is on")), "correlation_id": nullable(s()),
        "causation_id": nullable(s()), "authorized_by": nullable(s()), "event": r("Event")}});
    let feed_event = json!({"allOf": [r("AuditEntry"), {"type": "object", "properties": {
        "stream_version": u()}, "description": "participants' streams leave out remote_addr"}]});
    let chat = json!({"type": "object", "properties": {"seq": u(), "at": s(), "message": s(),
        "from": s(), "address": s(), "body": nullable(sd("null once purged by retention or erasure")),
        "html_stripped": b()}});
    let health = json!({"type": "object", "required": ["status"], "properties": {
        "status": {"enum": ["ok", "unhealthy"]}, "engine": s(), "journal_head": u(), "committed_head": u(),
        "uptime_secs": u(), "sources": {"type": "object"}}});
    let purge = json!({"type": "object", "properties": {
        "action": {"enum": ["retention", "erasure"]}, "subject": nullable(s()), "before": nullable(s()),
        "records_selected": u(), "records_purged": u(), "up_to_seq": u(),
        "journaled_seq": nullable(sd("the content_purge record; null when nothing matched")),
        "correlation_id": nullable(s())}});
    let error = json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
        "required": ["code", "message", "correlation_id"], "properties": {
        "code": sd("stable code, e.g. membership.banned, input.invalid, auth.required"),
        "message": s(), "correlation_id": nullable(s())}}}});
    json!({
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
            "description": "the admin token, or a participant token from join/knock/call/create"}},
        "responses": {"Error": {"description": "error", "content": {"application/json": {"schema": r("Error")}}}},
        "schemas": {
            "Principal": sd("an identity address (web:alice, sip:alice@example.org, xmpp:alice@example.org, mailto:...) or account:<id>"),
            "Address": sd("web:<name> | sip:<user>@<host> | xmpp:<node>@<domain> | mailto:<mailbox>@<domain>"),
            "Event": event, "CommandResult": command_result, "EntryResult": entry,
            "CreateRoomResult": create, "InvitationResult": invitation_result,
            "RoomSummary": summary, "RoomDetail": detail, "Member": member, "Ban": ban,
            "Invitation": invitation, "Account": account, "AuditEntry": audit,
            "Health": health, "Error": error, "PurgeResult": purge,
            "FeedEvent": feed_event, "ChatMessage": chat,
        }
    })
}
