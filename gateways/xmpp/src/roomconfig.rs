//! The XEP-0045 §10.2 owner configuration form (`muc#roomconfig`) of a Conclave room:
//! rendered from the room's [`RoomConfig`], and a submitted form turned into the
//! engine's [`RoomChange`]s, only those that change something (an unchanged form, or the
//! instant-room form `<x type='submit'/>`, gives none). `type='cancel'` is the caller's.
//!
//! How the form maps onto the engine (decisions):
//!
//! | field | engine |
//! | --- | --- |
//! | `roomname`, `roomdesc` | `name`, `description` (empty = none) |
//! | `changesubject` | `members_change_subject` |
//! | `maxusers` | `max_members` (`none` = no room limit; any positive number is taken, not only the offered ones) |
//! | `membersonly` | `private` |
//! | `publicroom` | `!private`: Conclave lists every room that is not private (disco#items) and no other, so "public" and "members-only" are one setting; whichever of the two fields the owner changed wins (changing both always agrees) |
//! | `moderatedroom` | `default_role == Some(Visitor)`: unaffiliated occupants enter as visitors, without voice; turned off it is `Some(Member)`. A room whose default role is none (affiliated people only) shows it off and keeps its role unless the owner turns it on |
//! | `passwordprotectedroom`, `roomsecret` | `access_password_hash`; the stored hash is never shown (the secret field is always empty). A non-empty secret sets the password (returned in plaintext for the caller to hash); protection off clears it; protection on with an empty secret keeps the present password, or is refused when there is none |
//! | `whois` | `public_addresses`: `anyone` = true, `moderators` = false |
//! | `persistentroom` | `persistent` |
//! | `allowinvites` | `invite`: on = members may invite ([`InviteRight::Members`]), off = moderators ([`InviteRight::Moderators`]); shown on when members may invite now |
//!
//! Not in the form: `enablelogging` (every message is kept in the journal, whatever the
//! setting; there are no public logs to enable: a fixed field says so instead), and
//! `historylength` / `maxhistoryfetch` (discussion history is [`crate::history`]'s fixed
//! bound). Submitted fields the form does not offer are ignored, as fields of another
//! form would be.

use conclave_engine::model::{InviteRight, Role, RoomChange, RoomConfig};
use thiserror::Error;

use crate::dataform::{self, DataForm, Field, FieldType, FormError, FormType};
use crate::xml::Element;

/// The form's `FORM_TYPE`.
pub const FORM_TYPE: &str = "http://jabber.org/protocol/muc#roomconfig";
/// The `<query/>` namespace of owner requests.
pub const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";

/// Field names.
pub const ROOMNAME: &str = "muc#roomconfig_roomname";
/// Field name.
pub const ROOMDESC: &str = "muc#roomconfig_roomdesc";
/// Field name.
pub const CHANGESUBJECT: &str = "muc#roomconfig_changesubject";
/// Field name.
pub const MAXUSERS: &str = "muc#roomconfig_maxusers";
/// Field name.
pub const MEMBERSONLY: &str = "muc#roomconfig_membersonly";
/// Field name.
pub const MODERATEDROOM: &str = "muc#roomconfig_moderatedroom";
/// Field name.
pub const PASSWORDPROTECTEDROOM: &str = "muc#roomconfig_passwordprotectedroom";
/// Field name.
pub const ROOMSECRET: &str = "muc#roomconfig_roomsecret";
/// Field name.
pub const WHOIS: &str = "muc#roomconfig_whois";
/// Field name.
pub const PERSISTENTROOM: &str = "muc#roomconfig_persistentroom";
/// Field name.
pub const PUBLICROOM: &str = "muc#roomconfig_publicroom";
/// Field name.
pub const ALLOWINVITES: &str = "muc#roomconfig_allowinvites";

/// The text of the fixed field that stands for `enablelogging`.
pub const LOGGING_NOTE: &str =
    "Every message is kept in the room's archive for the server's retention period.";

/// The `maxusers` choices offered (besides `none`).
pub const MAXUSERS_CHOICES: [u32; 5] = [10, 20, 30, 50, 100];

