//! [`MemoryStore`]: the record stores in memory, for unit tests of what
//! writes through them (the journal, the BMX4 recorder, the workflow hub).
//! It keeps the same promises as SQLite where its callers can tell: order
//! per stream, ids that grow, a run finished once, a workflow row only
//! moving forward, a result of an unknown run rejected. It can be told to
//! fail ([`MemoryStore::set_failing`]) like a full disk: every write and
//! read answers 40000 and nothing is kept. Its audit rows are chained as
//! SQLite's are, with a key of its own.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use pinkpage_actors::batch::plan::CommandResult;
use pinkpage_actors::files::temp_files::{RecordedTempFile, TempFile};
use pinkpage_actors::health::HealthTransition;
use pinkpage_actors::{AppError, ErrorCode};

use super::chain::{AuditKey, Chain, Field, Head};
use super::{
    Applied, AuditStore, BatchStore, Expired, HealthStore, RecordingStore, StoreFuture, TempFileStore,
    WorkflowStore, Writes,
};
use crate::records::batch::ResultsPage;
use crate::records::recording::{Recording, RecordingState, RecordingWrite, RecordingsQuery};
use crate::records::workflow::{RunState, StepState, WorkflowRunsQuery};
use crate::records::{
    timestamp, AuditCut, AuditEvent, AuditQuery, BatchEnd, BatchRun, BatchRunDetail, BatchRunStatus,
    BatchWrite, HealthEvent, NewAuditEvent, NewBatchRun, TempFileWrite, Visible, WorkflowRun,
    WorkflowRunDetail, WorkflowStep, WorkflowWrite,
};

/// See the module docs.
pub struct MemoryStore {
    failing: AtomicBool,
    /// The audit chain: a key of its own, nothing sealed.
    chain: Chain,
    state: Mutex<State>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        let key = AuditKey::generate();
        let (genesis, _) = key.genesis().finish();
        MemoryStore {
            failing: AtomicBool::new(false),
            chain: Chain::new(key, Head { id: 0, mac: genesis }),
            state: Mutex::default(),
        }
    }
}

#[derive(Default)]
struct State {
    audit: Vec<AuditEvent>,
    batches: Vec<(NewBatchRun, Option<BatchEnd>, BatchRunStatus, Vec<CommandResult>)>,
    workflows: Vec<WorkflowRunDetail>,
    health: Vec<HealthEvent>,
    temp_files: BTreeMap<i64, TempFile>,
    next_temp_id: i64,
    recordings: BTreeMap<String, Recording>,
    /// Batches the store took, per write method, in order (for tests of
    /// the journal's batching).
    batch_sizes: Vec<usize>,
}

impl MemoryStore {
    /// Makes every call fail with 40000 (`true`) or work again.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self) -> Result<(), AppError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(AppError::with_detail(
                ErrorCode::Database,
                "database or disk is full",
            ))
        } else {
            Ok(())
        }
    }

    /// Runs a write: nothing kept while failing.
    fn write<T>(
        &self,
        records: Vec<T>,
        mut apply: impl FnMut(&mut State, T) -> Applied,
    ) -> BoxFuture<'static, Writes> {
        let result = self.check().map(|()| {
            let mut state = self.state();
            state.batch_sizes.push(records.len());
            records.into_iter().map(|r| apply(&mut state, r)).collect()
        });
        Box::pin(async move { result })
    }

    fn read<T: Send + 'static>(&self, read: impl FnOnce(&State) -> T) -> StoreFuture<T> {
        let result = self.check().map(|()| read(&self.state()));
        Box::pin(async move { result })
    }

    /// Every audit action stored, in order.
    pub fn audit_actions(&self) -> Vec<String> {
        self.state()
            .audit
            .iter()
            .map(|e| e.event.action.clone())
            .collect()
    }

    /// Every audit row stored, in order.
    pub fn audit_rows(&self) -> Vec<AuditEvent> {
        self.state().audit.clone()
    }

    /// The sizes of the write batches the store took, in order.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.state().batch_sizes.clone()
    }

    /// Every health transition stored, in order.
    pub fn health_events(&self) -> Vec<HealthEvent> {
        self.state().health.clone()
    }

    /// Ids of the temporary-file records kept.
    pub fn temp_file_ids(&self) -> Vec<i64> {
        self.state().temp_files.keys().copied().collect()
    }
}

