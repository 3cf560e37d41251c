//! SSH over russh (to be built).

/// What to do with a host key that is not in the known_hosts file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyMode {
    /// Refuse it.
    Strict,
    /// Record it and accept it (trust on first use).
    AcceptNew,
}
