//! What one client may make the daemon hold, besides the WebSocket counts
//! in [`connections`](crate::connections) (issue 23, hardening):
//!
//! - [`descriptors`]: the file descriptor limit, raised at start, and the
//!   share of it client connections may take (`PINKPAGE_RESERVED_FDS` stay
//!   for SSH sessions, the store and health checks);
//! - [`pending`]: connections from one address that have not got through
//!   admission yet (`PINKPAGE_MAX_PENDING_PER_ADDRESS`, 30005);
//! - [`bodies`]: request bodies, bounded in size (by caller) and in the
//!   time between two of their bytes, before any handler reads them;
//! - [`frame_budget`]: the memory every WebSocket's incomplete messages
//!   may hold together beyond each connection's own allowance (the reader
//!   that spends it is `ws::reader`);
//! - [`heap`]: memory a burst took, given back to the system once it is
//!   free (`PINKPAGE_HEAP_TRIM_S`).
//!
//! Each limit is a setting with a default (`crate::settings::caps`,
//! `crate::settings::work_limits`); docs/security.md lists them.

pub mod bodies;
pub mod descriptors;
pub mod frame_budget;
pub mod heap;
pub mod pending;