impl MemoryStore {
    /// Appends one audit row after the last, linked (under the state's
    /// lock: one writer at a time, as SQLite's write lock makes it).
    fn link(&self, state: &mut State, e: NewAuditEvent) -> i64 {
        let tail = state.audit.last().map_or(self.chain.genesis(), |last| Head {
            id: last.id,
            mac: last
                .mac
                .as_deref()
                .and_then(super::chain::Mac::from_hex)
                .expect("the memory store's rows all have MACs"),
        });
        let id = tail.id + 1;
        let mac = self
            .chain
            .link(&tail.mac, &Field::row(id, crate::records::instance(), &e));
        state.audit.push(AuditEvent {
            id,
            event: e,
            instance: crate::records::instance().to_owned(),
            mac: Some(mac.to_hex()),
        });
        id
    }
}

impl AuditStore for MemoryStore {
    fn append(&self, rows: Vec<NewAuditEvent>) -> BoxFuture<'static, Writes> {
        self.write(rows, |state, e| Applied::Written(Some(self.link(state, e))))
    }

    fn list(&self, q: AuditQuery) -> StoreFuture<Vec<AuditEvent>> {
        self.read(move |s| {
            let text = q.text.as_ref().map(|t| t.to_ascii_lowercase());
            let contains =
                |field: Option<&str>, t: &str| field.is_some_and(|f| f.to_ascii_lowercase().contains(t));
            s.audit
                .iter()
                .rev()
                .filter(|e| q.before_id.is_none_or(|b| e.id < b))
                .filter(|e| q.action.as_ref().is_none_or(|a| &e.event.action == a))
                .filter(|e| q.user.is_none() || e.event.user == q.user)
                .filter(|e| q.server.is_none() || e.event.server == q.server)
                .filter(|e| q.domain.as_ref().is_none_or(|d| &e.event.domain == d))
                .filter(|e| q.since.is_none_or(|t| e.event.at >= t))
                .filter(|e| q.until.is_none_or(|t| e.event.at < t))
                .filter(|e| {
                    text.as_deref().is_none_or(|t| {
                        contains(e.event.command.as_deref(), t)
                            || contains(e.event.target.as_deref(), t)
                            || contains(e.event.detail.as_ref().map(|d| d.to_string()).as_deref(), t)
                    })
                })
                .take(q.limit as usize)
                .cloned()
                .collect()
        })
    }

    fn page_after(&self, after_id: i64, limit: u32) -> StoreFuture<Vec<AuditEvent>> {
        self.read(move |s| {
            s.audit
                .iter()
                .filter(|e| e.id > after_id)
                .take(limit as usize)
                .cloned()
                .collect()
        })
    }

    fn cut(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<Option<AuditCut>> {
        let result = self.check().map(|()| {
            let mut state = self.state();
            // the longest prefix of rows all older than `before`, at most
            // `limit` of them (nothing is sealed here)
            let keep_from = state
                .audit
                .iter()
                .position(|e| e.event.at >= before)
                .unwrap_or(state.audit.len())
                .min(limit.max(1) as usize);
            if keep_from == 0 {
                return None;
            }
            let last = &state.audit[keep_from - 1];
            let (through, mac) = (last.id, last.mac.clone());
            let rows = keep_from as u64;
            let mut event = NewAuditEvent::new("system", "audit.cut");
            event.detail = Some(serde_json::json!({
                "through_id": through, "mac": mac, "rows": rows, "before": timestamp(before),
            }));
            // linked after the newest row, then the prefix goes
            let cut_id = self.link(&mut state, event);
            state.audit.drain(..keep_from);
            Some(AuditCut {
                through_id: through,
                rows,
                cut_id,
            })
        });
        Box::pin(async move { result })
    }

    fn interrupt_left_work_and_start(&self, _instance: &str) -> StoreFuture<Vec<String>> {
        let appended = self.append(vec![NewAuditEvent::new("system", "daemon.start")]);
        Box::pin(async move { appended.await.map(|_| Vec::new()) })
    }
}