/// What a submitted configuration form asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigSubmission {
    /// The changes to configure, one per setting that changes (in a fixed order);
    /// none when nothing changes.
    pub changes: Vec<RoomChange>,
    /// A new access password in plaintext, for the caller to hash into a
    /// [`RoomChange::AccessPassword`]; `Some(None)` clears it. Clearing is also in
    /// `changes` (`AccessPassword(None)`); setting is not, as it needs the hash.
    pub new_password: Option<Option<String>>,
}

/// Why a submitted form was refused. `code()` strings are stable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The data form itself is malformed.
    #[error(transparent)]
    Form(#[from] FormError),
    /// Not a form of type `submit` (a `cancel` is the caller's to handle).
    #[error("the configuration form was not submitted (type {0})")]
    NotSubmitted(&'static str),
    /// A `FORM_TYPE` other than `muc#roomconfig`.
    #[error("not a room configuration form: {0:?}")]
    WrongFormType(String),
    /// A field whose value the room cannot take.
    #[error("field {var} cannot be {value:?}")]
    BadValue {
        /// The field.
        var: &'static str,
        /// The value (cut short).
        value: String,
    },
    /// Password protection asked for, without a password.
    #[error("password protection needs a password")]
    PasswordMissing,
}

impl ConfigError {
    /// A stable code for logs and tests.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Form(e) => e.code(),
            ConfigError::NotSubmitted(_) => "roomconfig.not_submitted",
            ConfigError::WrongFormType(_) => "roomconfig.wrong_form_type",
            ConfigError::BadValue { .. } => "roomconfig.bad_value",
            ConfigError::PasswordMissing => "roomconfig.password_missing",
        }
    }

    /// The XMPP stanza error condition: a form that does not parse is a `bad-request`;
    /// values the room cannot take are `not-acceptable`.
    pub fn condition(&self) -> &'static str {
        match self {
            ConfigError::Form(_) | ConfigError::NotSubmitted(_) | ConfigError::WrongFormType(_) => {
                "bad-request"
            }
            ConfigError::BadValue { .. } | ConfigError::PasswordMissing => "not-acceptable",
        }
    }
}

fn flag(var: &str, label: &str, on: bool) -> Field {
    Field::new(var, FieldType::Boolean)
        .label(label)
        .value(if on { "1" } else { "0" })
}

fn moderated(config: &RoomConfig) -> bool {
    config.default_role == Some(Role::Visitor)
}

fn allows_invites(config: &RoomConfig) -> bool {
    config.invite_role() <= Role::Member
}

