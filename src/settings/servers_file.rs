//! The servers file (`PINKPAGE_SERVERS_FILE`): any number of servers and
//! named transfers, in TOML.
//!
//! ```toml
//! [[servers]]
//! name = "web1"
//! host = "10.0.0.5"
//! port = 22                      # default 22
//! username = "deploy"
//! password_env = "WEB1_PASSWORD" # the password is read from this variable
//! # key_file = "/etc/pinkpage/web1_ed25519"   # or a private key
//! # key_passphrase_env = "WEB1_KEY_PASSPHRASE"
//! host_key_fingerprint = "SHA256:..."          # optional pin
//! encoding = "euc-kr"            # default utf-8
//! tags = ["prod", "web"]
//! command_mode = "shell"         # default "exec"; see docs/configuration.md
//!
//! [[transfers]]
//! name = "nightly_unload"
//! source_server = "web1"
//! source_glob = "/data/out/*.dat"
//! destination_server = "web2"
//! destination_dir = "/data/in/"
//! verify_sha256 = true           # default false
//! ```
//!
//! Workflows (`[[workflows]]`) are described in `super::workflows`, command
//! rules (`[[command_rules]]`, `[command_policy]`) in
//! `super::command_rules`.
//!
//! Secrets are never in the file itself: it names the environment variable
//! that holds them, so the file can be reviewed and versioned.

use std::path::{Path, PathBuf};

use pinkpage_actors::secret::Secret;
use pinkpage_actors::server::{Auth, CommandMode, ServerSpec, TransferSpec};
use serde::Deserialize;

use super::env::SettingsError;
use super::names::check_name;

const VAR: &str = "PINKPAGE_SERVERS_FILE";

/// The parsed and validated file.
#[derive(Debug, Default)]
pub struct ServersFile {
    /// Servers in file order.
    pub servers: Vec<ServerSpec>,
    /// Transfers in file order.
    pub transfers: Vec<TransferSpec>,
    /// Workflows as written; checked against every server and transfer
    /// once all are known (`super::workflows::build`).
    pub workflows: Vec<super::workflows::RawWorkflow>,
    /// The command rules and their default action, checked.
    pub command_policy: pinkpage_actors::policy::rules::CommandPolicy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    servers: Vec<RawServer>,
    #[serde(default)]
    transfers: Vec<RawTransfer>,
    #[serde(default)]
    workflows: Vec<super::workflows::RawWorkflow>,
    #[serde(default)]
    command_rules: Vec<super::command_rules::RawRule>,
    #[serde(default)]
    command_policy: Option<super::command_rules::RawPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    name: String,
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    username: String,
    password_env: Option<String>,
    key_file: Option<PathBuf>,
    key_passphrase_env: Option<String>,
    host_key_fingerprint: Option<String>,
    #[serde(default = "default_encoding")]
    encoding: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    command_mode: Option<String>,
    #[serde(default = "recorded")]
    record: bool,
}

fn recorded() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransfer {
    name: String,
    source_server: String,
    source_glob: String,
    destination_server: String,
    destination_dir: String,
    #[serde(default)]
    verify_sha256: bool,
}

fn default_port() -> u16 {
    22
}

fn default_encoding() -> String {
    "utf-8".to_owned()
}

/// Reads and validates the file at `path`; `lookup` resolves `*_env` names.
pub fn load(path: &Path, lookup: &dyn Fn(&str) -> Option<String>) -> Result<ServersFile, SettingsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SettingsError::new(VAR, format!("cannot read {}: {e}", path.display())))?;
    parse(&text, lookup).map_err(|problem| SettingsError::new(VAR, format!("{}: {problem}", path.display())))
}

/// Parses the file's text; errors are the problem without the variable.
pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<ServersFile, String> {
    let raw: RawFile = toml::from_str(text).map_err(|e| e.message().to_owned())?;
    let mut out = ServersFile {
        workflows: raw.workflows,
        command_policy: super::command_rules::build(raw.command_rules, raw.command_policy)?,
        ..ServersFile::default()
    };
    for s in raw.servers {
        out.servers.push(server(s, lookup)?);
    }
    for t in raw.transfers {
        check_name("transfer", &t.name)?;
        if !t.source_glob.starts_with('/') {
            return Err(format!(
                "transfer '{}': source_glob must be an absolute path",
                t.name
            ));
        }
        if !t.destination_dir.starts_with('/') {
            return Err(format!(
                "transfer '{}': destination_dir must be an absolute path",
                t.name
            ));
        }
        out.transfers.push(TransferSpec {
            name: t.name,
            source_server: t.source_server,
            source_glob: t.source_glob,
            destination_server: t.destination_server,
            destination_dir: t.destination_dir,
            verify_sha256: t.verify_sha256,
        });
    }
    Ok(out)
}