impl BatchStore for MemoryStore {
    fn apply(&self, writes: Vec<BatchWrite>) -> BoxFuture<'static, Writes> {
        self.write(writes, |state, w| match w {
            BatchWrite::Create(r) => {
                if state.batches.iter().any(|(b, ..)| b.run_id == r.run_id) {
                    return Applied::Rejected(format!("run {} exists", r.run_id));
                }
                state.batches.push((r, None, BatchRunStatus::Running, Vec::new()));
                Applied::Written(None)
            }
            BatchWrite::Result(r) => match state.batches.iter_mut().find(|(b, ..)| b.run_id == r.run_id) {
                Some((.., results)) => {
                    results.retain(|x| (x.server.as_str(), x.index) != (r.server.as_str(), r.index));
                    results.push((*r).clone());
                    Applied::Written(None)
                }
                None => Applied::Rejected(format!("no run {}", r.run_id)),
            },
            BatchWrite::End(e) => {
                if let Some((_, end, status, _)) = state
                    .batches
                    .iter_mut()
                    .find(|(b, _, status, _)| b.run_id == e.run_id && *status == BatchRunStatus::Running)
                {
                    *status = e.status;
                    *end = Some(e);
                }
                Applied::Written(None)
            }
        })
    }

    fn list(&self, limit: u32, offset: u32, visible: Visible) -> StoreFuture<Vec<BatchRun>> {
        self.read(move |s| {
            s.batches
                .iter()
                .rev()
                .filter(|(r, ..)| visible.allows(&r.servers))
                .skip(offset as usize)
                .take(limit as usize)
                .map(|(r, end, status, _)| batch_run(r, end.as_ref(), *status))
                .collect()
        })
    }

    fn get(
        &self,
        run_id: String,
        page: ResultsPage,
        visible: Visible,
    ) -> StoreFuture<Option<BatchRunDetail>> {
        self.read(move |s| {
            let (r, end, status, results) = s
                .batches
                .iter()
                .find(|(b, ..)| b.run_id == run_id && visible.allows(&b.servers))?;
            let mut sorted = results.clone();
            sorted.sort_by(|a, b| (a.server.as_str(), a.index).cmp(&(b.server.as_str(), b.index)));
            let total = sorted.len() as u64;
            let results: Vec<CommandResult> = sorted
                .into_iter()
                .skip(page.offset as usize)
                .take(page.limit as usize)
                .collect();
            let end_at = page.offset + results.len() as u64;
            Some(BatchRunDetail {
                run: batch_run(r, end.as_ref(), *status),
                commands: r.commands.clone(),
                results,
                results_total: total,
                next_offset: (end_at < total).then_some(end_at),
            })
        })
    }

    fn interrupt_left(&self, _instance: &str, _at: DateTime<Utc>) -> StoreFuture<usize> {
        let result = self.check().map(|()| {
            let mut state = self.state();
            let mut n = 0;
            for (_, _, status, _) in state.batches.iter_mut() {
                if *status == BatchRunStatus::Running {
                    *status = BatchRunStatus::Interrupted;
                    n += 1;
                }
            }
            n
        });
        Box::pin(async move { result })
    }

    fn expire(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<Expired> {
        let result = self.check().map(|()| {
            let mut state = self.state();
            let mut finished: Vec<(DateTime<Utc>, usize)> = state
                .batches
                .iter()
                .enumerate()
                .filter(|(_, (_, _, status, _))| *status != BatchRunStatus::Running)
                .filter_map(|(i, (_, end, ..))| end.as_ref().map(|e| (e.at, i)))
                .filter(|(at, _)| *at < before)
                .collect();
            finished.sort();
            let runs = finished.into_iter().map(|(_, i)| i);
            let (expired, gone) = expire_in_order(&mut state.batches, runs, limit, |r| &mut r.3);
            for i in gone.into_iter().rev() {
                state.batches.remove(i);
            }
            expired
        });
        Box::pin(async move { result })
    }
}

