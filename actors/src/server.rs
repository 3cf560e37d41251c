//! What the engine knows about a configured server and a named transfer.
//!
//! The daemon's settings (`pinkpage::settings`) build these from `.env` and
//! the servers file; the engine only reads them. They are shared behind
//! `Arc` and never change while the daemon runs.

use std::path::PathBuf;

use crate::secret::Secret;

/// How the daemon proves who it is to a server.
#[derive(Debug, Clone)]
pub enum Auth {
    /// A password, offered as `password` and, when the server asks, as the
    /// answer to keyboard-interactive prompts.
    Password(Secret),
    /// An OpenSSH private key file, optionally encrypted.
    KeyFile {
        /// Where the private key is.
        path: PathBuf,
        /// The key's passphrase, when it has one.
        passphrase: Option<Secret>,
    },
}

/// How a command given as a string (STUB `ssh_command`, workflow command
/// steps, BMX5 scripts, BMX4 commands, `diff_command`) is run on a server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CommandMode {
    /// An SSH `exec` request: the user's shell runs the command with `-c`,
    /// without reading the login profile. The default.
    #[default]
    Exec,
    /// The command is typed into the user's interactive login shell on a
    /// PTY (an SSH `shell` request), as the seed did: for access gateways
    /// that allow only shell channels, and for commands that need the
    /// login profile. Needs a POSIX login shell (`crate::shell_mode`).
    Shell,
}

impl CommandMode {
    /// The configuration name (`exec`, `shell`).
    pub fn as_str(self) -> &'static str {
        match self {
            CommandMode::Exec => "exec",
            CommandMode::Shell => "shell",
        }
    }

    /// Parses a configuration name; `None` for anything else.
    pub fn parse(name: &str) -> Option<CommandMode> {
        match name {
            "exec" => Some(CommandMode::Exec),
            "shell" => Some(CommandMode::Shell),
            _ => None,
        }
    }
}

/// One server operators can work on.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// The name clients use (`mdwap1p`); unique.
    pub name: String,
    /// Host name or IP address.
    pub host: String,
    /// SSH port.
    pub port: u16,
    /// Login user.
    pub username: String,
    /// Credentials.
    pub auth: Auth,
    /// A pinned host key fingerprint (`SHA256:...`, as `ssh-keygen -lf`
    /// prints it). When set it is the only key accepted and the known_hosts
    /// file is not consulted.
    pub host_key_fingerprint: Option<String>,
    /// The encoding the server's output is decoded with (WHATWG label, e.g.
    /// `utf-8`, `euc-kr`).
    pub encoding: &'static encoding_rs::Encoding,
    /// Free-form labels for grouping in the UI.
    pub tags: Vec<String>,
    /// How commands given as strings run there.
    pub command_mode: CommandMode,
    /// Whether its PTYs are recorded (`record = false` in the servers
    /// file: for servers whose output must not be kept).
    pub record: bool,
}

/// A named server-to-server copy (SPEC section 7), as configured and as
/// `GET /api/v1/transfers` lists it (run it with `scp_transfer` on
/// `/ws/v1/stub`).
#[cfg(any(test, feature = "testing"))]
impl ServerSpec {
    /// A server for tests that never log in to it: `name` at `host:port`
    /// as `nobody` with a password that is never sent, no tags, UTF-8,
    /// exec mode, recorded.
    pub fn for_tests(name: &str, host: &str, port: u16) -> ServerSpec {
        ServerSpec {
            name: name.to_owned(),
            host: host.to_owned(),
            port,
            username: "nobody".to_owned(),
            auth: Auth::Password(crate::Secret::new("unused")),
            host_key_fingerprint: None,
            encoding: encoding_rs::UTF_8,
            tags: Vec::new(),
            command_mode: CommandMode::default(),
            record: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransferSpec {
    /// The name clients use (`stub_data_transfer`); unique.
    pub name: String,
    /// Server the files are read from.
    pub source_server: String,
    /// Absolute path whose last component may be a glob (`*.dat`).
    pub source_glob: String,
    /// Server the files are written to.
    pub destination_server: String,
    /// Directory the files are written into.
    pub destination_dir: String,
    /// Whether to compare SHA-256 of source and destination bytes.
    pub verify_sha256: bool,
}