/// The configuration form of a room named `room` (the title uses the room's display
/// name when it has one).
pub fn render(room: &str, config: &RoomConfig) -> DataForm {
    let shown = config.name.as_deref().unwrap_or(room);
    let mut form = DataForm::new(FormType::Form);
    form.form_type = Some(FORM_TYPE.into());
    form.title = Some(format!("Configuration for \"{shown}\" Room"));
    form.instructions = Some("Complete this form to modify the configuration of your room.".into());
    let mut maxusers = Field::new(MAXUSERS, FieldType::ListSingle)
        .label("Maximum Number of Occupants")
        .value(&config.max_members.map_or("none".into(), |n| n.to_string()));
    let mut choices: Vec<u32> = MAXUSERS_CHOICES.to_vec();
    if let Some(n) = config.max_members {
        // A limit set elsewhere (another protocol, the API) is offered too.
        if !choices.contains(&n) {
            choices.push(n);
            choices.sort_unstable();
        }
    }
    for n in choices {
        let n = n.to_string();
        maxusers = maxusers.option(&n, &n);
    }
    maxusers = maxusers.option("None", "none");
    let whois = if config.public_addresses {
        "anyone"
    } else {
        "moderators"
    };
    form.fields = vec![
        Field::new(ROOMNAME, FieldType::TextSingle)
            .label("Natural-Language Room Name")
            .value(config.name.as_deref().unwrap_or("")),
        Field::new(ROOMDESC, FieldType::TextSingle)
            .label("Short Description of Room")
            .value(config.description.as_deref().unwrap_or("")),
        flag(
            CHANGESUBJECT,
            "Allow Occupants to Change Subject?",
            config.members_change_subject,
        ),
        flag(
            ALLOWINVITES,
            "Allow Occupants to Invite Others?",
            allows_invites(config),
        ),
        maxusers,
        flag(
            PUBLICROOM,
            "Make Room Publicly Searchable? (every room that is not members-only is listed)",
            !config.private,
        ),
        flag(PERSISTENTROOM, "Make Room Persistent?", config.persistent),
        flag(MODERATEDROOM, "Make Room Moderated?", moderated(config)),
        flag(MEMBERSONLY, "Make Room Members Only?", config.private),
        flag(
            PASSWORDPROTECTEDROOM,
            "Password Required for Entry?",
            config.access_password_hash.is_some(),
        ),
        Field::fixed(
            "If a password is required to enter this room, you must specify the password below.",
        ),
        // Never the stored hash: the owner sets a new password or leaves it empty.
        Field::new(ROOMSECRET, FieldType::TextPrivate)
            .label("Password")
            .value(""),
        Field::new(WHOIS, FieldType::ListSingle)
            .label("Who May Discover Real JIDs?")
            .value(whois)
            .option("Moderators Only", "moderators")
            .option("Anyone", "anyone"),
        Field::fixed(LOGGING_NOTE),
    ];
    form
}

/// The owner's `<query xmlns='…muc#owner'>` answer holding the form.
pub fn render_query(room: &str, config: &RoomConfig) -> Element {
    Element::new("query", NS_MUC_OWNER).child(render(room, config).to_element())
}

/// Parses the `<x/>` of a submitted configuration and computes its changes.
pub fn parse_submission(
    x: &Element,
    current: &RoomConfig,
) -> Result<ConfigSubmission, ConfigError> {
    submission(&dataform::parse(x)?, current)
}

/// A text field: `None` when absent, `Some(None)` when empty.
fn text(form: &DataForm, var: &str) -> Result<Option<Option<String>>, FormError> {
    Ok(form
        .value(var)?
        .map(|v| (!v.is_empty()).then(|| v.to_owned())))
}

