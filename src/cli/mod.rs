//! The command line, parsed once by clap into [`Command`]: `pinkpage`
//! serves; `check-config` validates the settings; `user ...` and
//! `token ...` manage accounts in the database (run by [`accounts`]);
//! `audit ...` prints and verifies the audit chain (run by [`audit`]);
//! `hostkey ...` shows and accepts a server's changed host key (run by
//! [`hostkey`]);
//! `--help` lists the commands and every setting.
//!
//! Secrets never come from arguments (they would show in `ps` and
//! `/proc/*/cmdline`): there is no `--password` option, so giving one is a
//! usage error.

pub mod accounts;
pub mod accounts_on_store;
pub mod audit;
pub mod hostkey;

use chrono::Duration;
use clap::{Args, Parser, Subcommand};
use pinkpage_actors::access::Role;

use crate::settings::SETTINGS;
use crate::store::chain::Head;

/// The whole command line: a command, or none to serve.
#[derive(Debug, Parser)]
#[command(
    name = "pinkpage",
    version,
    about = "pinkpage: SSH terminals, session lock, server health, batch runs, SFTP and diffs over WebSockets",
    after_help = settings_help()
)]
pub struct Cli {
    /// What to do; serving when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the daemon (the default)
    Serve,
    /// Validate the settings and the servers file, list the servers, exit
    CheckConfig,
    /// Manage accounts (needs only PINKPAGE_DB and the audit key)
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens for scripts (needs only PINKPAGE_DB and the audit key)
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print or verify the tamper-evident audit trail (needs PINKPAGE_DB and the audit key; read-only, works beside a running daemon)
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Show or accept a server's changed host key (needs the settings, the servers file and known_hosts, as the daemon; accept also PINKPAGE_DB and the audit key)
    #[command(subcommand)]
    Hostkey(HostKeyCommand),
    /// Write a consistent copy of the database into FILE (a new file, made 0600) while the daemon serves; back up the audit key and the recordings directory beside it (docs/operations.md)
    Backup {
        /// Where the copy goes; refused if it exists
        file: std::path::PathBuf,
    },
}

/// `pinkpage hostkey ...` (docs/operations.md, "Host-key rotation").
#[derive(Debug, PartialEq, Eq, Subcommand)]
pub enum HostKeyCommand {
    /// Print the key the server offers now beside the keys trusted for it
    Show {
        /// The server's name
        name: String,
    },
    /// Trust the key the server offers now in place of the recorded ones, if its fingerprint is FINGERPRINT; audited
    Accept {
        /// The server's name
        name: String,
        /// The new key's fingerprint as ssh-keygen -lf prints it (SHA256:...), checked with the server's owner
        fingerprint: String,
    },
}

/// `pinkpage audit ...`.
#[derive(Debug, PartialEq, Eq, Subcommand)]
pub enum AuditCommand {
    /// Print the chain's head, <row id>:<MAC>, alone on its line: keep it somewhere else (a ticket, another host) to catch deleted newest rows later
    Head,
    /// Verify the whole chain with the key; exit 1 naming the first bad row
    Verify {
        /// A head printed earlier by `pinkpage audit head`: also check that its row is still there with that MAC
        #[arg(long, value_name = "ID:MAC", value_parser = parse_head)]
        head: Option<Head>,
    },
}

fn parse_head(s: &str) -> Result<Head, String> {
    s.parse()
}

