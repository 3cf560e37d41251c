//! Server health (SPEC section 8).
//!
//! - [`status`]: what clients see per server and the pure state machine
//!   (counters in, `is_healthy` out); its types are re-exported here.
//! - [`check`]: one check (TCP connect + SSH banner) and the bounded
//!   concurrent sweep over every server.
//! - [`monitor`]: `HealthMonitorActor`, which sweeps on a timer and
//!   publishes every flip.

pub mod check;
pub mod monitor;
pub mod status;

pub use status::*;
