//! File descriptors: the daemon's limit, and the share of it client
//! connections may take.
//!
//! Every accepted TCP connection holds one descriptor, and a WebSocket one
//! more (the duplicate `crate::connections` keeps to shut a stalled client
//! down). The daemon's own work needs descriptors as well, and must still
//! get them when clients are many: an SSH session (terminals, batch runs,
//! transfers, diffs, health checks), the store's files, a log file. Before
//! issue 23, 10,000 WebSockets of one viewer took them all: SSH, the store
//! and health checks failed with "Too many open files". So, at start:
//!
//! 1. the soft `RLIMIT_NOFILE` is raised to the hard one ([`raise_nofile`],
//!    logged with both numbers);
//! 2. [`DescriptorPlan::new`] keeps `PINKPAGE_RESERVED_FDS` of the limit
//!    from clients and splits the rest, the client budget: WebSockets get
//!    at most a third of it (each takes two descriptors, so together at
//!    most two thirds) and never more than `PINKPAGE_WS_MAX_CONNECTIONS`;
//!    the HTTP server accepts at most the budget less the WebSocket
//!    places. Every WebSocket is also an accepted connection, so accepted
//!    connections plus duplicates never pass the budget, and when every
//!    WebSocket place is taken at least as many plain HTTP connections
//!    remain;
//! 3. past those, an upgrade is refused with 30001 and a new connection
//!    waits in the listen queue (actix-web stops accepting: backpressure,
//!    not an error).
//!
//! With a limit of 20,000 and the default reserve of 256 that is 6,581
//! WebSockets; 10,000 need a limit of at least 30,256 (the start log says
//! which bound applies).
//!
//! Health checks: a sweep checks every server at once (unless
//! `PINKPAGE_HEALTH_MAX_IN_FLIGHT` says fewer), so that servers
//! which accept and never answer (each holding its socket for the whole
//! timeout) cannot fill the places and push the rest into a second
//! timeout. The reserve covers [`HEALTH_IN_RESERVE`] checks (a smaller
//! fleet is planned that many, so a reload may add servers); a larger
//! fleet takes one more descriptor per server from the client budget, up
//! to [`HEALTH_MAX`] and never more than a quarter of that budget
//! ([`DescriptorPlan::health_checks`], logged at start). A reload that
//! adds servers keeps the number planned at start: past it, a sweep
//! checks in waves again.

/// The soft descriptor limit before and after [`raise_nofile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoFile {
    /// The soft limit the daemon was started with.
    pub before: u64,
    /// The soft limit it runs with.
    pub now: u64,
    /// The hard limit (the most an unprivileged process may raise to).
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one (or, when the hard one
/// is unlimited, to the kernel's `fs.nr_open`). A refusal leaves the soft
/// limit as it was; the caller logs what it got.
pub fn raise_nofile() -> std::io::Result<NoFile> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and pass by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before: u64 = limit.rlim_cur;
    let hard: u64 = limit.rlim_max;
    let target = if limit.rlim_max == libc::RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(1 << 20)
    } else {
        hard
    };
    if target <= before {
        return Ok(NoFile {
            before,
            now: before,
            hard,
        });
    }
    let raised = libc::rlimit {
        rlim_cur: target,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct we pass by pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(NoFile {
        before,
        now: target,
        hard,
    })
}

/// Health checks the reserve (`PINKPAGE_RESERVED_FDS`) covers by itself.
pub const HEALTH_IN_RESERVE: usize = 64;

/// Most health checks in flight at once, whatever the fleet.
pub const HEALTH_MAX: usize = 4096;

/// What client connections may take of the descriptor limit. See the
/// module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorPlan {
    /// The soft limit the daemon runs with.
    pub limit: u64,
    /// Descriptors never given to clients (`PINKPAGE_RESERVED_FDS`).
    pub reserved: u64,
    /// WebSockets at most: `PINKPAGE_WS_MAX_CONNECTIONS`, or fewer when
    /// the descriptors bind.
    pub websockets: usize,
    /// Whether the descriptors, not the setting, gave `websockets`.
    pub websockets_bound_by_descriptors: bool,
    /// Accepted TCP connections at most, across all workers.
    pub connections: usize,
    /// Health checks in flight at most: every configured server, within
    /// [`HEALTH_MAX`] and a quarter of the client budget.
    pub health_checks: usize,
    /// Descriptors the health checks take beyond the reserve (from the
    /// clients' budget).
    pub health_extra: u64,
}

impl DescriptorPlan {
    /// The plan for a soft limit of `limit` descriptors, `reserved` of them
    /// kept from clients, at most `ws_setting` WebSockets and `health`
    /// checks wanted at once (the servers, or
    /// `PINKPAGE_HEALTH_MAX_IN_FLIGHT`). An error (the problem, for
    /// `PINKPAGE_RESERVED_FDS`) when the reserve leaves clients nothing.
    pub fn new(
        limit: u64,
        reserved: usize,
        ws_setting: usize,
        health: usize,
    ) -> Result<DescriptorPlan, String> {
        let budget = limit.saturating_sub(reserved as u64);
        let health = health.clamp(1, HEALTH_MAX);
        let health_extra = health
            .saturating_sub(HEALTH_IN_RESERVE)
            .min(usize::try_from(budget / 4).unwrap_or(usize::MAX));
        let budget = budget - health_extra as u64;
        let by_descriptors = usize::try_from(budget / 3).unwrap_or(usize::MAX);
        if by_descriptors == 0 {
            return Err(format!(
                "the descriptor limit (ulimit -n) is {limit}: keeping {reserved} from clients leaves them \
                 no room; raise the limit or lower the reserve"
            ));
        }
        let websockets = ws_setting.min(by_descriptors);
        Ok(DescriptorPlan {
            limit,
            reserved: reserved as u64,
            websockets,
            websockets_bound_by_descriptors: websockets < ws_setting,
            connections: usize::try_from(budget).unwrap_or(usize::MAX) - websockets,
            health_checks: health.min(HEALTH_IN_RESERVE + health_extra),
            health_extra: health_extra as u64,
        })
    }