fn server(s: RawServer, lookup: &dyn Fn(&str) -> Option<String>) -> Result<ServerSpec, String> {
    check_name("server", &s.name)?;
    let who = format!("server '{}'", s.name);
    if s.host.trim().is_empty() {
        return Err(format!("{who}: host is empty"));
    }
    if s.port == 0 {
        return Err(format!("{who}: port 0 is not a valid SSH port"));
    }
    if s.username.trim().is_empty() {
        return Err(format!("{who}: username is empty"));
    }
    let secret = |var: &str| {
        lookup(var)
            .filter(|v| !v.is_empty())
            .map(Secret::new)
            .ok_or_else(|| format!("{who}: environment variable {var} is not set"))
    };
    let auth = match (&s.password_env, &s.key_file) {
        (Some(var), None) => Auth::Password(secret(var)?),
        (None, Some(path)) => Auth::KeyFile {
            path: path.clone(),
            passphrase: s.key_passphrase_env.as_deref().map(secret).transpose()?,
        },
        (Some(_), Some(_)) => return Err(format!("{who}: set password_env or key_file, not both")),
        (None, None) => return Err(format!("{who}: needs password_env or key_file")),
    };
    if let Some(fp) = &s.host_key_fingerprint {
        if !fp.starts_with("SHA256:") || fp.len() < 20 {
            return Err(format!(
                "{who}: host_key_fingerprint must look like SHA256:<base64> (ssh-keygen -lf)"
            ));
        }
    }
    let encoding = encoding_rs::Encoding::for_label(s.encoding.as_bytes())
        .ok_or_else(|| format!("{who}: unknown encoding '{}'", s.encoding))?;
    let command_mode = match s.command_mode.as_deref() {
        None => CommandMode::Exec,
        Some(name) => CommandMode::parse(name)
            .ok_or_else(|| format!("{who}: command_mode '{name}' is not one of exec, shell"))?,
    };
    Ok(ServerSpec {
        name: s.name,
        host: s.host,
        port: s.port,
        username: s.username,
        auth,
        host_key_fingerprint: s.host_key_fingerprint,
        encoding,
        tags: s.tags,
        command_mode,
        record: s.record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "WEB_PW").then(|| "pw-value".to_owned())
    }

    #[test]
    fn a_full_file_parses() {
        let f = parse(
            r#"
            [[servers]]
            name = "web1"
            host = "127.0.0.1"
            port = 2222
            username = "deploy"
            password_env = "WEB_PW"
            encoding = "euc-kr"
            tags = ["prod"]
            host_key_fingerprint = "SHA256:abcdefghijklmnopqrstuvwxyz"

            [[servers]]
            name = "web2"
            host = "127.0.0.2"
            username = "deploy"
            key_file = "/keys/web2"

            [[transfers]]
            name = "t1"
            source_server = "web1"
            source_glob = "/out/*.dat"
            destination_server = "web2"
            destination_dir = "/in/"
            verify_sha256 = true
            "#,
            &env,
        )
        .unwrap();
        assert_eq!(f.servers.len(), 2);
        assert_eq!(f.servers[0].encoding, encoding_rs::EUC_KR);
        assert_eq!(f.servers[1].port, 22);
        assert!(matches!(f.servers[1].auth, Auth::KeyFile { .. }));
        assert!(f.transfers[0].verify_sha256);
    }

    #[test]
    fn a_missing_password_variable_is_named() {
        let err = parse(
            "[[servers]]\nname='a'\nhost='h'\nusername='u'\npassword_env='NOPE'\n",
            &env,
        )
        .unwrap_err();
        assert!(err.contains("NOPE"), "{err}");
    }

    #[test]
    fn unknown_keys_and_encodings_are_refused() {
        assert!(parse(
            "[[servers]]\nname='a'\nhost='h'\nusername='u'\npassword_env='WEB_PW'\npasword='x'\n",
            &env
        )
        .is_err());
        assert!(parse(
            "[[servers]]\nname='a'\nhost='h'\nusername='u'\npassword_env='WEB_PW'\nencoding='klingon'\n",
            &env
        )
        .is_err());
    }

    #[test]
    fn command_mode_defaults_to_exec_and_takes_shell() {
        let base = "[[servers]]\nname='a'\nhost='h'\nusername='u'\npassword_env='WEB_PW'\n";
        assert_eq!(
            parse(base, &env).unwrap().servers[0].command_mode,
            CommandMode::Exec
        );
        let shell = format!("{base}command_mode = 'shell'\n");
        assert_eq!(
            parse(&shell, &env).unwrap().servers[0].command_mode,
            CommandMode::Shell
        );
        let exec = format!("{base}command_mode = 'exec'\n");
        assert_eq!(
            parse(&exec, &env).unwrap().servers[0].command_mode,
            CommandMode::Exec
        );
        let err = parse(&format!("{base}command_mode = 'pty'\n"), &env).unwrap_err();
        assert!(
            err.contains("command_mode 'pty'") && err.contains("exec, shell"),
            "{err}"
        );
    }

    #[test]
    fn names_with_spaces_or_slashes_are_refused() {
        for bad in ["a b", "a/b", ""] {
            let text = format!("[[servers]]\nname='{bad}'\nhost='h'\nusername='u'\npassword_env='WEB_PW'\n");
            assert!(parse(&text, &env).is_err(), "{bad}");
        }
    }
}
