//! The one way a test waits for what has no event to await: a remote
//! process appearing or ending, an audit row or a file being written, a
//! REST status changing. [`eventually`] polls a probe, bounded, and fails
//! the test with a message naming what never happened.
//!
//! Where an event exists (a WebSocket frame, a log line with a condition
//! variable) tests await it instead; polling is for state that only shows
//! when looked at.
//!
//! The helper is the engine's (`pinkpage_actors::testing`, on for tests
//! through the `testing` feature), so unit tests of both crates and these
//! integration tests wait the same way.

// the benches include this support module and need not use both
#[allow(unused_imports)]
pub use pinkpage_actors::testing::{eventually, eventually_within};