fn cut(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The changes a parsed, submitted configuration form asks for.
pub fn submission(form: &DataForm, current: &RoomConfig) -> Result<ConfigSubmission, ConfigError> {
    if form.kind != FormType::Submit {
        return Err(ConfigError::NotSubmitted(form.kind.as_str()));
    }
    if let Some(t) = &form.form_type {
        if t != FORM_TYPE {
            return Err(ConfigError::WrongFormType(cut(t)));
        }
    }
    // The wanted configuration, built field by field; the changes are what differs.
    let mut want = current.clone();
    let mut changes = Vec::new();
    let mut change = |c: RoomChange, want: &mut RoomConfig| {
        if !c.is_noop(want) {
            c.apply(want);
            changes.push(c);
        }
    };

    if let Some(name) = text(form, ROOMNAME)? {
        change(RoomChange::Name(name), &mut want);
    }
    if let Some(desc) = text(form, ROOMDESC)? {
        change(RoomChange::Description(desc), &mut want);
    }
    if let Some(on) = form.bool_value(CHANGESUBJECT)? {
        change(RoomChange::MembersChangeSubject(on), &mut want);
    }
    if let Some(v) = form.value(MAXUSERS)? {
        let max = match v.trim() {
            "none" | "" => None,
            n => match n.parse::<u32>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(ConfigError::BadValue {
                        var: MAXUSERS,
                        value: cut(v),
                    })
                }
            },
        };
        change(RoomChange::MaxMembers(max), &mut want);
    }
    // Members-only and public are one setting (`private`): the field the owner changed
    // decides.
    let members_only = form.bool_value(MEMBERSONLY)?;
    let public = form.bool_value(PUBLICROOM)?;
    let private = match (members_only, public) {
        (Some(m), _) if m != current.private => Some(m),
        (_, Some(p)) if p == current.private => Some(!p),
        _ => None,
    };
    if let Some(p) = private {
        change(RoomChange::Private(p), &mut want);
    }
    if let Some(on) = form.bool_value(PERSISTENTROOM)? {
        change(RoomChange::Persistent(on), &mut want);
    }
    if let Some(on) = form.bool_value(MODERATEDROOM)? {
        if on != moderated(current) {
            let role = if on { Role::Visitor } else { Role::Member };
            change(RoomChange::DefaultRole(Some(role)), &mut want);
        }
    }
    if let Some(v) = form.value(WHOIS)? {
        let anyone = match v.trim() {
            "anyone" => true,
            "moderators" => false,
            _ => {
                return Err(ConfigError::BadValue {
                    var: WHOIS,
                    value: cut(v),
                })
            }
        };
        change(RoomChange::PublicAddresses(anyone), &mut want);
    }
    // Judged on the wanted configuration: with the old rule that follows `private`,
    // a change of `private` alone must not change who may invite.
    if let Some(on) = form.bool_value(ALLOWINVITES)? {
        if on != allows_invites(&want) {
            let right = if on {
                InviteRight::Members
            } else {
                InviteRight::Moderators
            };
            change(RoomChange::Invite(right), &mut want);
        }
    }
    let protected = form.bool_value(PASSWORDPROTECTEDROOM)?;
    let secret = text(form, ROOMSECRET)?.flatten();
    let has_password = current.access_password_hash.is_some();
    let new_password = match (protected, secret) {
        (Some(false), _) if has_password => Some(None),
        (Some(false), _) => None,
        (_, Some(secret)) => Some(Some(secret)),
        (Some(true), None) if !has_password => return Err(ConfigError::PasswordMissing),
        (_, None) => None,
    };
    if new_password == Some(None) {
        changes.push(RoomChange::AccessPassword(None));
    }
    Ok(ConfigSubmission {
        changes,
        new_password,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::xml::parse_element;

    fn el(xml: &str) -> Element {
        parse_element(xml, "jabber:client", &[]).unwrap()
    }

    fn submit(fields: &str) -> Element {
        el(&format!(
            "<x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>\
             {fields}</x>"
        ))
    }

    fn field(var: &str, value: &str) -> String {
        format!("<field var='{var}'><value>{value}</value></field>")
    }

    /// The rendered form, filled in as rendered and submitted.
    fn resubmit(config: &RoomConfig) -> Element {
        let mut form = render("coven", config);
        form.kind = FormType::Submit;
        for f in &mut form.fields {
            f.options.clear();
            f.label = None;
        }
        form.fields.retain(|f| f.kind != FieldType::Fixed);
        form.to_element()
    }

    fn configs() -> Vec<RoomConfig> {
        let plain = RoomConfig::default();
        let mut busy = RoomConfig {
            private: true,
            max_members: Some(25),
            default_role: Some(Role::Visitor),
            access_password_hash: Some("$argon2id$stored".into()),
            invite: InviteRight::Owners,
            ..RoomConfig::default()
        };
        busy.name = Some("A Dark Cave".into());
        busy.description = Some("The place for all good witches!".into());
        busy.members_change_subject = true;
        busy.persistent = true;
        busy.public_addresses = true;
        let old = RoomConfig {
            invite: InviteRight::MembersUnlessPrivate,
            default_role: None,
            ..RoomConfig::default()
        };
        vec![plain, busy, old]
    }

    #[test]
    fn the_form_shows_the_configuration_but_never_the_password() {
        let mut config = configs().remove(1);
        config.max_members = Some(20);
        let form = render("coven", &config);
        assert_eq!(form.kind, FormType::Form);
        assert_eq!(form.form_type.as_deref(), Some(FORM_TYPE));
        assert_eq!(
            form.title.as_deref(),
            Some("Configuration for \"A Dark Cave\" Room")
        );
        assert_eq!(form.value(ROOMNAME), Ok(Some("A Dark Cave")));
        assert_eq!(
            form.value(ROOMDESC),
            Ok(Some("The place for all good witches!"))
        );
        assert_eq!(form.bool_value(CHANGESUBJECT), Ok(Some(true)));
        assert_eq!(form.bool_value(ALLOWINVITES), Ok(Some(false)));
        assert_eq!(form.value(MAXUSERS), Ok(Some("20")));
        assert_eq!(form.bool_value(PUBLICROOM), Ok(Some(false)));
        assert_eq!(form.bool_value(PERSISTENTROOM), Ok(Some(true)));
        assert_eq!(form.bool_value(MODERATEDROOM), Ok(Some(true)));
        assert_eq!(form.bool_value(MEMBERSONLY), Ok(Some(true)));
        assert_eq!(form.bool_value(PASSWORDPROTECTEDROOM), Ok(Some(true)));
        assert_eq!(form.value(ROOMSECRET), Ok(Some("")));
        assert_eq!(form.field(ROOMSECRET).unwrap().kind, FieldType::TextPrivate);
        assert_eq!(form.value(WHOIS), Ok(Some("anyone")));
        let xml = render_query("coven", &config).to_xml("jabber:client");
        assert!(!xml.contains("argon2"), "{xml}");
        assert!(xml.starts_with("<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='form'>"));
        assert!(!xml.contains("enablelogging"));
        assert!(form.fields.contains(&Field::fixed(LOGGING_NOTE)));
        // The XEP's maxusers choices, in its order, `none` last; the limit 20 once.
        let options: Vec<&str> = form
            .field(MAXUSERS)
            .unwrap()
            .options
            .iter()
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(options, ["10", "20", "30", "50", "100", "none"]);
        // A limit that is not a choice is offered as one.
        config.max_members = Some(25);
        let form = render("coven", &config);
        assert!(form
            .field(MAXUSERS)
            .unwrap()
            .options
            .contains(&("25".into(), "25".into())));
        // A room without a display name is titled with its name; no limit is `none`.
        let form = render("coven", &RoomConfig::default());
        assert_eq!(
            form.title.as_deref(),
            Some("Configuration for \"coven\" Room")
        );
        assert_eq!(form.value(MAXUSERS), Ok(Some("none")));
        assert_eq!(form.value(WHOIS), Ok(Some("moderators")));
        assert_eq!(form.bool_value(PUBLICROOM), Ok(Some(true)));
    }

    #[test]
    fn an_unchanged_form_changes_nothing() {
        for config in configs() {
            let got = parse_submission(&resubmit(&config), &config).unwrap();
            assert_eq!(got, ConfigSubmission::default(), "{config:?}");
        }
    }

    #[test]
    fn the_instant_room_form_changes_nothing() {
        // XEP-0045 Example 160: accepting the default configuration.
        let x = el("<x xmlns='jabber:x:data' type='submit'/>");
        for config in configs() {
            assert_eq!(
                parse_submission(&x, &config).unwrap(),
                ConfigSubmission::default()
            );
        }
    }

    #[test]
    fn the_xep_submission_maps_onto_the_engine() {
        // XEP-0045 Example 163 (owner submits the configuration form), with the
        // fields Conclave does not offer left in: they are ignored.
        let x = el("<x xmlns='jabber:x:data' type='submit'>\
            <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>\
            <field var='muc#roomconfig_roomname'><value>A Dark Cave</value></field>\
            <field var='muc#roomconfig_roomdesc'><value>The place for all good witches!</value></field>\
            <field var='muc#roomconfig_enablelogging'><value>0</value></field>\
            <field var='muc#roomconfig_changesubject'><value>1</value></field>\
            <field var='muc#roomconfig_allowinvites'><value>0</value></field>\
            <field var='muc#roomconfig_allowpm'><value>anyone</value></field>\
            <field var='muc#roomconfig_maxusers'><value>10</value></field>\
            <field var='muc#roomconfig_presencebroadcast'><value>moderator</value><value>participant</value><value>visitor</value></field>\
            <field var='muc#roomconfig_getmemberlist'><value>moderator</value><value>participant</value><value>visitor</value></field>\
            <field var='muc#roomconfig_publicroom'><value>0</value></field>\
            <field var='muc#roomconfig_persistentroom'><value>1</value></field>\
            <field var='muc#roomconfig_moderatedroom'><value>1</value></field>\
            <field var='muc#roomconfig_membersonly'><value>1</value></field>\
            <field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>\
            <field var='muc#roomconfig_roomsecret'><value>cauldronburn</value></field>\
            <field var='muc#roomconfig_whois'><value>moderators</value></field>\
            <field var='muc#maxhistoryfetch'><value>50</value></field>\
            <field var='muc#roomconfig_roomadmins'><value>wiccarocks@shakespeare.lit</value><value>hecate@shakespeare.lit</value></field>\
            </x>");
        let got = parse_submission(&x, &RoomConfig::default()).unwrap();
        assert_eq!(
            got.changes,
            vec![
                RoomChange::Name(Some("A Dark Cave".into())),
                RoomChange::Description(Some("The place for all good witches!".into())),
                RoomChange::MembersChangeSubject(true),
                RoomChange::MaxMembers(Some(10)),
                RoomChange::Private(true),
                RoomChange::Persistent(true),
                RoomChange::DefaultRole(Some(Role::Visitor)),
            ]
        );
        assert_eq!(got.new_password, Some(Some("cauldronburn".into())));
    }

    #[test]
    fn each_field_changes_its_setting() {
        let plain = RoomConfig::default();
        let one = |fields: &str, config: &RoomConfig| {
            parse_submission(&submit(fields), config).unwrap().changes
        };
        assert_eq!(
            one(&field(ROOMNAME, "Cave"), &plain),
            [RoomChange::Name(Some("Cave".into()))]
        );
        let mut named = plain.clone();
        named.name = Some("Cave".into());
        named.description = Some("d".into());
        assert_eq!(one(&field(ROOMNAME, ""), &named), [RoomChange::Name(None)]);
        assert_eq!(
            one(&field(ROOMDESC, ""), &named),
            [RoomChange::Description(None)]
        );
        assert_eq!(
            one(
                &field(MAXUSERS, "none"),
                &RoomConfig {
                    max_members: Some(5),
                    ..plain.clone()
                }
            ),
            [RoomChange::MaxMembers(None)]
        );
        assert_eq!(
            one(&field(MAXUSERS, "42"), &plain),
            [RoomChange::MaxMembers(Some(42))]
        );
        assert_eq!(
            one(&field(WHOIS, "anyone"), &plain),
            [RoomChange::PublicAddresses(true)]
        );
        assert_eq!(
            one(&field(PERSISTENTROOM, "true"), &plain),
            [RoomChange::Persistent(true)]
        );
        assert_eq!(
            one(&field(ALLOWINVITES, "1"), &plain),
            [RoomChange::Invite(InviteRight::Members)]
        );
        let members_invite = RoomConfig {
            invite: InviteRight::Members,
            ..plain.clone()
        };
        assert_eq!(
            one(&field(ALLOWINVITES, "0"), &members_invite),
            [RoomChange::Invite(InviteRight::Moderators)]
        );
        // Owners-only invitations show as "off" and stay as they are while off.
        let owners = RoomConfig {
            invite: InviteRight::Owners,
            ..plain.clone()
        };
        assert_eq!(one(&field(ALLOWINVITES, "0"), &owners), []);
        // Moderated: visitors by default; off again: members.
        assert_eq!(
            one(&field(MODERATEDROOM, "1"), &plain),
            [RoomChange::DefaultRole(Some(Role::Visitor))]
        );
        let visitors = RoomConfig {
            default_role: Some(Role::Visitor),
            ..plain.clone()
        };
        assert_eq!(
            one(&field(MODERATEDROOM, "0"), &visitors),
            [RoomChange::DefaultRole(Some(Role::Member))]
        );
        // A room of affiliated people only keeps that while "not moderated".
        let closed = RoomConfig {
            default_role: None,
            ..plain.clone()
        };
        assert_eq!(one(&field(MODERATEDROOM, "0"), &closed), []);
    }

    #[test]
    fn members_only_and_public_are_one_setting() {
        let open = RoomConfig::default();
        let private = RoomConfig {
            private: true,
            ..RoomConfig::default()
        };
        let both = |m: &str, p: &str, config: &RoomConfig| {
            parse_submission(
                &submit(&(field(MEMBERSONLY, m) + &field(PUBLICROOM, p))),
                config,
            )
            .unwrap()
            .changes
        };
        // The form as rendered, with one of the two toggled.
        assert_eq!(both("1", "1", &open), [RoomChange::Private(true)]);
        assert_eq!(both("0", "0", &open), [RoomChange::Private(true)]);
        assert_eq!(both("0", "0", &private), [RoomChange::Private(false)]);
        assert_eq!(both("1", "1", &private), [RoomChange::Private(false)]);
        // Both toggled agree; neither toggled is nothing.
        assert_eq!(both("1", "0", &open), [RoomChange::Private(true)]);
        assert_eq!(both("0", "1", &open), []);
        // Alone.
        let one = |fields: String, config: &RoomConfig| {
            parse_submission(&submit(&fields), config).unwrap().changes
        };
        assert_eq!(
            one(field(PUBLICROOM, "0"), &open),
            [RoomChange::Private(true)]
        );
        assert_eq!(
            one(field(MEMBERSONLY, "0"), &private),
            [RoomChange::Private(false)]
        );
    }

    #[test]
    fn invitations_under_the_old_rule_do_not_change_with_privacy() {
        // Under MembersUnlessPrivate an open room lets members invite; making it
        // private with "allow invites" still on pins members.
        let old = RoomConfig {
            invite: InviteRight::MembersUnlessPrivate,
            ..RoomConfig::default()
        };
        let mut form = resubmit(&old);
        let got = parse_submission(&form, &old).unwrap();
        assert!(got.changes.is_empty());
        form = submit(&(field(MEMBERSONLY, "1") + &field(ALLOWINVITES, "1")));
        assert_eq!(
            parse_submission(&form, &old).unwrap().changes,
            [
                RoomChange::Private(true),
                RoomChange::Invite(InviteRight::Members)
            ]
        );
        form = submit(&(field(MEMBERSONLY, "1") + &field(ALLOWINVITES, "0")));
        assert_eq!(
            parse_submission(&form, &old).unwrap().changes,
            [RoomChange::Private(true)]
        );
    }

    #[test]
    fn passwords_are_set_kept_and_cleared() {
        let open = RoomConfig::default();
        let locked = RoomConfig {
            access_password_hash: Some("$argon2id$stored".into()),
            ..RoomConfig::default()
        };
        let go = |fields: String, config: &RoomConfig| parse_submission(&submit(&fields), config);
        let on = |secret: &str| field(PASSWORDPROTECTEDROOM, "1") + &field(ROOMSECRET, secret);
        let off = |secret: &str| field(PASSWORDPROTECTEDROOM, "0") + &field(ROOMSECRET, secret);
        // Set.
        let got = go(on("cauldronburn"), &open).unwrap();
        assert_eq!(got.new_password, Some(Some("cauldronburn".into())));
        assert!(got.changes.is_empty());
        // Replaced (the old one is never compared: a secret given is a new password).
        let got = go(on("newer"), &locked).unwrap();
        assert_eq!(got.new_password, Some(Some("newer".into())));
        // Kept: protected, the secret left empty as rendered.
        assert_eq!(go(on(""), &locked).unwrap(), ConfigSubmission::default());
        // Cleared, whatever the secret field holds.
        for secret in ["", "ignored"] {
            let got = go(off(secret), &locked).unwrap();
            assert_eq!(got.new_password, Some(None));
            assert_eq!(got.changes, [RoomChange::AccessPassword(None)]);
        }
        // Nothing to clear.
        assert_eq!(go(off(""), &open).unwrap(), ConfigSubmission::default());
        // Protection without a password.
        let err = go(on(""), &open).unwrap_err();
        assert_eq!(err, ConfigError::PasswordMissing);
        assert_eq!(err.condition(), "not-acceptable");
        // A secret alone sets it.
        let got = go(field(ROOMSECRET, "s"), &open).unwrap();
        assert_eq!(got.new_password, Some(Some("s".into())));
    }

    #[test]
    fn bad_submissions_are_refused_with_a_condition() {
        let plain = RoomConfig::default();
        let cases: Vec<(Element, &str, &str)> = vec![
            (submit(&field(MAXUSERS, "many")), "roomconfig.bad_value", "not-acceptable"),
            (submit(&field(MAXUSERS, "0")), "roomconfig.bad_value", "not-acceptable"),
            (submit(&field(MAXUSERS, "-3")), "roomconfig.bad_value", "not-acceptable"),
            (submit(&field(MAXUSERS, "99999999999")), "roomconfig.bad_value", "not-acceptable"),
            (submit(&field(WHOIS, "everyone")), "roomconfig.bad_value", "not-acceptable"),
            (submit(&field(PERSISTENTROOM, "yes")), "form.bad_boolean", "bad-request"),
            (
                submit(&format!("<field var='{ROOMNAME}'><value>a</value><value>b</value></field>")),
                "form.multiple_values",
                "bad-request",
            ),
            (
                el("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field></x>"),
                "roomconfig.wrong_form_type",
                "bad-request",
            ),
            (el("<x xmlns='jabber:x:data' type='cancel'/>"), "roomconfig.not_submitted", "bad-request"),
            (el("<x xmlns='jabber:x:data' type='form'/>"), "roomconfig.not_submitted", "bad-request"),
            (el("<x xmlns='jabber:x:data'/>"), "form.bad_form_type", "bad-request"),
        ];
        for (x, code, condition) in cases {
            let err = parse_submission(&x, &plain).unwrap_err();
            assert_eq!((err.code(), err.condition()), (code, condition), "{err}");
        }
    }

    #[test]
    fn applying_the_changes_gives_what_the_form_said() {
        // Whatever is submitted, the configuration after the changes renders back to
        // the submitted values (the password aside).
        let wanted = "<field var='muc#roomconfig_roomname'><value>N</value></field>\
            <field var='muc#roomconfig_changesubject'><value>1</value></field>\
            <field var='muc#roomconfig_allowinvites'><value>1</value></field>\
            <field var='muc#roomconfig_maxusers'><value>30</value></field>\
            <field var='muc#roomconfig_membersonly'><value>1</value></field>\
            <field var='muc#roomconfig_persistentroom'><value>1</value></field>\
            <field var='muc#roomconfig_moderatedroom'><value>1</value></field>\
            <field var='muc#roomconfig_whois'><value>anyone</value></field>";
        for config in configs() {
            let got = parse_submission(&submit(wanted), &config).unwrap();
            let mut after = config.clone();
            for c in &got.changes {
                c.apply(&mut after);
            }
            let form = render("r", &after);
            assert_eq!(form.value(ROOMNAME), Ok(Some("N")));
            assert_eq!(form.bool_value(CHANGESUBJECT), Ok(Some(true)));
            assert_eq!(form.bool_value(ALLOWINVITES), Ok(Some(true)));
            assert_eq!(form.value(MAXUSERS), Ok(Some("30")));
            assert_eq!(form.bool_value(MEMBERSONLY), Ok(Some(true)));
            assert_eq!(form.bool_value(PUBLICROOM), Ok(Some(false)));
            assert_eq!(form.bool_value(PERSISTENTROOM), Ok(Some(true)));
            assert_eq!(form.bool_value(MODERATEDROOM), Ok(Some(true)));
            assert_eq!(form.value(WHOIS), Ok(Some("anyone")));
            // And submitting the same again changes nothing more.
            assert!(parse_submission(&submit(wanted), &after)
                .unwrap()
                .changes
                .is_empty());
        }
    }
}
