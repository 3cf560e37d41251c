//! The journal's queues: one per stream, in memory, under one shared bound
//! with reserved shares. Pure bookkeeping, no I/O: the writer
//! (`super::write_behind`) takes from the front, and only after the store
//! confirmed a batch.
//!
//! The bound ([`Bounds`]): all queued records together hold at most
//! `max_bytes` and `max_records`. Within it,
//! - bulk output (batch results, a workflow step's output) may use at most
//!   `max_bytes - audit_reserve`: it can never crowd out the audit rows of
//!   work already running;
//! - rows anyone can cause without signing in (failed logins) may use at
//!   most `anonymous_share` of either bound: a flood of them cannot crowd
//!   out the rows of work.
//!
//! A record that does not fit is dropped: counted per stream, logged
//! (naming what it was, never command text) and later reported in one
//! `records.dropped` audit row.

use std::collections::VecDeque;

use tokio::sync::oneshot;

use super::record::{Class, Record, Settled, Stream, STREAMS};

/// The shared bound and its reserved shares.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Bytes of all queued records.
    pub max_bytes: usize,
    /// Number of all queued records.
    pub max_records: usize,
    /// Bytes bulk output may never take.
    pub audit_reserve: usize,
    /// Divisor of both bounds for anonymous rows (4: a quarter).
    pub anonymous_share: usize,
}

impl Default for Bounds {
    /// 64 MiB and 100,000 records in all; bulk output at most 48 MiB;
    /// failed logins at most a sixteenth.
    fn default() -> Self {
        Bounds {
            max_bytes: 64 << 20,
            max_records: 100_000,
            audit_reserve: 16 << 20,
            anonymous_share: 16,
        }
    }
}

/// A record waiting to be written, with who waits for it.
pub struct Pending {
    pub record: Record,
    pub weight: usize,
    pub class: Class,
    /// Told once the record is written, rejected or lost.
    pub receipt: Option<oneshot::Sender<Settled>>,
}

/// What the queues hold now, by class.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    records: usize,
    bytes: usize,
}

/// Every stream's queue and the accounting of the bound.
#[derive(Default)]
pub struct Queues {
    queues: [VecDeque<Pending>; STREAMS],
    all: Usage,
    bulk: Usage,
    anonymous: Usage,
    /// Records dropped per stream since the daemon started.
    pub dropped: [u64; STREAMS],
    /// Of those, not yet reported in a `records.dropped` row.
    pub unreported: [u64; STREAMS],
    /// Records the store refused on their own merits, since the start.
    pub rejected: u64,
}

impl Queues {
    /// Queues `pending` unless it would pass the bound; gives it back
    /// (to be dropped) when it would.
    pub fn push(&mut self, bounds: &Bounds, pending: Pending) -> Result<(), Box<Pending>> {
        let w = pending.weight;
        let full = self.all.records >= bounds.max_records || self.all.bytes + w > bounds.max_bytes;
        let class_full = match pending.class {
            Class::Bulk => self.bulk.bytes + w > bounds.max_bytes.saturating_sub(bounds.audit_reserve),
            Class::Anonymous => {
                self.anonymous.records >= bounds.max_records / bounds.anonymous_share
                    || self.anonymous.bytes + w > bounds.max_bytes / bounds.anonymous_share
            }
            Class::Work => false,
        };
        if full || class_full {
            let stream = pending.record.stream() as usize;
            self.dropped[stream] += 1;
            self.unreported[stream] += 1;
            return Err(Box::new(pending));
        }
        self.count(&pending, true);
        self.queues[pending.record.stream() as usize].push_back(pending);
        Ok(())
    }

    fn count(&mut self, p: &Pending, add: bool) {
        let usages = [
            Some(&mut self.all),
            (p.class == Class::Bulk).then_some(&mut self.bulk),
            (p.class == Class::Anonymous).then_some(&mut self.anonymous),
        ];
        for usage in usages.into_iter().flatten() {
            if add {
                usage.records += 1;
                usage.bytes += p.weight;
            } else {
                usage.records -= 1;
                usage.bytes -= p.weight;
            }
        }
    }