/// Retention's budget over runs in the order they go (SQL's
/// `retention::expire_runs`): each run's children, then the run once it
/// has none left, at most `limit` rows in all. Returns what went and the
/// indexes of the runs to remove, ascending.
fn expire_in_order<R, T>(
    all: &mut [R],
    runs: impl Iterator<Item = usize>,
    limit: u32,
    children: impl Fn(&mut R) -> &mut Vec<T>,
) -> (Expired, Vec<usize>) {
    let mut budget = u64::from(limit);
    let mut expired = Expired::default();
    let mut gone = Vec::new();
    for i in runs {
        if budget == 0 {
            break;
        }
        let kids = children(&mut all[i]);
        let n = (kids.len() as u64).min(budget);
        kids.drain(..n as usize);
        expired.children += n;
        budget -= n;
        if budget == 0 {
            break;
        }
        gone.push(i);
        expired.runs += 1;
        budget -= 1;
    }
    gone.sort_unstable();
    (expired, gone)
}

fn batch_run(r: &NewBatchRun, end: Option<&BatchEnd>, status: BatchRunStatus) -> BatchRun {
    BatchRun {
        run_id: r.run_id.clone(),
        actor: r.actor.clone(),
        user: r.user.clone(),
        remote_addr: r.remote_addr.clone(),
        started_at: timestamp(r.at),
        finished_at: end.map(|e| timestamp(e.at)),
        status,
        servers: r.servers.clone(),
        command_count: r.commands.len(),
        stop_on_error: r.stop_on_error,
        retries: r.retries,
        retry_delay_ms: r.retry_delay_ms,
        timeout_s: r.timeout_s,
        succeeded: end.map_or(0, |e| e.succeeded),
        failed: end.map_or(0, |e| e.failed),
        skipped: end.map_or(0, |e| e.skipped),
        duration_ms: end.map(|e| e.duration_ms),
    }
}

