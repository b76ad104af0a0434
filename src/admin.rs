//! `conclave admin ...`: Jami herd actions and Kamailio IMC MI commands against a
//! running server, over its REST API with the admin token.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// Where the server is and how to authenticate.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Base URL of the running server's REST API.
    #[arg(
        long,
        env = "CONCLAVE_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Admin token [default: read from --token-file].
    #[arg(
        long,
        env = "CONCLAVE_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// File holding the admin token [default: <data-dir>/admin-token].
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// The server's data directory (to find the admin token file).
    #[arg(
        long,
        env = "CONCLAVE_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Print the server's JSON answer instead of the text form.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(subcommand)]
    pub action: AdminAction,
}

/// How an `https://` server's certificate is checked: Mozilla's roots by default, the
/// certificates of a PEM file (a private CA, or a server's own self-signed certificate),
/// or not at all (`--insecure`, for trying `serve --tls-self-signed` out).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// PEM file of the certificates to trust for an https:// server (instead of
    /// Mozilla's roots).
    #[arg(long, env = "CONCLAVE_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// Do not check the server's certificate (only for trying TLS out: it lets anyone
    /// on the path read the admin token).
    #[arg(long, global = true)]
    pub insecure: bool,
}

impl TlsArgs {
    fn config(&self) -> anyhow::Result<ureq::tls::TlsConfig> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading the CA file {}", path.display()))?;
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(&pem) {
                match item.with_context(|| format!("the CA file {}", path.display()))? {
                    ureq::tls::PemItem::Certificate(c) => certs.push(c),
                    _ => continue,
                }
            }
            if certs.is_empty() {
                anyhow::bail!("the CA file {} holds no certificate", path.display());
            }
            tls = tls.root_certs(ureq::tls::RootCerts::from(certs));
        }
        if self.insecure {
            eprintln!("conclave: --insecure: the server's certificate is not checked");
            tls = tls.disable_verification(true);
        }
        Ok(tls.build())
    }
}

/// The actions. Contacts and moderators are identities (`sip:a@b`, `web:a`) or account
/// ids (a bare id such as a Jami fingerprint means `account:<id>`).
#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Jami list-accounts: accounts with their display name and state.
    ListAccounts,
    /// Jami list-account-details: every account in GNU recutils format.
    ListAccountDetails,
    /// Jami list-contacts: each account's allowed contacts.
    ListContacts,
    /// Jami list-moderators: each account's moderators.
    ListModerators,
    /// Jami add-moderator CONTACT ACCOUNT.
    AddModerator { contact: String, account: String },
    /// Jami ban-contact CONTACT [ACCOUNT]: without an account, banned from all of them
    /// (a server-wide ban); banned contacts lose moderation rights.
    BanContact {
        contact: String,
        account: Option<String>,
    },
    /// Jami list-banned-contacts: per account, then server-wide.
    ListBannedContacts,
    /// Jami enable-account ACCOUNT.
    EnableAccount { account: String },
    /// Jami disable-account ACCOUNT: its sessions end, it cannot be reached.
    DisableAccount { account: String },
    /// Kamailio imc_list_rooms: every room with its owners and member count.
    ListRooms,
    /// Kamailio imc_list_members ROOM: who is present in a room.
    ListMembers { room: String },
    /// Mumble's ban list, automatic part: identities and addresses refused after too
    /// many failed joins, and until when.
    ListAutobans,
    /// Lift an autoban early: KIND is `identity` (VALUE an address such as `web:bob`) or
    /// `remote` (VALUE as listed, or a plain IP address).
    LiftAutoban { kind: String, value: String },
    /// Mumble's ban list, by address: ban IP (a plain IP address, stored as joins from it
    /// are, a keyed hash when obfuscation is on; or, with obfuscation off, a network
    /// such as 192.0.2.0/24) server-wide, or in one room with --room. Joins, knocks and
    /// room creations from it are refused under any name.
    BanAddress {
        ip: String,
        /// Only this room.
        #[arg(long)]
        room: Option<String>,
        /// Why (shown to operators and moderators).
        #[arg(long)]
        reason: Option<String>,
        /// For this long; without it, until lifted.
        #[arg(long)]
        duration_secs: Option<u32>,
    },
    /// Address bans: server-wide, or of one room with --room (id, address as stored,
    /// who it was made from, until when).
    ListAddressBans {
        /// Only this room.
        #[arg(long)]
        room: Option<String>,
    },
    /// Lift an address ban: BAN is its id or address as listed, or the IP address or
    /// network as given.
    UnbanAddress {
        ban: String,
        /// A ban of this room.
        #[arg(long)]
        room: Option<String>,
    },
    /// Set the SIP digest password of a sip: identity (as Kamailio's `kamctl add`),
    /// linking it to the account if it is not yet. The password is read from
    /// --password-file or from standard input (its first line), never from an argument,
    /// which anyone could read in `ps`. The server stores MD5 and SHA-256 HA1 values.
    SetSipPassword {
        /// The account.
        #[arg(long)]
        account: String,
        /// The sip: identity phones register as (sip:user@host).
        #[arg(long)]
        address: String,
        /// The digest realm [default: the address's host].
        #[arg(long)]
        realm: Option<String>,
        /// Read the password from this file (its first line) instead of standard input.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Remove a sip: identity's digest credentials (the identity stays linked).
    ClearSipPassword {
        /// The account.
        #[arg(long)]
        account: String,
        /// The sip: identity.
        #[arg(long)]
        address: String,
    },
}