    /// Copies of the first records of `stream`, at most `max` of them and
    /// `max_bytes` in all (at least one): the next batch to write.
    pub fn front(&self, stream: Stream, max: usize, max_bytes: usize) -> Vec<Record> {
        let mut bytes = 0;
        let mut batch = Vec::new();
        for p in self.queues[stream as usize].iter().take(max) {
            if !batch.is_empty() && bytes + p.weight > max_bytes {
                break;
            }
            bytes += p.weight;
            batch.push(p.record.clone());
        }
        batch
    }

    /// Removes the first `n` records of `stream` (written or rejected by
    /// the store), oldest first.
    pub fn pop(&mut self, stream: Stream, n: usize) -> Vec<Pending> {
        let taken: Vec<Pending> = self.queues[stream as usize].drain(..n).collect();
        for p in &taken {
            self.count(p, false);
        }
        taken
    }

    /// The first stream after `after` (in turn) with records waiting.
    pub fn next_stream(&self, after: usize) -> Option<Stream> {
        (1..=STREAMS)
            .map(|i| (after + i) % STREAMS)
            .find(|&i| !self.queues[i].is_empty())
            .map(Stream::from_index)
    }

    /// Records and bytes waiting, all streams.
    pub fn pending(&self) -> (usize, usize) {
        (self.all.records, self.all.bytes)
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.all.records == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::NewAuditEvent;

    fn pending(record: Record) -> Pending {
        Pending {
            weight: record.weight(),
            class: record.class(),
            record,
            receipt: None,
        }
    }

    fn bounds() -> Bounds {
        Bounds {
            max_bytes: 10_000,
            max_records: 20,
            audit_reserve: 4_000,
            anonymous_share: 4,
        }
    }

    fn bulk(n: usize) -> Record {
        Record::Workflow(crate::records::WorkflowWrite::StepFinished {
            run_id: "r".into(),
            step: n,
            state: crate::records::workflow::StepState::Succeeded,
            duration_ms: 1,
            exit_status: None,
            error: None,
            output_tail: "x".repeat(1_000),
            confirmed_by: None,
        })
    }

    #[test]
    fn bulk_output_never_takes_the_audit_reserve() {
        let mut q = Queues::default();
        let mut kept = 0;
        for n in 0..20 {
            if q.push(&bounds(), pending(bulk(n))).is_ok() {
                kept += 1;
            }
        }
        // each ~1,256 bytes: 6,000 bytes of bulk room holds 4
        assert_eq!(kept, 4);
        assert_eq!(q.dropped[Stream::Workflow as usize], 16);
        // an audit row still fits
        assert!(q
            .push(
                &bounds(),
                pending(Record::Audit(NewAuditEvent::new("c", "ssh.command.end")))
            )
            .is_ok());
    }

    #[test]
    fn anonymous_rows_are_held_to_their_share() {
        let mut q = Queues::default();
        for _ in 0..20 {
            let _ = q.push(
                &bounds(),
                pending(Record::Audit(NewAuditEvent::new("rest", "auth.login.failed"))),
            );
        }
        assert_eq!(q.pending().0, 20 / 4);
        assert!(q
            .push(
                &bounds(),
                pending(Record::Audit(NewAuditEvent::new("c", "ssh.command.end")))
            )
            .is_ok());
    }

    #[test]
    fn the_front_is_taken_in_order_and_popped_once_written() {
        let mut q = Queues::default();
        for n in 0..5 {
            q.push(
                &bounds(),
                pending(Record::Audit(NewAuditEvent::new("c", format!("a{n}")))),
            )
            .ok()
            .unwrap();
        }
        let batch = q.front(Stream::Audit, 3, usize::MAX);
        assert_eq!(batch.len(), 3);
        assert!(matches!(&batch[0], Record::Audit(e) if e.action == "a0"));
        assert_eq!(q.pop(Stream::Audit, 3).len(), 3);
        let rest = q.front(Stream::Audit, 10, usize::MAX);
        assert!(matches!(&rest[0], Record::Audit(e) if e.action == "a3"));
        assert_eq!(q.pending().0, 2);
    }

    #[test]
    fn streams_take_turns() {
        let mut q = Queues::default();
        q.push(&bounds(), pending(Record::Audit(NewAuditEvent::new("c", "a"))))
            .ok()
            .unwrap();
        q.push(&bounds(), pending(bulk(0))).ok().unwrap();
        let first = q.next_stream(STREAMS - 1).unwrap();
        let second = q.next_stream(first as usize).unwrap();
        assert_ne!(first, second, "the other stream's turn comes next");
    }
}