impl WorkflowStore for MemoryStore {
    fn apply(&self, writes: Vec<WorkflowWrite>) -> BoxFuture<'static, Writes> {
        self.write(writes, |state, w| {
            if let WorkflowWrite::Create(r) = w {
                state.workflows.push(WorkflowRunDetail {
                    run: WorkflowRun {
                        run_id: r.run_id.clone(),
                        workflow: r.workflow.clone(),
                        actor: r.actor.clone(),
                        user: Some(r.user.clone()),
                        remote_addr: r.remote_addr.clone(),
                        params: r.params.clone(),
                        status: RunState::Running,
                        current_step: None,
                        started_at: timestamp(r.at),
                        finished_at: None,
                        error: None,
                    },
                    steps: r
                        .steps
                        .iter()
                        .map(|p| WorkflowStep {
                            index: p.index,
                            name: p.name.clone(),
                            kind: p.action.kind().to_owned(),
                            plan: serde_json::to_value(p).unwrap_or_default(),
                            status: StepState::Pending,
                            started_at: None,
                            duration_ms: None,
                            exit_status: None,
                            error: None,
                            output_tail: None,
                            confirmed_by: None,
                        })
                        .collect(),
                });
                return Applied::Written(None);
            }
            let Some(d) = state.workflows.iter_mut().find(|d| d.run.run_id == w.run_id()) else {
                return Applied::Rejected(format!("no run {}", w.run_id()));
            };
            let live = matches!(d.run.status, RunState::Running | RunState::Paused);
            match w {
                WorkflowWrite::Create(_) => unreachable!("handled above"),
                WorkflowWrite::StepStarted { step, at, .. } => {
                    if let Some(s) = d.steps.get_mut(step).filter(|s| s.status == StepState::Pending) {
                        s.status = StepState::Running;
                        s.started_at = Some(timestamp(at));
                    }
                    if live {
                        d.run.status = RunState::Running;
                        d.run.current_step = Some(step);
                    }
                }
                WorkflowWrite::Paused { step, .. } => {
                    if let Some(s) = d.steps.get_mut(step).filter(|s| s.status == StepState::Running) {
                        s.status = StepState::Paused;
                    }
                    if d.run.status == RunState::Running {
                        d.run.status = RunState::Paused;
                    }
                }
                WorkflowWrite::StepFinished {
                    step,
                    state: to,
                    duration_ms,
                    exit_status,
                    error,
                    output_tail,
                    confirmed_by,
                    ..
                } => {
                    let open = [StepState::Pending, StepState::Running, StepState::Paused];
                    if let Some(s) = d.steps.get_mut(step).filter(|s| open.contains(&s.status)) {
                        s.status = to;
                        s.duration_ms = Some(duration_ms);
                        s.exit_status = exit_status;
                        s.error = error;
                        s.output_tail = Some(output_tail);
                        s.confirmed_by = confirmed_by;
                    }
                    if d.run.status == RunState::Paused {
                        d.run.status = RunState::Running;
                    }
                }
                WorkflowWrite::Finished {
                    state: to, error, at, ..
                } => {
                    if live {
                        d.run.status = to;
                        d.run.finished_at = Some(timestamp(at));
                        d.run.error = error;
                    }
                    for s in d.steps.iter_mut().filter(|s| s.status == StepState::Pending) {
                        s.status = StepState::Skipped;
                    }
                }
            }
            Applied::Written(None)
        })
    }

    fn list(&self, q: WorkflowRunsQuery) -> StoreFuture<Vec<WorkflowRun>> {
        self.read(move |s| {
            s.workflows
                .iter()
                .rev()
                .filter(|d| q.workflow.as_ref().is_none_or(|w| &d.run.workflow == w))
                .filter(|d| q.visible.allows(&servers_of(d)))
                .filter(|d| !q.in_flight || d.run.status.in_flight())
                .skip(q.offset as usize)
                .take(q.limit as usize)
                .map(|d| d.run.clone())
                .collect()
        })
    }

    fn get(&self, run_id: String, visible: Visible) -> StoreFuture<Option<WorkflowRunDetail>> {
        self.read(move |s| {
            s.workflows
                .iter()
                .find(|d| d.run.run_id == run_id && visible.allows(&servers_of(d)))
                .cloned()
        })
    }

    fn interrupt_left(&self, _instance: &str, at: DateTime<Utc>) -> StoreFuture<usize> {
        let result = self.check().map(|()| {
            let mut state = self.state();
            let mut n = 0;
            for d in state.workflows.iter_mut() {
                if matches!(d.run.status, RunState::Running | RunState::Paused) {
                    d.run.status = RunState::Interrupted;
                    d.run.finished_at = Some(timestamp(at));
                    for s in &mut d.steps {
                        s.status = match s.status {
                            StepState::Running | StepState::Paused => StepState::Interrupted,
                            StepState::Pending => StepState::Skipped,
                            other => other,
                        };
                    }
                    n += 1;
                }
            }
            n
        });
        Box::pin(async move { result })
    }

    fn expire(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<Expired> {
        let result = self.check().map(|()| {
            let mut state = self.state();
            let before = timestamp(before);
            let mut finished: Vec<(String, usize)> = state
                .workflows
                .iter()
                .enumerate()
                .filter(|(_, d)| !matches!(d.run.status, RunState::Running | RunState::Paused))
                .filter_map(|(i, d)| d.run.finished_at.clone().map(|at| (at, i)))
                .filter(|(at, _)| *at < before)
                .collect();
            finished.sort();
            let runs = finished.into_iter().map(|(_, i)| i);
            let (expired, gone) = expire_in_order(&mut state.workflows, runs, limit, |d| &mut d.steps);
            for i in gone.into_iter().rev() {
                state.workflows.remove(i);
            }
            expired
        });
        Box::pin(async move { result })
    }
}