    /// Accepted connections per HTTP worker (actix-web's
    /// `max_connections` counts per worker), at least one.
    pub fn connections_per_worker(&self, workers: usize) -> usize {
        (self.connections / workers.max(1)).max(1)
    }

    /// Why the WebSocket cap is what it is, for the 30001 detail and the
    /// start log.
    pub fn websockets_reason(&self) -> String {
        if self.websockets_bound_by_descriptors {
            let health = if self.health_extra > 0 {
                format!(" less {} for health checks", self.health_extra)
            } else {
                String::new()
            };
            format!(
                "a third of the {} descriptors clients may take: ulimit -n {} less PINKPAGE_RESERVED_FDS {}{health}",
                self.limit - self.reserved - self.health_extra,
                self.limit,
                self.reserved
            )
        } else {
            "PINKPAGE_WS_MAX_CONNECTIONS".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_and_their_duplicates_never_pass_the_client_budget() {
        for (limit, reserved, setting) in [
            (400, 256, 10_000),
            (20_000, 256, 10_000),
            (1 << 20, 256, 10_000),
            (1024, 0, 3),
            (259, 256, 10),
        ] {
            let plan = DescriptorPlan::new(limit, reserved, setting, 0).unwrap();
            let budget = (limit - reserved as u64) as usize;
            // every WebSocket is an accepted connection holding two
            assert!(plan.connections + plan.websockets <= budget, "{plan:?}");
            assert!(plan.websockets <= setting);
            // with every WebSocket place taken, as many plain
            // connections are left
            assert!(
                plan.connections - plan.websockets >= plan.websockets.min(budget / 3),
                "{plan:?}"
            );
        }
    }

    #[test]
    fn the_setting_binds_when_descriptors_are_plenty_and_the_descriptors_when_not() {
        let plenty = DescriptorPlan::new(1 << 20, 256, 10_000, 0).unwrap();
        assert_eq!(plenty.websockets, 10_000);
        assert!(!plenty.websockets_bound_by_descriptors);
        assert_eq!(plenty.websockets_reason(), "PINKPAGE_WS_MAX_CONNECTIONS");

        let tight = DescriptorPlan::new(400, 256, 10_000, 0).unwrap();
        assert_eq!((tight.websockets, tight.connections), (48, 96));
        assert!(tight.websockets_bound_by_descriptors);
        assert!(tight.websockets_reason().contains("ulimit -n 400"));

        assert_eq!(
            DescriptorPlan::new(20_000, 256, 10_000, 0).unwrap().websockets,
            6_581
        );
        assert_eq!(
            DescriptorPlan::new(30_256, 256, 10_000, 0).unwrap().websockets,
            10_000
        );
    }

    #[test]
    fn a_large_fleet_is_checked_at_once_within_a_quarter_of_the_client_budget() {
        // a small fleet: the reserve covers its checks, clients lose nothing
        let small = DescriptorPlan::new(20_000, 256, 10_000, HEALTH_IN_RESERVE).unwrap();
        assert_eq!(
            (small.health_checks, small.websockets),
            (HEALTH_IN_RESERVE, 6_581)
        );
        // fewer asked for (PINKPAGE_HEALTH_MAX_IN_FLIGHT): fewer
        assert_eq!(
            DescriptorPlan::new(20_000, 256, 10_000, 8).unwrap().health_checks,
            8
        );
        // a thousand servers, all at once, paid for by the clients
        let fleet = DescriptorPlan::new(1 << 20, 256, 10_000, 1_000).unwrap();
        assert_eq!(fleet.health_checks, 1_000);
        let budget = (1 << 20) - 256;
        assert_eq!(
            fleet.connections + fleet.websockets + (1_000 - HEALTH_IN_RESERVE),
            budget
        );
        // never past the cap
        assert_eq!(
            DescriptorPlan::new(1 << 20, 256, 10, 50_000)
                .unwrap()
                .health_checks,
            HEALTH_MAX
        );
        // nor a quarter of what clients would have had
        let tight = DescriptorPlan::new(1_280, 256, 10_000, 1_000).unwrap();
        assert_eq!(tight.health_checks, HEALTH_IN_RESERVE + 256);
        assert!(tight.websockets > 0 && tight.connections > tight.websockets);
        // and the refusal's reason counts them
        let bound = DescriptorPlan::new(20_000, 256, 10_000, 1_000).unwrap();
        assert_eq!(bound.websockets, (20_000 - 256 - (1_000 - HEALTH_IN_RESERVE)) / 3);
        assert!(
            bound.websockets_reason().contains("less 936 for health checks"),
            "{}",
            bound.websockets_reason()
        );
    }

    #[test]
    fn a_reserve_that_leaves_clients_nothing_is_refused() {
        assert!(DescriptorPlan::new(256, 256, 10, 0).is_err());
        assert!(DescriptorPlan::new(100, 256, 10, 0).is_err());
        assert_eq!(
            DescriptorPlan::new(400, 256, 10, 0)
                .unwrap()
                .connections_per_worker(2),
            67
        );
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let got = raise_nofile().unwrap();
        assert!(got.now >= got.before);
        assert!(got.now <= got.hard || got.hard == libc::RLIM_INFINITY);
    }
}