/// `pinkpage user ...`.
#[derive(Debug, PartialEq, Eq, Subcommand)]
pub enum UserCommand {
    /// Create an account; the password is asked for on the terminal
    Add {
        /// Sign-in name: 1-64 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit
        name: String,
        /// viewer, operator or admin
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Limit the account to servers with these tags (comma-separated); every server when omitted
        #[arg(long, value_name = "TAG,...", value_delimiter = ',')]
        servers: Option<Vec<String>>,
        /// How the password is given
        #[command(flatten)]
        password: PasswordInput,
        /// No password: the account signs in only through the trusted proxy
        #[arg(long, conflicts_with = "password_stdin")]
        no_password: bool,
    },
    /// List accounts (never their passwords)
    List,
    /// Set a new password; ends the account's sign-in sessions
    Passwd {
        /// The account
        name: String,
        /// How the password is given
        #[command(flatten)]
        password: PasswordInput,
    },
    /// Stop an account from signing in or using its tokens; ends its sessions
    Disable {
        /// The account
        name: String,
    },
    /// Allow a disabled account again
    Enable {
        /// The account
        name: String,
    },
    /// Change an account's role
    Role {
        /// The account
        name: String,
        /// viewer, operator or admin
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Limit an account to servers with these tags, or lift the limit with --all
    Servers {
        /// The account
        name: String,
        /// Tags, comma-separated
        #[arg(
            value_name = "TAG,...",
            value_delimiter = ',',
            required_unless_present = "all"
        )]
        tags: Vec<String>,
        /// Every server
        #[arg(long, conflicts_with = "tags")]
        all: bool,
    },
}

/// Where a password comes from: the terminal (no echo, asked twice) unless
/// `--password-stdin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct PasswordInput {
    /// Read the password as one line from standard input instead of the terminal
    #[arg(long)]
    pub password_stdin: bool,
}

/// `pinkpage token ...`.
#[derive(Debug, PartialEq, Eq, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once, on standard output, alone on its line
    Create {
        /// The account the token acts as
        user: String,
        /// What the token is for
        #[arg(long, default_value = "")]
        label: String,
        /// Lifetime: Nd (days), Nh (hours) or never
        #[arg(long, default_value = "90d", value_parser = parse_expiry)]
        expires: Expiry,
    },
    /// List tokens (ids, never secrets)
    List {
        /// Only this account's tokens
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token by its id
    Revoke {
        /// The public id (the 12 hex characters after ppt_)
        id: String,
    },
}

/// A token lifetime as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry(pub Option<Duration>);

/// Longest lifetime `--expires` accepts: ten years (beyond that, say
/// `never` and mean it).
const MAX_EXPIRY_DAYS: i64 = 3650;

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

/// Reads `30d`, `12h` or `never`.
pub fn parse_expiry(s: &str) -> Result<Expiry, String> {
    if s == "never" {
        return Ok(Expiry(None));
    }
    let bad = || format!("'{s}' is not a lifetime; use Nd (days), Nh (hours) or never");
    let (number, hours_per_unit) = if let Some(n) = s.strip_suffix('d') {
        (n, 24)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 1)
    } else {
        return Err(bad());
    };
    let n: i64 = number.parse().map_err(|_| bad())?;
    // clamped first so that a huge number cannot overflow the duration
    let d = Duration::hours(n.clamp(0, (MAX_EXPIRY_DAYS + 1) * 24) * hours_per_unit);
    if n <= 0 || d > Duration::days(MAX_EXPIRY_DAYS) {
        return Err(format!(
            "'{s}' is out of range; a lifetime is at least 1h and at most {MAX_EXPIRY_DAYS}d, or never"
        ));
    }
    Ok(Expiry(Some(d)))
}