impl HealthStore for MemoryStore {
    fn record(&self, transitions: Vec<HealthTransition>) -> BoxFuture<'static, Writes> {
        self.write(transitions, |state, t| {
            // ids only grow, also after retention deleted some
            let id = state.health.last().map_or(1, |e| e.id + 1);
            state.health.push(HealthEvent {
                id,
                at: t.status.last_checked.clone().unwrap_or_default(),
                server_name: t.status.server_name.clone(),
                host: t.status.host.clone(),
                is_healthy: t.status.is_healthy.unwrap_or(false),
                previous: t.previous,
                error: t.status.last_error.clone(),
                latency_ms: t.status.latency_ms,
            });
            Applied::Written(Some(id))
        })
    }

    fn list(&self, server: String, limit: u32) -> StoreFuture<Vec<HealthEvent>> {
        self.read(move |s| {
            s.health
                .iter()
                .rev()
                .filter(|e| e.server_name == server)
                .take(limit as usize)
                .cloned()
                .collect()
        })
    }

    fn expire(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<u64> {
        let result = self.check().map(|()| {
            let mut state = self.state();
            let before = timestamp(before);
            let mut newest: BTreeMap<&str, i64> = BTreeMap::new();
            for e in &state.health {
                let id = newest.entry(&e.server_name).or_insert(e.id);
                *id = (*id).max(e.id);
            }
            let mut old: Vec<(&str, i64)> = state
                .health
                .iter()
                .filter(|e| e.at < before && newest[e.server_name.as_str()] != e.id)
                .map(|e| (e.at.as_str(), e.id))
                .collect();
            old.sort();
            let gone: std::collections::BTreeSet<i64> =
                old.into_iter().take(limit as usize).map(|(_, id)| id).collect();
            state.health.retain(|e| !gone.contains(&e.id));
            gone.len() as u64
        });
        Box::pin(async move { result })
    }
}

impl TempFileStore for MemoryStore {
    fn apply(&self, writes: Vec<TempFileWrite>) -> BoxFuture<'static, Writes> {
        self.write(writes, |state, w| match w {
            TempFileWrite::Insert(f) => {
                state.next_temp_id += 1;
                let id = state.next_temp_id;
                state.temp_files.insert(id, f);
                Applied::Written(Some(id))
            }
            TempFileWrite::Delete(id) => {
                state.temp_files.remove(&id);
                Applied::Written(None)
            }
        })
    }

    fn left(&self, _instance: &str) -> StoreFuture<Vec<RecordedTempFile>> {
        self.read(|s| {
            s.temp_files
                .iter()
                .map(|(id, f)| RecordedTempFile {
                    id: Some(*id),
                    file: f.clone(),
                    attempts: 0,
                })
                .collect()
        })
    }
}

/// The servers a stored run's steps name, from their plans (as SQLite's
/// migration 8 reads them).
fn servers_of(d: &WorkflowRunDetail) -> Vec<String> {
    let mut all = Vec::new();
    for step in &d.steps {
        for key in ["server", "source_server", "destination_server"] {
            if let Some(name) = step.plan.get(key).and_then(|v| v.as_str()) {
                all.push(name.to_owned());
            }
        }
        if let Some(list) = step.plan.get("servers").and_then(|v| v.as_array()) {
            all.extend(list.iter().filter_map(|v| v.as_str()).map(str::to_owned));
        }
    }
    all
}

