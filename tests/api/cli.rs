//! The account commands of the real binary: `pinkpage user ...` and
//! `pinkpage token ...` against a database in a temporary directory, with
//! no servers file and no daemon (they need only `PINKPAGE_DB` and the audit
//! key, made in `./data` by the first of them).
//!
//! Each Argon2 hash costs about 0.2 s, so each test adds as few users as
//! it can.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// A strong password, and one whose every appearance would be a leak.
const CANARY_PASSWORD: &str = "canary-Pa55word-7f3a9c";

/// A scratch directory with its own database path.
struct Cli {
    dir: TempDir,
}

/// One finished run of the binary.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Cli {
    fn new() -> Cli {
        Cli {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("accounts.db")
    }

    /// Runs `pinkpage ARGS` with only PATH and PINKPAGE_DB set, feeding
    /// `stdin` when given.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pinkpage"))
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PINKPAGE_DB", self.db())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run pinkpage");
        let mut pipe = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            // A command that refuses before it reads (a name already
            // taken) may be gone already: its exit is what is asserted.
            match pipe.write_all(text.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                written => written.unwrap(),
            }
        }
        drop(pipe);
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().unwrap();
        Run {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let run = self.run(args, stdin);
        assert_eq!(
            run.code,
            Some(0),
            "{args:?} failed:\n{}{}",
            run.stdout,
            run.stderr
        );
        run
    }

    fn add_user(&self, name: &str, role: &str, extra: &[&str]) -> Run {
        let mut args = vec!["user", "add", name, "--role", role, "--password-stdin"];
        args.extend_from_slice(extra);
        self.run(&args, Some(&format!("{CANARY_PASSWORD}\n")))
    }

    /// The `user list` line of `name`, split into columns.
    fn user_line(&self, name: &str) -> Vec<String> {
        let list = self.ok(&["user", "list"], None).stdout;
        let line = list
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{list}"));
        line.split_whitespace().map(str::to_owned).collect()
    }

    fn sql(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db()).unwrap()
    }

    /// Every byte the database keeps on disk (its WAL too, if one is left).
    fn db_bytes(&self) -> Vec<u8> {
        let mut bytes = std::fs::read(self.db()).unwrap();
        for suffix in ["-wal", "-journal"] {
            let extra = PathBuf::from(format!("{}{suffix}", self.db().display()));
            if let Ok(more) = std::fs::read(&extra) {
                bytes.extend(more);
            }
        }
        bytes
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn audit_actions(db: &Path) -> Vec<(String, String, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT actor, action, detail FROM audit_events ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_user_added_from_stdin_is_listed_without_its_password_which_is_stored_only_hashed() {
    let cli = Cli::new();
    let added = cli.add_user("ana.lee", "operator", &["--servers", "web,db"]);
    assert_eq!(added.code, Some(0), "{}", added.stderr);

    let line = cli.user_line("ana.lee");
    assert_eq!(line[1], "operator", "{line:?}");
    assert_eq!(line[2], "enabled", "{line:?}");
    assert_eq!(line.last().unwrap(), "db,web", "{line:?}");
    let list = cli.ok(&["user", "list"], None);
    assert!(!list.stdout.contains(CANARY_PASSWORD) && !list.stderr.contains(CANARY_PASSWORD));
    assert!(!added.stdout.contains(CANARY_PASSWORD) && !added.stderr.contains(CANARY_PASSWORD));

    let hash: String = cli
        .sql()
        .query_row(
            "SELECT password_hash FROM users WHERE name = 'ana.lee'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(CANARY_PASSWORD));
    assert!(
        !contains(&cli.db_bytes(), CANARY_PASSWORD),
        "the password is in the database file"
    );

    let audit = audit_actions(&cli.db());
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!((audit[0].0.as_str(), audit[0].1.as_str()), ("cli", "user.add"));
    assert!(audit[0].2.contains("ana.lee") && !audit[0].2.contains(CANARY_PASSWORD));
}

#[test]
fn weak_passwords_and_duplicate_names_are_refused() {
    let cli = Cli::new();
    let weak = cli.run(
        &["user", "add", "bob", "--role", "viewer", "--password-stdin"],
        Some("short\n"),
    );
    assert_eq!(weak.code, Some(1), "{}", weak.stderr);
    assert!(weak.stderr.contains("weak password"), "{}", weak.stderr);
    assert!(!weak.stderr.contains("short\n"));

    assert_eq!(cli.add_user("bob", "viewer", &[]).code, Some(0));
    let again = cli.add_user("bob", "admin", &[]);
    assert_eq!(again.code, Some(1));
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    // the first account is untouched
    assert_eq!(cli.user_line("bob")[1], "viewer");
}

#[test]
fn a_password_given_as_an_argument_is_a_usage_error() {
    let cli = Cli::new();
    let run = cli.run(
        &["user", "add", "x", "--role", "admin", "--password", "foo"],
        None,
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    // nothing was created: the database may not even exist
    if cli.db().exists() {
        let n: i64 = cli
            .sql()
            .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}

#[test]
fn role_and_disable_change_what_the_list_shows() {
    let cli = Cli::new();
    assert_eq!(cli.add_user("carol", "viewer", &[]).code, Some(0));
    cli.ok(&["user", "role", "carol", "admin"], None);
    assert_eq!(cli.user_line("carol")[1], "admin");
    cli.ok(&["user", "disable", "carol"], None);
    assert_eq!(cli.user_line("carol")[2], "disabled");
    cli.ok(&["user", "enable", "carol"], None);
    assert_eq!(cli.user_line("carol")[2], "enabled");
    cli.ok(&["user", "servers", "carol", "prod"], None);
    assert_eq!(cli.user_line("carol").last().unwrap(), "prod");
    cli.ok(&["user", "servers", "carol", "--all"], None);
    assert_eq!(cli.user_line("carol").last().unwrap(), "(all)");

    let unknown = cli.run(&["user", "disable", "nobody"], None);
    assert_eq!(unknown.code, Some(1));
    assert!(unknown.stderr.contains("not found"), "{}", unknown.stderr);

    let actions: Vec<String> = audit_actions(&cli.db()).into_iter().map(|a| a.1).collect();
    assert_eq!(
        actions,
        [
            "user.add",
            "user.role",
            "user.disable",
            "user.enable",
            "user.servers",
            "user.servers"
        ]
    );
}

#[test]
fn a_token_is_printed_once_listed_by_id_stored_as_a_digest_and_can_be_revoked() {
    let cli = Cli::new();
    assert_eq!(cli.add_user("deploy", "operator", &[]).code, Some(0));

    let created = cli.ok(
        &["token", "create", "deploy", "--label", "ci", "--expires", "30d"],
        None,
    );
    assert_eq!(created.stdout.lines().count(), 1, "{}", created.stdout);
    let token = created.stdout.trim_end().to_owned();
    assert!(token.starts_with("ppt_"), "{token}");
    assert!(!created.stderr.contains(&token), "the token is printed twice");
    let id = &token[4..16];
    assert!(created.stderr.contains(id), "{}", created.stderr);

    let list = cli.ok(&["token", "list"], None).stdout;
    let line = list
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        line.contains("deploy") && line.contains("active") && line.ends_with("ci"),
        "{line}"
    );
    assert!(
        !list.contains(&token[17..]),
        "token list shows the secret:\n{list}"
    );

    let digest: String = cli
        .sql()
        .query_row("SELECT secret_hash FROM api_tokens WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    let expected: String = Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(digest, expected);
    let bytes = cli.db_bytes();
    assert!(
        !contains(&bytes, &token[17..]),
        "the token's secret is in the database file"
    );
    assert!(!contains(&bytes, CANARY_PASSWORD));

    cli.ok(&["token", "revoke", id], None);
    let list = cli.ok(&["token", "list", "--user", "deploy"], None).stdout;
    assert!(
        list.lines().any(|l| l.starts_with(id) && l.contains("revoked")),
        "{list}"
    );
    let revoked_at: Option<String> = cli
        .sql()
        .query_row("SELECT revoked_at FROM api_tokens WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(revoked_at.is_some());

    let audit = audit_actions(&cli.db());
    let actions: Vec<&str> = audit.iter().map(|a| a.1.as_str()).collect();
    assert_eq!(actions, ["user.add", "token.create", "token.revoke"]);
    assert!(audit.iter().all(|a| !a.2.contains(&token[17..])));
}

#[test]
fn a_token_for_an_unknown_user_or_with_a_bad_lifetime_is_refused() {
    let cli = Cli::new();
    let unknown = cli.run(&["token", "create", "ghost"], None);
    assert_eq!(unknown.code, Some(1), "{}", unknown.stderr);
    assert!(unknown.stdout.is_empty());
    let bad = cli.run(&["token", "create", "ghost", "--expires", "soon"], None);
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
}

#[test]
fn help_lists_every_setting_and_the_account_commands() {
    let cli = Cli::new();
    let help = cli.ok(&["--help"], None).stdout;
    for s in pinkpage::settings::SETTINGS {
        assert!(help.contains(s.name), "{} not in help:\n{help}", s.name);
    }
    for command in ["serve", "check-config", "user", "token", "audit"] {
        assert!(help.contains(command), "{command} not in help:\n{help}");
    }
    let audit_help = cli.ok(&["audit", "--help"], None).stdout;
    for command in ["head", "verify"] {
        assert!(
            audit_help.contains(command),
            "{command} not in audit help:\n{audit_help}"
        );
    }
    let user_help = cli.ok(&["user", "--help"], None).stdout;
    for command in ["add", "list", "passwd", "disable", "enable", "role", "servers"] {
        assert!(
            user_help.contains(command),
            "{command} not in user help:\n{user_help}"
        );
    }
}

#[test]
fn passwd_replaces_the_hash_with_one_of_the_new_password() {
    let cli = Cli::new();
    assert_eq!(cli.add_user("dave", "viewer", &[]).code, Some(0));
    let hash_of = || -> String {
        cli.sql()
            .query_row("SELECT password_hash FROM users WHERE name = 'dave'", [], |r| {
                r.get(0)
            })
            .unwrap()
    };
    let before = hash_of();
    let new_password = "another-canary-Pw-41d2";
    cli.ok(
        &["user", "passwd", "dave", "--password-stdin"],
        Some(&format!("{new_password}\n")),
    );
    let after = hash_of();
    assert_ne!(before, after);
    assert!(after.starts_with("$argon2id$"));
    // the new hash is of the new password, not merely a fresh salt
    use pinkpage::accounts::password::verify;
    use pinkpage_actors::Secret;
    assert!(verify(&Secret::new(new_password), &after));
    assert!(!verify(&Secret::new(new_password), &before));
    assert!(!contains(&cli.db_bytes(), new_password));
    let weak = cli.run(&["user", "passwd", "dave", "--password-stdin"], Some("dave\n"));
    assert_eq!(weak.code, Some(1));
    assert_eq!(hash_of(), after, "a refused password changed the hash");
}