/// The first line of `text`, without its line ending: a password as a file or a pipe
/// holds it.
fn first_line(text: &str) -> &str {
    text.split('\n').next().unwrap_or("").trim_end_matches('\r')
}

/// The SIP password, from the file or standard input (never an argument).
fn read_sip_password(file: Option<&PathBuf>) -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    let password = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the password file {}", path.display()))?;
            first_line(&text).to_owned()
        }
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                // No terminal echo control without another dependency: say so.
                eprint!(
                    "SIP password (shown as typed; pipe it or use --password-file to hide it): "
                );
                std::io::stderr().flush().ok();
            }
            let mut line = String::new();
            stdin
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            first_line(&line).to_owned()
        }
    };
    if password.is_empty() {
        bail!("the SIP password is empty");
    }
    Ok(password)
}

/// A REST client with the admin token (also used by `journal retention|erase --server`).
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: String,
}

/// Percent-encodes one path segment (room names may hold spaces, `#`, `/`...).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Jami names contacts by fingerprint: a bare id is an account.
fn principal(s: &str) -> String {
    if s.contains(':') {
        s.to_owned()
    } else {
        format!("account:{s}")
    }
}

impl Client {
    fn new(args: &AdminArgs) -> anyhow::Result<Client> {
        Client::connect(
            &args.server,
            args.token.clone(),
            args.token_file.clone(),
            &args.data_dir,
            &args.tls,
        )
    }

