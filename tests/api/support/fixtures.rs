//! The fixtures most tests start from: a daemon with real sshd servers
//! ([`app_with_server`], [`with_servers`], [`app_with_server_in`] for a
//! [`Mode`]) and a temporary directory tree ([`TempTree`]) that the harness
//! servers can work in.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::daemon::{TestApp, TestAppBuilder};
use super::remote::chown_to_test_user;
use super::sshd::{SshdOptions, SshdServer};

/// A daemon with one real sshd configured as server `name` (password auth
/// as the test user, its host key known).
pub async fn app_with_server(name: &str) -> (TestApp, SshdServer) {
    let (builder, [sshd]) = with_servers([name]);
    (builder.spawn().await, sshd)
}

/// A server's `command_mode`: tests that must behave the same in both take
/// one (see [`both_modes!`](crate::both_modes)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `exec` requests (the default).
    Exec,
    /// Typed into the login shell on a PTY.
    Shell,
}

impl Mode {
    /// The servers-file line that selects this mode.
    pub fn toml(self) -> &'static str {
        match self {
            Mode::Exec => "command_mode = \"exec\"\n",
            Mode::Shell => "command_mode = \"shell\"\n",
        }
    }

    /// A digit that keeps the remote processes of one test's two runs
    /// apart (`sleep 1004.51` and `sleep 1004.52` may run at once).
    pub fn digit(self) -> u8 {
        match self {
            Mode::Exec => 1,
            Mode::Shell => 2,
        }
    }
}

/// A daemon with one real sshd configured as server `name` in `mode`.
pub async fn app_with_server_in(name: &str, mode: Mode) -> (TestApp, SshdServer) {
    let sshd = SshdServer::start(SshdOptions::default());
    let app = TestApp::builder()
        .sshd_with(name, &sshd, mode.toml())
        .spawn()
        .await;
    (app, sshd)
}

/// The names of the hidden files in `dir` (where the daemon's temporary
/// files are), in no particular order.
pub fn hidden_files(dir: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// A `[[transfers]]` entry named `big` that copies `*.dat` from
/// `tree`'s `src/` on `source` to `destination_dir` on `destination`: the
/// transfer the fault tests interrupt.
pub fn big_transfer_toml(tree: &TempTree, source: &str, destination: &str, destination_dir: &str) -> String {
    format!(
        "[[transfers]]\nname = \"big\"\nsource_server = {source:?}\nsource_glob = {:?}\n\
         destination_server = {destination:?}\ndestination_dir = {destination_dir:?}\n",
        tree.path("src/*.dat"),
    )
}

/// A fresh sshd per name, each configured as that server on a daemon
/// builder, for tests that add settings (environment, transfers) before
/// spawning. Keep the servers alive as long as the daemon.
pub fn with_servers<const N: usize>(names: [&str; N]) -> (TestAppBuilder, [SshdServer; N]) {
    let servers = names.map(|_| SshdServer::start(SshdOptions::default()));
    let builder = names
        .iter()
        .zip(&servers)
        .fold(TestApp::builder(), |b, (name, sshd)| b.sshd(name, sshd));
    (builder, servers)
}

/// A fresh directory `/tmp/pinkpage-<tag>-<uuid>`, removed (read-only
/// parts included) on drop.
///
/// Not `tempfile::TempDir`, because the "remote" side of most tests is the
/// harness sshd running as the test user on this machine: a tree made
/// [`for_test_user`](TempTree::for_test_user) is that user's, so the daemon
/// can work in it over SSH while the test (root) looks at the files
/// directly.
pub struct TempTree {
    root: PathBuf,
    /// Whether directories made here are given to the test user.
    for_test_user: bool,
}

impl TempTree {
    /// A tree owned by the test user, for the harness servers to use.
    pub fn for_test_user(tag: &str) -> TempTree {
        let tree = TempTree::make(tag, true);
        chown_to_test_user(&tree.root);
        tree
    }

    /// A tree only the test and the daemon (both root) use: known_hosts
    /// files, script directories, control sockets.
    pub fn private(tag: &str) -> TempTree {
        TempTree::make(tag, false)
    }

    fn make(tag: &str, for_test_user: bool) -> TempTree {
        let root = PathBuf::from(format!("/tmp/pinkpage-{tag}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&root).expect("create temp tree");
        // others may traverse, so the test user reaches subdirectories it owns
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempTree { root, for_test_user }
    }

    /// The tree's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `rel` under the root.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The absolute path of `rel`, as a request field wants it.
    pub fn path(&self, rel: &str) -> String {
        self.join(rel).display().to_string()
    }

    /// Makes directory `rel` (and its parents), given to the test user in a
    /// tree that is the test user's; returns its path.
    pub fn mkdir(&self, rel: &str) -> String {
        let path = self.join(rel);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        if self.for_test_user {
            chown_to_test_user(&path);
        }
        path.display().to_string()
    }

    /// Writes `rel` (mode 0644, so the test user may read it) after making
    /// its parent (0755, root's); returns its path.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> String {
        let path = self.join(rel);
        let parent = path.parent().expect("a file under the root");
        std::fs::create_dir_all(parent).unwrap();
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path.display().to_string()
    }

    /// The names directly under the root (hidden ones included), sorted.
    pub fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        // tests make read-only directories on purpose; undo that first
        let _ = std::process::Command::new("chmod")
            .arg("-R")
            .arg("u+w")
            .arg(&self.root)
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
