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
//! So a thread of its own looks every `PINKPAGE_HEAP_TRIM_S` (default 10;
//! 0: never) at how much the heap holds free (`mallinfo2`), and when that
//! is more than [`TRIM_ABOVE`] asks glibc to give the free pages of every
//! arena back (`malloc_trim(0)`, which `madvise`s them away). It touches
//! only memory nobody uses, so it cannot change what the daemon does;
//! while it walks an arena, that arena's allocations wait (a few
//! milliseconds at most, at most once an interval). On other C libraries
//! it is not built.

use std::time::Duration;

/// Free heap worth giving back: below it a trim is not worth its walk.
pub const TRIM_ABOVE: usize = 8 << 20;

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

/// Gives free heap back when there is more than [`TRIM_ABOVE`] of it;
/// the bytes it found free, when it trimmed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim_if_worth_it() -> Option<usize> {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let info = unsafe { libc::mallinfo2() };
    // free chunks in the arenas, and the free space at their tops
    let free = info.fordblks;
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
    fn a_freed_burst_is_found_and_a_small_free_heap_is_left_alone() {
        // many small blocks (below the mmap threshold, so they come from
        // the heap), then freed: free space the allocator keeps
        let blocks: Vec<Vec<u8>> = (0..4096).map(|i| vec![i as u8; 16 << 10]).collect();
        assert_eq!(blocks.len(), 4096);
        drop(blocks);
        let found = trim_if_worth_it();
        // other tests of this binary allocate too, but 64 MiB freed is
        // over the threshold whatever they do
        assert!(found.is_some_and(|free| free >= TRIM_ABOVE), "{found:?}");
        // trimmed: what is left free is below the threshold again, unless
        // a neighbour test freed that much meanwhile; a second trim then
        // is harmless
        let _ = trim_if_worth_it();
    }
}
