//! Identifiers shared across actors.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A WebSocket connection, made by the server (UUID v4) when the client
/// connects and sent in the welcome message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionId(pub Uuid);

impl ConnectionId {
    /// A fresh random id.
    pub fn new() -> Self {
        ConnectionId(Uuid::new_v4())
    }
}

impl Default for ConnectionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A workflow run, made by the daemon (UUID v4) when the run is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub Uuid);

impl RunId {
    /// A fresh random id.
    pub fn new() -> Self {
        RunId(Uuid::new_v4())
    }

    /// The run named `text`, when it is an id at all.
    pub fn parse(text: &str) -> Option<RunId> {
        Uuid::parse_str(text).ok().map(RunId)
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who holds the session lock: a connection (STUB's `start_session`), or a
/// workflow run that took the lock itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum OwnerId {
    /// A WebSocket connection.
    Connection(ConnectionId),
    /// A workflow run.
    Run(RunId),
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwnerId::Connection(id) => id.fmt(f),
            OwnerId::Run(id) => id.fmt(f),
        }
    }
}

/// A random id made by the daemon (UUID v4), with `new`, `parse` and
/// `Display`; `$what` says what it names.
macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random id.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                $name(Uuid::new_v4())
            }

            /// The id written as `text`, when it is one.
            pub fn parse(text: &str) -> Option<Self> {
                Uuid::parse_str(text).ok().map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

random_id!(
    /// A running PTY of any kind (a STUB command, a script, a workflow
    /// command step, an operator terminal): what `GET /api/v1/ptys` lists
    /// and `terminal_watch` names.
    PtyId
);

random_id!(
    /// An operator terminal (`terminal_open`), which outlives the
    /// connection that opened it.
    TerminalId
);
