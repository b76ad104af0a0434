//! Reading a `MESSAGE` body: a `#command` line (Kamailio's `imc_parse_cmd`: the name up
//! to the first blank, then blank-separated parameters on the same line) or a chat line.
//! Pure: no engine, no I/O.

use thiserror::Error;

/// Kamailio reads at most this many parameters (`IMC_CMD_MAX_PARAM`); more are ignored.
const MAX_PARAMS: usize = 5;

/// One IMC command with its arguments as written (resolved later by
/// [`super::Addressing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImcCommand {
    /// `#create [<room>] [private]`.
    Create { room: Option<String>, private: bool },
    /// `#join [<room>]`.
    Join { room: Option<String> },
    /// `#invite <user> [<room>]`.
    Invite { user: String, room: Option<String> },
    /// `#accept [<room>]`.
    Accept { room: Option<String> },
    /// `#deny [<room>]` (also `#reject`).
    Deny { room: Option<String> },
    /// `#remove <user> [<room>]`.
    Remove { user: String, room: Option<String> },
    /// `#exit [<room>]` (also `#leave`).
    Exit { room: Option<String> },
    /// `#destroy [<room>]`.
    Destroy { room: Option<String> },
    /// `#list [<room>]` (also `#members`).
    List { room: Option<String> },
    /// `#record [<room>]`: start recording (not in Kamailio's IMC; Conclave's).
    Record { room: Option<String> },
    /// `#stoprecord [<room>]`.
    StopRecord { room: Option<String> },
    /// `#help`.
    Help,
}

/// What a body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not a command: a chat line, posted as written.
    Chat,
    /// A command, or why the command line cannot be run.
    Command(Result<ImcCommand, ImcError>),
}

/// Why a command cannot be run before the engine is asked. Answered with a notice
/// (`200` and a `*** ...` `MESSAGE`), as Kamailio answers an invalid command.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImcError {
    /// Not one of the commands (the name as written, clipped).
    #[error("invalid command '{0}'")]
    UnknownCommand(String),
    /// A required argument is missing or one is malformed; the usage line says which.
    #[error("usage: {0}")]
    Usage(&'static str),
    /// The room argument is not a room of this domain.
    #[error("invalid room '{0}'")]
    InvalidRoom(String),
    /// The user argument is no valid identity.
    #[error("invalid user '{0}'")]
    InvalidUser(String),
    /// Sent to the manager without naming a room.
    #[error("no room given")]
    NoRoom,
    /// A chat line sent to the manager, which hosts no conversation.
    #[error("not a command")]
    NotACommand,
}

impl ImcError {
    /// Stable code, for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ImcError::UnknownCommand(_) => "imc.unknown_command",
            ImcError::Usage(_) => "imc.usage",
            ImcError::InvalidRoom(_) => "imc.invalid_room",
            ImcError::InvalidUser(_) => "imc.invalid_user",
            ImcError::NoRoom => "imc.no_room",
            ImcError::NotACommand => "imc.not_a_command",
        }
    }
}

/// Usage lines, without the command character (the notice adds it).
pub mod usage {
    pub const CREATE: &str = "create <room> [private]";
    pub const INVITE: &str = "invite <user> [<room>]";
    pub const REMOVE: &str = "remove <user> [<room>]";
}

/// Reads a body. A command starts with `command_char` (leading blanks allowed) and is
/// read from its first line only; anything else is chat.
pub fn parse(body: &str, command_char: char) -> Parsed {
    let Some(rest) = body.trim_start().strip_prefix(command_char) else {
        return Parsed::Chat;
    };
    let line = rest.lines().next().unwrap_or_default();
    let mut words = line.split([' ', '\t']).filter(|w| !w.is_empty());
    // Kamailio: the name runs up to the first blank; "# join" has an empty name.
    let name = if line.starts_with([' ', '\t']) {
        ""
    } else {
        words.next().unwrap_or_default()
    };
    let params: Vec<String> = words.take(MAX_PARAMS).map(str::to_owned).collect();
    Parsed::Command(command(name, params))
}