impl RecordingStore for MemoryStore {
    fn apply(&self, writes: Vec<RecordingWrite>) -> BoxFuture<'static, Writes> {
        self.write(writes, |state, w| match w {
            RecordingWrite::Start(r) => {
                if state.recordings.contains_key(&r.id) {
                    return Applied::Rejected(format!("recording {} exists", r.id));
                }
                state.recordings.insert(r.id.clone(), *r);
                Applied::Written(None)
            }
            RecordingWrite::End {
                id,
                at,
                state: end,
                reason,
                exit_status,
                error,
                bytes,
            } => {
                if let Some(r) = state.recordings.get_mut(&id) {
                    if r.state == RecordingState::Recording {
                        r.ended_at = Some(at);
                        r.state = end;
                        r.reason = Some(reason);
                        r.exit_status = exit_status;
                        r.error = error;
                        r.bytes = bytes;
                    }
                }
                Applied::Written(None)
            }
            RecordingWrite::Remove(id) => {
                state.recordings.remove(&id);
                Applied::Written(None)
            }
        })
    }

    fn list(&self, q: RecordingsQuery) -> StoreFuture<Vec<Recording>> {
        self.read(move |s| {
            let mut all: Vec<Recording> = s
                .recordings
                .values()
                .filter(|r| {
                    q.user.as_ref().is_none_or(|u| &r.user == u)
                        && q.owner.as_ref().is_none_or(|u| &r.user == u)
                        && q.server.as_ref().is_none_or(|v| &r.server == v)
                        && q.since.is_none_or(|t| r.started_at >= t)
                        && q.until.is_none_or(|t| r.started_at < t)
                        && q.text.as_ref().is_none_or(|t| r.command.contains(t.as_str()))
                        && q.run_id.as_ref().is_none_or(|id| r.run_id.as_ref() == Some(id))
                        && q.visible.allows(&[&r.server])
                })
                .cloned()
                .collect();
            all.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
            all.into_iter()
                .skip(q.offset as usize)
                .take(q.limit as usize)
                .collect()
        })
    }

    fn get(&self, id: String) -> StoreFuture<Option<Recording>> {
        self.read(move |s| s.recordings.get(&id).cloned())
    }

    fn interrupt_left(&self, _instance: &str, at: DateTime<Utc>) -> StoreFuture<usize> {
        let marked = self.check().map(|()| {
            let mut state = self.state();
            let mut n = 0;
            for r in state.recordings.values_mut() {
                if r.state == RecordingState::Recording {
                    r.state = RecordingState::Interrupted;
                    r.reason = Some("interrupted".to_owned());
                    r.ended_at = Some(at);
                    n += 1;
                }
            }
            n
        });
        Box::pin(async move { marked })
    }

    fn expired(&self, before: DateTime<Utc>, max_bytes: u64, limit: u32) -> StoreFuture<Vec<Recording>> {
        self.read(move |s| {
            let mut done: Vec<Recording> = s
                .recordings
                .values()
                .filter(|r| r.state != RecordingState::Recording)
                .cloned()
                .collect();
            done.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
            let total: i64 = s.recordings.values().map(|r| r.bytes).sum();
            let mut over = total - max_bytes.min(i64::MAX as u64) as i64;
            let mut out = Vec::new();
            for r in done {
                if out.len() >= limit as usize {
                    break;
                }
                if r.started_at < before || over > 0 {
                    over -= r.bytes;
                    out.push(r);
                }
            }
            out
        })
    }
}

impl super::BackupStore for MemoryStore {
    fn extension(&self) -> &'static str {
        "none"
    }

    fn backup(&self, into: std::path::PathBuf) -> super::StoreFuture<u64> {
        let why = format!("the memory store keeps nothing to copy into {}", into.display());
        Box::pin(async move { Err(super::unavailable(why)) })
    }
}
