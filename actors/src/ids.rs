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