fn command(name: &str, params: Vec<String>) -> Result<ImcCommand, ImcError> {
    let mut p = params.into_iter();
    let mut next = || p.next();
    let cmd = match name.to_ascii_lowercase().as_str() {
        "create" => {
            let (first, second) = (next(), next());
            let private = |w: &str| w.eq_ignore_ascii_case("private");
            match (first, second) {
                (Some(f), None) if private(&f) => ImcCommand::Create {
                    room: None,
                    private: true,
                },
                (room, None) => ImcCommand::Create {
                    room,
                    private: false,
                },
                (Some(room), Some(flag)) if private(&flag) => ImcCommand::Create {
                    room: Some(room),
                    private: true,
                },
                _ => return Err(ImcError::Usage(usage::CREATE)),
            }
        }
        "join" => ImcCommand::Join { room: next() },
        "invite" => ImcCommand::Invite {
            user: next().ok_or(ImcError::Usage(usage::INVITE))?,
            room: next(),
        },
        "accept" => ImcCommand::Accept { room: next() },
        "deny" | "reject" => ImcCommand::Deny { room: next() },
        "remove" => ImcCommand::Remove {
            user: next().ok_or(ImcError::Usage(usage::REMOVE))?,
            room: next(),
        },
        "exit" | "leave" => ImcCommand::Exit { room: next() },
        "destroy" => ImcCommand::Destroy { room: next() },
        "list" | "members" => ImcCommand::List { room: next() },
        "record" => ImcCommand::Record { room: next() },
        "stoprecord" => ImcCommand::StopRecord { room: next() },
        "help" => ImcCommand::Help,
        _ => return Err(ImcError::UnknownCommand(super::notice::clip(name))),
    };
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(body: &str) -> Result<ImcCommand, ImcError> {
        match parse(body, '#') {
            Parsed::Command(c) => c,
            Parsed::Chat => Err(ImcError::NotACommand),
        }
    }

    fn s(x: &str) -> Option<String> {
        Some(x.to_owned())
    }

    #[test]
    fn chat_is_anything_without_the_command_char() {
        assert_eq!(parse("hello #all", '#'), Parsed::Chat);
        assert_eq!(parse("#help", '!'), Parsed::Chat);
        assert!(matches!(
            parse("!help", '!'),
            Parsed::Command(Ok(ImcCommand::Help))
        ));
    }

    #[test]
    fn create_forms() {
        let create = |room: Option<String>, private| Ok(ImcCommand::Create { room, private });
        assert_eq!(cmd("#create chat-000 private"), create(s("chat-000"), true));
        assert_eq!(cmd("#create chat-000"), create(s("chat-000"), false));
        assert_eq!(cmd("#create private"), create(None, true));
        assert_eq!(cmd("#create"), create(None, false));
        assert_eq!(cmd("#create a b"), Err(ImcError::Usage(usage::CREATE)));
    }

    #[test]
    fn names_are_caseless_and_aliases_are_kamailios() {
        assert_eq!(cmd("  #JOIN x\r\n"), Ok(ImcCommand::Join { room: s("x") }));
        assert_eq!(cmd("#reject"), Ok(ImcCommand::Deny { room: None }));
        assert_eq!(cmd("#leave"), Ok(ImcCommand::Exit { room: None }));
        assert_eq!(cmd("#members r"), Ok(ImcCommand::List { room: s("r") }));
        assert_eq!(cmd("#record"), Ok(ImcCommand::Record { room: None }));
        assert_eq!(
            cmd("#StopRecord r"),
            Ok(ImcCommand::StopRecord { room: s("r") })
        );
    }

    #[test]
    fn user_commands_need_a_user() {
        assert_eq!(cmd("#invite"), Err(ImcError::Usage(usage::INVITE)));
        assert_eq!(
            cmd("#remove\tsip:j@x.org  r"),
            Ok(ImcCommand::Remove {
                user: "sip:j@x.org".into(),
                room: s("r")
            })
        );
    }

    #[test]
    fn only_the_first_line_counts() {
        assert_eq!(
            cmd("#join\nnot a room"),
            Ok(ImcCommand::Join { room: None })
        );
    }

    #[test]
    fn unknown_and_empty_names() {
        assert_eq!(cmd("#dance"), Err(ImcError::UnknownCommand("dance".into())));
        assert_eq!(cmd("# join"), Err(ImcError::UnknownCommand(String::new())));
        let long = format!("#{}", "x".repeat(500));
        assert!(matches!(cmd(&long), Err(ImcError::UnknownCommand(n)) if n.len() < 100));
    }
}
