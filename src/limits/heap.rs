//! Memory a burst took, given back when it is over.
//!
//! glibc's malloc keeps memory a program freed for its next allocations:
//! each thread that allocated gets an arena, and an arena returns pages to
//! the system only from its top, and only past a threshold. After a burst
//! (50 MB printed through a terminal, a large transfer) the daemon's
//! threads had held megabytes of output in flight; it was all freed, but
//! the daemon stayed at several times its fresh size, idle, for good
//! (docs/benchmarks.md, "Memory after a burst", has the figures and the
//! other allocators measured beside it).
//!
//! Two things bring it back (measured side by side with mimalloc and
//! jemalloc; glibc so tuned gave back the most):
//!
//! - fewer arenas: glibc makes up to eight per core, and every one keeps
//!   its own free memory; [`limit_arenas`] allows one per core (the
//!   daemon's threads are mostly idle waiting on sockets, so they seldom
//!   contend for one), unless `MALLOC_ARENA_MAX` is set in the
//!   environment, which glibc then obeys as usual;
//! - a thread of its own looks every `PINKPAGE_HEAP_TRIM_S` (default 10;
//!   0: never) at how much the heap holds free (`mallinfo2`), and when
//!   that is more than [`TRIM_ABOVE`] asks glibc to give the free pages of
//!   every arena back (`malloc_trim(0)`, which `madvise`s them away). It
//!   touches only memory nobody uses, so it cannot change what the daemon
//!   does; while it walks an arena, that arena's allocations wait (a few
//!   milliseconds at most, at most once an interval).
//!
//! Either alone gives little back; together they bring an idle daemon
//! after a burst to within 1.2 x its fresh size. On other C libraries
//! neither is built.

use std::time::Duration;

/// Free heap worth giving back: below it a trim is not worth its walk.
pub const TRIM_ABOVE: usize = 8 << 20;

/// Allows glibc one arena per core (at least two), unless the environment
/// sets `MALLOC_ARENA_MAX`. Call first thing in `main`, before any thread
/// allocates.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = i32::try_from(cores.max(2)).unwrap_or(i32::MAX);
        // SAFETY: mallopt only sets a tunable of the allocator; M_ARENA_MAX
        // limits arenas made from now on (none but the main one yet).
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    }
}

/// Starts the trimming thread (`interval` zero: none).
pub fn spawn_trimmer(interval: Duration) {
    if interval.is_zero() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let spawned = std::thread::Builder::new()
            .name("heap-trim".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                trim_if_worth_it();
            });
        if let Err(e) = spawned {
            log::warn!(error = e.to_string(); "cannot start the heap trimmer; freed memory stays with the allocator");
        }
    }
}

/// The heap now: bytes in use, and bytes free but held by the allocator
/// (`None` where the C library is not glibc).
pub fn heap() -> Option<(usize, usize)> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let info = unsafe { libc::mallinfo2() };
        // in use: small blocks of the arenas, and the large ones mmap'd
        Some((info.uordblks + info.hblkhd, info.fordblks))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Gives free heap back when there is more than [`TRIM_ABOVE`] of it;
/// the bytes it found free, when it trimmed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim_if_worth_it() -> Option<usize> {
    let (_, free) = heap()?;
    if free < TRIM_ABOVE {
        return None;
    }
    // SAFETY: malloc_trim releases only free pages; no memory in use moves.
    unsafe { libc::malloc_trim(0) };
    log::debug!(free_bytes = free; "heap trimmed");
    Some(free)
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    #[test]
    fn a_freed_burst_is_found_and_given_back() {
        // many small blocks (below the mmap threshold, so they come from
        // the heap); every other one freed: 32 MiB of holes between blocks
        // still in use, which glibc cannot give back on its own (only a
        // free top of the heap goes back by itself)
        let mut blocks: Vec<Option<Vec<u8>>> = (0..4096).map(|i| Some(vec![i as u8; 16 << 10])).collect();
        for b in blocks.iter_mut().step_by(2) {
            *b = None;
        }
        let found = trim_if_worth_it();
        // other tests of this binary allocate and free too, but 32 MiB of
        // holes is over the threshold whatever they do
        assert!(found.is_some_and(|free| free >= TRIM_ABOVE), "{found:?}");
        assert!(heap().is_some_and(|(in_use, _)| in_use >= 4096 / 2 * (16 << 10)));
        drop(blocks);
    }
}