/// The settings part of `--help`: every variable, its meaning and default.
pub fn settings_help() -> String {
    let mut out = String::from(
        "SETTINGS (environment variables; a .env file in the working directory is loaded first):\n",
    );
    let width = SETTINGS.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in SETTINGS {
        out.push_str(&format!(
            "    {:width$}  {} (default: {})\n",
            s.name, s.meaning, s.default
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pinkpage").chain(args.iter().copied()))
    }

    #[test]
    fn no_arguments_means_serve() {
        assert_eq!(parse(&[]).unwrap().command, None);
        assert_eq!(parse(&["serve"]).unwrap().command, Some(Command::Serve));
        assert_eq!(
            parse(&["check-config"]).unwrap().command,
            Some(Command::CheckConfig)
        );
    }

    #[test]
    fn help_lists_every_setting() {
        let text = Cli::command().render_long_help().to_string();
        for s in SETTINGS {
            assert!(text.contains(s.name), "{}", s.name);
        }
        assert!(text.contains("user") && text.contains("token") && text.contains("audit"));
    }

    #[test]
    fn audit_commands_parse_and_a_bad_head_is_a_usage_error() {
        assert_eq!(
            parse(&["audit", "head"]).unwrap().command,
            Some(Command::Audit(AuditCommand::Head))
        );
        let head = format!("12:{}", "0f".repeat(32));
        assert_eq!(
            parse(&["audit", "verify", "--head", &head]).unwrap().command,
            Some(Command::Audit(AuditCommand::Verify {
                head: Some(head.parse().unwrap())
            }))
        );
        let bad = parse(&["audit", "verify", "--head", "12:zz"]).unwrap_err();
        assert_eq!(bad.exit_code(), 2);
        assert!(bad.to_string().contains("<row id>:<64 hex digits>"), "{bad}");
    }

    #[test]
    fn hostkey_commands_parse() {
        assert_eq!(
            parse(&["hostkey", "accept", "web1", "SHA256:abc"])
                .unwrap()
                .command,
            Some(Command::Hostkey(HostKeyCommand::Accept {
                name: "web1".into(),
                fingerprint: "SHA256:abc".into()
            }))
        );
        assert_eq!(
            parse(&["hostkey", "show", "web1"]).unwrap().command,
            Some(Command::Hostkey(HostKeyCommand::Show { name: "web1".into() }))
        );
        assert!(parse(&["hostkey", "accept", "web1"]).is_err());
    }

    #[test]
    fn unknown_arguments_are_refused() {
        assert!(parse(&["--frobnicate"]).is_err());
    }

    #[test]
    fn the_clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn user_commands_parse_into_their_types() {
        let cli = parse(&[
            "user",
            "add",
            "ana",
            "--role",
            "operator",
            "--servers",
            "a,b",
            "--password-stdin",
        ]);
        assert_eq!(
            cli.unwrap().command,
            Some(Command::User(UserCommand::Add {
                name: "ana".into(),
                role: Role::Operator,
                servers: Some(vec!["a".into(), "b".into()]),
                password: PasswordInput { password_stdin: true },
                no_password: false,
            }))
        );
        let all = parse(&["user", "servers", "ana", "--all"]).unwrap().command;
        assert_eq!(
            all,
            Some(Command::User(UserCommand::Servers {
                name: "ana".into(),
                tags: vec![],
                all: true
            }))
        );
        assert!(parse(&["user", "servers", "ana"]).is_err());
        assert!(parse(&["user", "servers", "ana", "a", "--all"]).is_err());
        assert!(parse(&["user", "role", "ana", "root"]).is_err());
    }

    #[test]
    fn a_password_argument_is_a_usage_error() {
        let e = parse(&["user", "add", "x", "--role", "admin", "--password", "foo"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn token_lifetimes_parse() {
        assert_eq!(parse_expiry("30d"), Ok(Expiry(Some(Duration::days(30)))));
        assert_eq!(parse_expiry("12h"), Ok(Expiry(Some(Duration::hours(12)))));
        assert_eq!(parse_expiry("never"), Ok(Expiry(None)));
        for bad in [
            "",
            "d",
            "0d",
            "30д",
            "д",
            "-1d",
            "30",
            "30m",
            "1.5d",
            "3651d",
            "99999999999999999999d",
        ] {
            assert!(parse_expiry(bad).is_err(), "{bad:?}");
        }
        let default = parse(&["token", "create", "ana"]).unwrap().command;
        assert_eq!(
            default,
            Some(Command::Token(TokenCommand::Create {
                user: "ana".into(),
                label: String::new(),
                expires: Expiry(Some(Duration::days(90))),
            }))
        );
    }
}