    /// A client of `server` with `token`, or the token read from `token_file` (default
    /// `<data_dir>/admin-token`).
    pub fn connect(
        server: &str,
        token: Option<String>,
        token_file: Option<PathBuf>,
        data_dir: &std::path::Path,
        tls: &TlsArgs,
    ) -> anyhow::Result<Client> {
        let token = match token {
            Some(t) => t,
            None => {
                let path = token_file.unwrap_or_else(|| data_dir.join("admin-token"));
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no admin token: pass --token or --token-file (tried {})",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned()
            }
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .tls_config(tls.config()?)
            .build()
            .into();
        Ok(Client {
            agent,
            base: server.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// Sends a request; a non-2xx answer is an error naming the server's code.
    pub fn request(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{}", self.base, path);
        let auth = format!("Bearer {}", self.token);
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("Authorization", &auth)
                .call(),
            ("PUT", body) => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .content_type("application/json")
                .send(body.unwrap_or_else(|| json!({})).to_string()),
            (_, body) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .content_type("application/json")
                .send(body.unwrap_or_else(|| json!({})).to_string()),
        };
        let mut resp = result.with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let text = resp
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading the answer to {method} {url}"))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let code = value["error"]["code"].as_str().unwrap_or("?");
            let message = value["error"]["message"].as_str().unwrap_or("");
            bail!("{method} {path}: the server answered {status} {code}: {message}");
        }
        Ok(value)
    }

    fn accounts(&self) -> anyhow::Result<Vec<Value>> {
        let v = self.request("GET", "/accounts", None)?;
        Ok(v["accounts"].as_array().cloned().unwrap_or_default())
    }
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn id(a: &Value) -> &str {
    a["account"].as_str().unwrap_or("?")
}

/// One recutils field; continuation lines start with `+ `.
fn rec_field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(&value.replace('\n', "\n+ "));
    out.push('\n');
}

/// The recutils form of list-account-details (`.` in keys mapped to `_`, as Jami does).
pub fn recutils(accounts: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in accounts.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        rec_field(&mut out, "Account_username", id(a));
        rec_field(
            &mut out,
            "Account_displayName",
            a["display_name"].as_str().unwrap_or(""),
        );
        rec_field(
            &mut out,
            "Account_enable",
            &a["enabled"].as_bool().unwrap_or(false).to_string(),
        );
        rec_field(
            &mut out,
            "Account_rendezVous",
            &a["rendezvous"].is_string().to_string(),
        );
        rec_field(
            &mut out,
            "Account_rendezVousRoom",
            a["rendezvous"].as_str().unwrap_or(""),
        );
        rec_field(
            &mut out,
            "Account_contactsRestricted",
            &a["contacts_restricted"]
                .as_bool()
                .unwrap_or(false)
                .to_string(),
        );
        for x in strs(&a["identities"]) {
            rec_field(&mut out, "Account_identity", &x);
        }
        for x in strs(&a["allowed_contacts"]) {
            rec_field(&mut out, "Account_allowedContact", &x);
        }
        for x in strs(&a["moderators"]) {
            rec_field(&mut out, "Account_moderator", &x);
        }
        for b in a["bans"].as_array().into_iter().flatten() {
            rec_field(
                &mut out,
                "Account_bannedContact",
                b["subject"].as_str().unwrap_or("?"),
            );
        }
    }
    out
}

fn bullet_list(out: &mut String, title: String, items: &[String]) {
    out.push_str(&title);
    out.push('\n');
    for i in items {
        out.push_str("  - ");
        out.push_str(i);
        out.push('\n');
    }
}

/// Runs one admin action and prints its answer.
pub fn run(args: AdminArgs) -> anyhow::Result<()> {
    let c = Client::new(&args)?;
    let mut out = String::new();
    let raw: Value = match &args.action {
        AdminAction::ListAccounts => {
            let accounts = c.accounts()?;
            if accounts.is_empty() {
                out.push_str("There are no accounts.\n");
            } else {
                out.push_str("The following accounts are available:\n");
                for a in &accounts {
                    let name = a["display_name"]
                        .as_str()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default();
                    let state = if a["enabled"].as_bool() == Some(false) {
                        " [disabled]"
                    } else {
                        ""
                    };
                    out.push_str(&format!("  - {}{name}{state}\n", id(a)));
                }
            }
            json!({ "accounts": accounts })
        }
        AdminAction::ListAccountDetails => {
            let accounts = c.accounts()?;
            out = recutils(&accounts);
            json!({ "accounts": accounts })
        }
        AdminAction::ListContacts => {
            let accounts = c.accounts()?;
            for a in &accounts {
                if a["contacts_restricted"].as_bool() == Some(true) {
                    bullet_list(
                        &mut out,
                        format!("Allowed contacts for account {}:", id(a)),
                        &strs(&a["allowed_contacts"]),
                    );
                } else {
                    out.push_str(&format!(
                        "Allowed contacts for account {}: anyone (no allow-list)\n",
                        id(a)
                    ));
                }
            }
            json!({ "accounts": accounts })
        }
        AdminAction::ListModerators => {
            let accounts = c.accounts()?;
            for a in &accounts {
                bullet_list(
                    &mut out,
                    format!("Moderators for account {}:", id(a)),
                    &strs(&a["moderators"]),
                );
            }
            json!({ "accounts": accounts })
        }
        AdminAction::AddModerator { contact, account } => {
            let v = c.request(
                "POST",
                &format!("/accounts/{}/moderators", seg(account)),
                Some(json!({ "moderator": principal(contact) })),
            )?;
            out.push_str(&format!(
                "{} is a moderator of account {account}\n",
                principal(contact)
            ));
            v
        }
        AdminAction::BanContact { contact, account } => {
            let body = json!({ "subject": principal(contact) });
            let v = match account {
                Some(a) => c.request("POST", &format!("/accounts/{}/bans", seg(a)), Some(body))?,
                None => c.request("POST", "/bans", Some(body))?,
            };
            match account {
                Some(a) => out.push_str(&format!(
                    "{} is banned from account {a}\n",
                    principal(contact)
                )),
                None => out.push_str(&format!(
                    "{} is banned from every account (server-wide)\n",
                    principal(contact)
                )),
            }
            v
        }
        AdminAction::ListBannedContacts => {
            let accounts = c.accounts()?;
            for a in &accounts {
                let bans: Vec<String> = a["bans"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|b| b["subject"].as_str().unwrap_or("?").to_owned())
                    .collect();
                bullet_list(
                    &mut out,
                    format!("Banned contacts for account {}:", id(a)),
                    &bans,
                );
            }
            let server = c.request("GET", "/bans", None)?;
            let bans: Vec<String> = server["bans"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| b["subject"].as_str().unwrap_or("?").to_owned())
                .collect();
            bullet_list(
                &mut out,
                "Banned from all accounts (server-wide):".to_owned(),
                &bans,
            );
            json!({ "accounts": accounts, "server": server["bans"] })
        }
        AdminAction::EnableAccount { account } => {
            let v = c.request("POST", &format!("/accounts/{}/enable", seg(account)), None)?;
            out.push_str(&format!("account {account} enabled\n"));
            v
        }
        AdminAction::DisableAccount { account } => {
            let v = c.request("POST", &format!("/accounts/{}/disable", seg(account)), None)?;
            out.push_str(&format!("account {account} disabled\n"));
            v
        }
        AdminAction::ListRooms => {
            let v = c.request("GET", "/rooms", None)?;
            for r in v["rooms"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "ROOM: {}\n  OWNER: {}\n  MEMBERS: {}\n",
                    r["room"].as_str().unwrap_or("?"),
                    strs(&r["owners"]).join(", "),
                    r["members"].as_u64().unwrap_or(0),
                ));
            }
            v
        }
        AdminAction::ListAutobans => {
            let v = c.request("GET", "/autobans", None)?;
            for a in v["autobans"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "AUTOBAN: {} {} until {}\n",
                    a["kind"].as_str().unwrap_or("?"),
                    a["value"].as_str().unwrap_or("?"),
                    a["until"].as_str().unwrap_or("?"),
                ));
            }
            v
        }
        AdminAction::LiftAutoban { kind, value } => {
            let path = format!("/autobans/{}/{}", seg(kind), seg(value));
            let v = c.request("DELETE", &path, None)?;
            out.push_str(&format!("autoban on {kind} {value} lifted\n"));
            v
        }
        AdminAction::BanAddress {
            ip,
            room,
            reason,
            duration_secs,
        } => {
            let body = json!({ "ip": ip, "reason": reason, "duration_secs": duration_secs });
            let path = match room {
                Some(r) => format!("/rooms/{}/address-bans", seg(r)),
                None => "/address-bans".to_owned(),
            };
            let v = c.request("POST", &path, Some(body))?;
            for e in v["events"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "ADDRESS BAN: {} {} ({})\n",
                    e["data"]["id"].as_str().unwrap_or("?"),
                    e["data"]["remote"].as_str().unwrap_or("?"),
                    room.as_deref()
                        .map_or("server-wide".to_owned(), |r| format!("room {r}")),
                ));
            }
            v
        }
        AdminAction::ListAddressBans { room } => {
            let (path, scope) = match room {
                Some(r) => (
                    format!("/rooms/{}/address-bans", seg(r)),
                    format!("room {r}"),
                ),
                None => ("/address-bans".to_owned(), "server-wide".to_owned()),
            };
            let v = c.request("GET", &path, None)?;
            for b in v["address_bans"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "ADDRESS BAN: {} {} ({scope}) until {}{}{}\n",
                    b["id"].as_str().unwrap_or("?"),
                    b["address"].as_str().unwrap_or("?"),
                    b["until"].as_str().unwrap_or("lifted"),
                    b["subject"]
                        .as_str()
                        .map(|s| format!(", made from {s}"))
                        .unwrap_or_default(),
                    b["reason"]
                        .as_str()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default(),
                ));
            }
            v
        }
        AdminAction::UnbanAddress { ban, room } => {
            let path = match room {
                Some(r) => format!("/rooms/{}/address-bans/{}", seg(r), seg(ban)),
                None => format!("/address-bans/{}", seg(ban)),
            };
            let v = c.request("DELETE", &path, None)?;
            out.push_str(&format!("address ban {ban} lifted\n"));
            v
        }
        AdminAction::SetSipPassword {
            account,
            address,
            realm,
            password_file,
        } => {
            let password = read_sip_password(password_file.as_ref())?;
            let body = json!({ "address": address, "password": password, "realm": realm });
            let v = c.request(
                "PUT",
                &format!("/accounts/{}/sip-credentials", seg(account)),
                Some(body),
            )?;
            out.push_str(&format!(
                "SIP password of {address} set (account {account})\n"
            ));
            v
        }
        AdminAction::ClearSipPassword { account, address } => {
            let v = c.request(
                "DELETE",
                &format!(
                    "/accounts/{}/sip-credentials/{}",
                    seg(account),
                    seg(address)
                ),
                None,
            )?;
            out.push_str(&format!(
                "SIP password of {address} cleared (account {account})\n"
            ));
            v
        }
        AdminAction::ListMembers { room } => {
            let v = c.request("GET", &format!("/rooms/{}/members", seg(room)), None)?;
            out.push_str(&format!("ROOM: {room}\n"));
            for m in v["members"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "  MEMBER: {}",
                    m["principal"].as_str().unwrap_or("?")
                ));
                if let Some(role) = m["role"].as_str() {
                    out.push_str(&format!(" ({role})"));
                }
                out.push('\n');
            }
            v
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&raw)?);
    } else {
        print!("{out}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn recutils_maps_keys_and_continues_lines() {
        let a = json!([{"account": "f33", "display_name": "two\nlines", "enabled": true,
            "rendezvous": "conf", "contacts_restricted": false, "identities": ["sip:a@b"],
            "allowed_contacts": [], "moderators": ["account:1db"], "bans": [{"subject": "web:x"}]}]);
        let text = recutils(a.as_array().map(Vec::as_slice).unwrap_or_default());
        assert!(text.contains("Account_username: f33\n"));
        assert!(text.contains("Account_displayName: two\n+ lines\n"));
        assert!(text.contains("Account_rendezVous: true\n"));
        assert!(text.contains("Account_moderator: account:1db\n"));
        assert!(text.contains("Account_bannedContact: web:x\n"));
    }

    #[test]
    fn set_sip_password_takes_no_password_argument() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            admin: AdminArgs,
        }
        use clap::Parser;
        // Given the documented form, the flags parse,
        let cli = Cli::try_parse_from([
            "admin",
            "set-sip-password",
            "--account",
            "alice",
            "--address",
            "sip:alice@example.org",
            "--password-file",
            "/run/pw",
        ])
        .unwrap();
        assert!(matches!(
            cli.admin.action,
            AdminAction::SetSipPassword { realm: None, ref password_file, .. }
                if password_file.as_deref() == Some(std::path::Path::new("/run/pw"))
        ));
        // but there is no way to give the password itself on the command line.
        assert!(Cli::try_parse_from([
            "admin",
            "set-sip-password",
            "--account",
            "alice",
            "--address",
            "sip:alice@example.org",
            "--password",
            "s3cret",
        ])
        .is_err());
        assert_eq!(first_line("s3cret\r\nrest"), "s3cret");
    }

    #[test]
    fn jami_fingerprints_are_accounts_and_segments_are_encoded() {
        assert_eq!(principal("1dbcb0f5"), "account:1dbcb0f5");
        assert_eq!(principal("sip:a@b"), "sip:a@b");
        assert_eq!(seg("a b/#"), "a%20b%2F%23");
    }
}
