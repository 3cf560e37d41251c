//! Commands held for a second person's approval, and the checks that hold
//! or refuse them.
//!
//! [`ReviewDesk`] is the queue: a command a `review` rule holds waits here
//! until an approver approves or rejects it (`command_review` on
//! `/ws/v1/stub`, `POST /api/v1/command-reviews/{held_id}`), or its
//! `PINKPAGE_REVIEW_TIMEOUT_S` passes. The work that asked keeps waiting
//! on its [`Gate`]; the desk answers it through a oneshot. [`check`] makes
//! the engine's `CommandCheck` for one caller (the verdict, the audit row
//! of a refusal, the hold and its notices).
//!
//! Ownership: the desk's map is behind one `Mutex`, held for no await; an
//! entry is removed by exactly one of: the decision, the timeout, or the
//! waiting work going away (the gate's guard, on drop). Whoever removes it
//! writes its audit row and tells the approvers it ended, so a command is
//! never both approved and timed out, and a cancelled command leaves
//! nothing in the queue.

pub mod check;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Addr;
use chrono::{DateTime, Utc};
use pinkpage_actors::access::Principal;
use pinkpage_actors::broadcast::{BroadcastActor, Event, Publish, ReviewNotice};
use pinkpage_actors::policy::rules::Verdict;
use pinkpage_actors::policy::Gate;
use pinkpage_actors::{AppError, ErrorCode};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::journal::Journal;
use crate::records::audit::{NewAuditEvent, Outcome};

/// How many commands one user may have waiting at once.
pub const HELD_PER_USER: usize = 20;
/// How many commands the daemon holds at once.
pub const HELD_MAX: usize = 1000;
/// How many bytes of command text the daemon holds at once (a held script
/// may be 1 MiB).
pub const HELD_BYTES_MAX: usize = 64 << 20;

/// A held command as approvers and its requester see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HeldCommand {
    /// The hold's id (what `command_review` answers).
    pub held_id: String,
    /// Who asked to run it.
    pub user: String,
    /// Where.
    pub server: String,
    /// What.
    pub command: String,
    /// The rule that held it (`default` for the default action).
    pub rule: String,
    /// The rule's message.
    pub message: String,
    /// Who may approve it: these users, or every admin when empty.
    pub approvers: Vec<String>,
    /// Who asked, as audit rows name it: a connection id, `rest`,
    /// `workflow:<run_id>`.
    pub actor: String,
    /// When it was held (RFC 3339, UTC).
    pub held_at: DateTime<Utc>,
    /// When it is rejected unless answered (RFC 3339, UTC).
    pub expires_at: DateTime<Utc>,
    /// Whether the requester's connections are told of it (work not tied
    /// to one connection); else its own connection tells it.
    #[serde(skip)]
    pub announce: bool,
}

/// An approver's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Run it.
    Approve,
    /// Do not.
    Reject,
}

/// What the waiting work is told.
#[derive(Debug)]
struct Answer {
    decision: Decision,
    by: String,
    comment: String,
}

struct Entry {
    held: HeldCommand,
    verdict: Verdict,
    answer: oneshot::Sender<Answer>,
}

/// The queue of held commands. See the module docs.
pub struct ReviewDesk {
    entries: Mutex<HashMap<String, Entry>>,
    /// How long a hold waits, now: a reload may change it for holds made
    /// after it (`set_timeout`); each hold reads it once, into its
    /// `expires_at`, and waits exactly that long.
    timeout: Mutex<Duration>,
    journal: Journal,
    broadcast: Addr<BroadcastActor>,
}

impl ReviewDesk {
    /// An empty desk; holds end after `timeout`.
    pub fn new(timeout: Duration, journal: Journal, broadcast: Addr<BroadcastActor>) -> Arc<ReviewDesk> {
        Arc::new(ReviewDesk {
            entries: Mutex::new(HashMap::new()),
            timeout: Mutex::new(timeout),
            journal,
            broadcast,
        })
    }

    /// Holds made from now on wait `timeout` (a reload).
    pub fn set_timeout(&self, timeout: Duration) {
        *self.timeout.lock().unwrap_or_else(|p| p.into_inner()) = timeout;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds `command` for `requester` on `server` under `verdict` (a
    /// `review` one): records it, tells the approvers, and returns what
    /// the work waits on. 55006 past the caps.
    pub fn hold(
        self: &Arc<Self>,
        requester: &Principal,
        server: &str,
        command: &str,
        verdict: &Verdict,
        actor: &str,
        announce: bool,
    ) -> Result<(HeldCommand, Gate), AppError> {
        let now = Utc::now();
        let held = HeldCommand {
            held_id: uuid::Uuid::new_v4().to_string(),
            user: requester.user.to_string(),
            server: server.to_owned(),
            command: command.to_owned(),
            rule: verdict.rule_name().to_owned(),
            message: verdict.message().to_owned(),
            approvers: verdict
                .rule
                .as_ref()
                .map(|r| r.approvers.clone())
                .unwrap_or_default(),
            actor: actor.to_owned(),
            announce,
            held_at: now,
            expires_at: now
                + chrono::Duration::from_std(*self.timeout.lock().unwrap_or_else(|p| p.into_inner()))
                    .unwrap_or_default(),
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut entries = self.lock();
            let mine = entries.values().filter(|e| e.held.user == held.user).count();
            let bytes: usize = entries.values().map(|e| e.held.command.len()).sum::<usize>() + command.len();
            if mine >= HELD_PER_USER || entries.len() >= HELD_MAX || bytes > HELD_BYTES_MAX {
                return Err(AppError::with_detail(
                    ErrorCode::TooManyHeld,
                    format!(
                        "{mine} of your commands wait for review (at most {HELD_PER_USER}; {HELD_MAX} or {} MiB of commands in the daemon)",
                        HELD_BYTES_MAX >> 20
                    ),
                ));
            }
            entries.insert(
                held.held_id.clone(),
                Entry {
                    held: held.clone(),
                    verdict: verdict.clone(),
                    answer: tx,
                },
            );
            // told under the lock: a decision (which takes the lock) cannot
            // announce the end before the start
            self.broadcast
                .do_send(Publish(Event::CommandReview(ReviewNotice::Requested {
                    held_id: held.held_id.clone(),
                    user: requester.user.clone(),
                    server: held.server.clone(),
                    command: Arc::from(held.command.as_str()),
                    rule: held.rule.clone(),
                    message: held.message.clone(),
                    expires_at: held.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    run_id: held.actor.strip_prefix("workflow:").map(str::to_owned),
                    approvers: held.approvers.clone(),
                    announce,
                })));
        }
        let mut row = self.row(&held, "command.held", &held.user);
        row.detail = Some(serde_json::json!({ "held_id": held.held_id, "rule": held.rule }));
        self.journal.audit(row);
        log::info!(held_id = held.held_id.as_str(), user = held.user.as_str(), server = server, rule = held.rule.as_str(); "command held for review");
        let gate = self.wait(held.clone(), rx);
        Ok((held, gate))
    }

    /// The gate of `held`: its answer, or the timeout. The guard that
    /// withdraws the hold is made here, outside the future, so a gate
    /// dropped before it was ever polled withdraws too.
    fn wait(self: &Arc<Self>, held: HeldCommand, mut rx: oneshot::Receiver<Answer>) -> Gate {
        let desk = self.clone();
        // the hold's own wait, as it was told (`expires_at`)
        let timeout = (held.expires_at - held.held_at).to_std().unwrap_or_default();
        let guard = Withdraw {
            desk: desk.clone(),
            held_id: Some(held.held_id.clone()),
        };
        Box::pin(async move {
            // the whole guard moves in (a field assignment alone would
            // capture only the field, and the guard would drop here)
            let mut guard = guard;
            let answer = match tokio::time::timeout(timeout, &mut rx).await {
                Ok(answer) => answer,
                Err(_) => {
                    // ours to end unless a decision took it meanwhile
                    if desk.lock().remove(&held.held_id).is_some() {
                        guard.held_id = None;
                        let mut row = desk.row(&held, "command.review.timeout", &held.user);
                        row.ended(Outcome::Refused, Some(ErrorCode::CommandReviewTimeout.code()));
                        row.detail = Some(serde_json::json!({ "held_id": held.held_id, "rule": held.rule }));
                        desk.journal.audit(row);
                        desk.ended(&held, "timeout", None);
                        return Err(AppError::with_detail(
                            ErrorCode::CommandReviewTimeout,
                            format!("nobody answered within {}s", timeout.as_secs()),
                        ));
                    }
                    // a decision removed it just before the timeout: its
                    // answer is on its way (it is sent right after)
                    rx.await
                }
            };
            // answered: the entry is gone already
            guard.held_id = None;
            match answer {
                Ok(Answer {
                    decision: Decision::Approve,
                    ..
                }) => Ok(()),
                Ok(Answer {
                    decision: Decision::Reject,
                    by,
                    comment,
                }) => {
                    let mut detail = format!("'{by}' rejected it");
                    if !comment.is_empty() {
                        detail.push_str(": ");
                        detail.push_str(&comment);
                    }
                    Err(AppError::with_detail(ErrorCode::CommandRejected, detail))
                }
                // the desk went without an answer (the daemon is stopping)
                Err(_) => Err(AppError::with_detail(
                    ErrorCode::CommandRejected,
                    "the review ended unanswered",
                )),
            }
        })
    }

    /// `approver` answers hold `held_id`. 55004 unknown (answered, timed
    /// out, withdrawn), 55005 not theirs to answer, 55003 their own.
    pub fn decide(
        &self,
        held_id: &str,
        approver: &Principal,
        decision: Decision,
        comment: &str,
    ) -> Result<HeldCommand, AppError> {
        let entry = {
            let mut entries = self.lock();
            let Some(entry) = entries.get(held_id) else {
                return Err(AppError::with_detail(
                    ErrorCode::UnknownReview,
                    format!("no command waits for review as '{held_id}'"),
                ));
            };
            if entry.held.user == *approver.user {
                return Err(AppError::with_detail(
                    ErrorCode::SelfApproval,
                    "a second person must answer; ask another approver",
                ));
            }
            if !entry.verdict.may_approve(&approver.user, approver.role) {
                let who = if entry.held.approvers.is_empty() {
                    "an admin".to_owned()
                } else {
                    entry.held.approvers.join(", ")
                };
                return Err(AppError::with_detail(
                    ErrorCode::NotAnApprover,
                    format!("rule '{}' is answered by {who}", entry.held.rule),
                ));
            }
            entries
                .remove(held_id)
                .expect("checked above under the same lock")
        };
        let comment: String = comment.chars().take(1000).collect();
        let (action, outcome) = match decision {
            Decision::Approve => ("command.approved", Outcome::Ok),
            Decision::Reject => ("command.rejected", Outcome::Refused),
        };
        let mut row = self.row(&entry.held, action, &approver.user);
        if decision == Decision::Reject {
            row.ended(outcome, Some(ErrorCode::CommandRejected.code()));
        }
        row.detail = Some(serde_json::json!({
            "held_id": entry.held.held_id,
            "rule": entry.held.rule,
            "requester": entry.held.user,
            "approver": &*approver.user,
            "comment": comment,
        }));
        self.journal.audit(row);
        let decided = match decision {
            Decision::Approve => "approved",
            Decision::Reject => "rejected",
        };
        self.ended(&entry.held, decided, Some(&approver.user));
        log::info!(held_id = held_id, approver = &*approver.user, decision = decided; "command review answered");
        // the work may have gone just now: then nobody waits, and the row
        // above still says who decided
        let _ = entry.answer.send(Answer {
            decision,
            by: approver.user.to_string(),
            comment,
        });
        Ok(entry.held)
    }

    /// What `who` sees of the queue: what they may answer, and their own
    /// commands waiting. Oldest first.
    pub fn visible_to(&self, who: &Principal) -> Vec<HeldCommand> {
        let mut out: Vec<HeldCommand> = self
            .lock()
            .values()
            .filter(|e| e.held.user == *who.user || e.verdict.may_approve(&who.user, who.role))
            .map(|e| e.held.clone())
            .collect();
        out.sort_by(|a, b| a.held_at.cmp(&b.held_at).then_with(|| a.held_id.cmp(&b.held_id)));
        out
    }

    /// How many commands wait.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn row(&self, held: &HeldCommand, action: &str, user: &str) -> NewAuditEvent {
        let mut row = NewAuditEvent::new(held.actor.clone(), action)
            .by(Some(user), None)
            .in_domain("policy")
            .on(held.held_id.clone());
        row.server = Some(held.server.clone());
        row.command = Some(held.command.clone());
        row
    }

    fn ended(&self, held: &HeldCommand, decision: &str, by: Option<&str>) {
        self.broadcast
            .do_send(Publish(Event::CommandReview(ReviewNotice::Ended {
                held_id: held.held_id.clone(),
                user: Arc::from(held.user.as_str()),
                decision: decision.to_owned(),
                by: by.map(str::to_owned),
                approvers: held.approvers.clone(),
                announce: held.announce,
            })));
    }
}

/// Removes a hold whose work went away before an answer (a cancelled
/// command, a closed connection): the approvers' queues drop it.
struct Withdraw {
    desk: Arc<ReviewDesk>,
    held_id: Option<String>,
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        let Some(held_id) = self.held_id.take() else {
            return;
        };
        let Some(entry) = self.desk.lock().remove(&held_id) else {
            return;
        };
        let mut row = self
            .desk
            .row(&entry.held, "command.review.withdrawn", &entry.held.user);
        row.ended(Outcome::Cancelled, None);
        row.detail = Some(serde_json::json!({ "held_id": held_id, "rule": entry.held.rule }));
        self.desk.journal.audit(row);
        self.desk.ended(&entry.held, "withdrawn", None);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use actix::Actor;
    use pinkpage_actors::access::{Credential, Principal, Role, ServerScope};
    use pinkpage_actors::broadcast::BroadcastActor;
    use pinkpage_actors::policy::rules::{CommandPolicy, CommandRule, Matcher, RuleAction, Verdict};
    use pinkpage_actors::ErrorCode;

    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::Stores;

    fn who(user: &str, role: Role) -> Principal {
        Principal {
            user: user.into(),
            role,
            servers: ServerScope::All,
            credential: Credential::Proxy,
        }
    }

    fn verdict(approvers: &[&str]) -> Verdict {
        let rule = CommandRule {
            name: "restarts".into(),
            matcher: Matcher::words(&["restart".into()]).unwrap(),
            tags: vec![],
            roles: vec![],
            action: RuleAction::Review,
            message: "check it".into(),
            approvers: approvers.iter().map(|a| a.to_string()).collect(),
        };
        CommandPolicy::new(vec![rule], RuleAction::Allow)
            .unwrap()
            .judge("restart x", &[], Role::Operator)
    }

    /// `user` (an operator) asks to run `restart x` on `web1`, held for
    /// any admin.
    fn restart_by(desk: &Arc<ReviewDesk>, user: &str) -> Result<(HeldCommand, Gate), AppError> {
        desk.hold(
            &who(user, Role::Operator),
            "web1",
            "restart x",
            &verdict(&[]),
            "c1",
            false,
        )
    }

    fn desk(timeout: Duration) -> (Arc<ReviewDesk>, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::default());
        let journal = Journal::start(Stores::of(store.clone()), false);
        (
            ReviewDesk::new(timeout, journal, BroadcastActor::default().start()),
            store,
        )
    }

    async fn settled(store: &MemoryStore, action: &str) -> bool {
        for _ in 0..100 {
            if store.audit_actions().iter().any(|a| a == action) {
                return true;
            }
            tokio::task::yield_now().await;
        }
        false
    }

    #[actix::test]
    async fn an_approval_by_another_admin_opens_the_gate_and_is_audited() {
        let (desk, store) = desk(Duration::from_secs(600));
        let (held, gate) = restart_by(&desk, "ana").unwrap();
        assert_eq!(desk.visible_to(&who("root", Role::Admin)).len(), 1);
        assert_eq!(
            desk.visible_to(&who("ana", Role::Operator)).len(),
            1,
            "the requester sees their own"
        );
        assert!(desk.visible_to(&who("bo", Role::Operator)).is_empty());
        let own = desk.decide(&held.held_id, &who("ana", Role::Admin), Decision::Approve, "");
        assert_eq!(own.unwrap_err().code, ErrorCode::SelfApproval);
        let not = desk.decide(&held.held_id, &who("bo", Role::Operator), Decision::Approve, "");
        assert_eq!(not.unwrap_err().code, ErrorCode::NotAnApprover);
        desk.decide(
            &held.held_id,
            &who("root", Role::Admin),
            Decision::Approve,
            "fine",
        )
        .unwrap();
        assert!(gate.await.is_ok());
        assert!(desk.is_empty());
        let again = desk.decide(&held.held_id, &who("root", Role::Admin), Decision::Reject, "");
        assert_eq!(again.unwrap_err().code, ErrorCode::UnknownReview);
        assert!(settled(&store, "command.approved").await);
    }

    #[actix::test]
    async fn named_approvers_replace_the_admins_and_a_rejection_carries_the_comment() {
        let (desk, _) = desk(Duration::from_secs(600));
        let (held, gate) = desk
            .hold(
                &who("ana", Role::Operator),
                "web1",
                "restart x",
                &verdict(&["lee"]),
                "c1",
                false,
            )
            .unwrap();
        let admin = desk.decide(&held.held_id, &who("root", Role::Admin), Decision::Approve, "");
        assert_eq!(admin.unwrap_err().code, ErrorCode::NotAnApprover);
        desk.decide(
            &held.held_id,
            &who("lee", Role::Viewer),
            Decision::Reject,
            "not today",
        )
        .unwrap();
        let e = gate.await.unwrap_err();
        assert_eq!(e.code, ErrorCode::CommandRejected);
        assert!(e.detail.unwrap().contains("not today"));
    }

    #[actix::test]
    async fn an_unanswered_hold_times_out_and_leaves_the_queue() {
        tokio::time::pause();
        let (desk, store) = desk(Duration::from_secs(600));
        let (_, gate) = restart_by(&desk, "ana").unwrap();
        let started = tokio::time::Instant::now();
        let e = gate.await.unwrap_err();
        assert_eq!(e.code, ErrorCode::CommandReviewTimeout);
        // the timer's millisecond rounding aside, exactly the timeout
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(600) && waited < Duration::from_millis(600_010),
            "{waited:?}"
        );
        assert!(desk.is_empty());
        assert!(settled(&store, "command.review.timeout").await);
    }

    #[actix::test]
    async fn a_gate_dropped_unpolled_withdraws_its_hold() {
        let (desk, store) = desk(Duration::from_secs(600));
        let (_, gate) = restart_by(&desk, "ana").unwrap();
        assert_eq!(desk.len(), 1);
        drop(gate);
        assert!(desk.is_empty(), "a cancelled command leaves nothing in the queue");
        assert!(settled(&store, "command.review.withdrawn").await);
    }

    #[actix::test]
    async fn one_user_cannot_fill_the_queue() {
        let (desk, _) = desk(Duration::from_secs(600));
        let mut gates = Vec::new();
        for _ in 0..HELD_PER_USER {
            gates.push(restart_by(&desk, "ana").unwrap());
        }
        let refused = restart_by(&desk, "ana");
        assert_eq!(refused.err().unwrap().code, ErrorCode::TooManyHeld);
        // another user still may
        assert!(restart_by(&desk, "bo").is_ok());
    }

    #[actix::test]
    async fn held_scripts_cannot_take_more_than_the_byte_bound() {
        let (desk, _) = desk(Duration::from_secs(600));
        let script = "x".repeat(1 << 20);
        let script_by = |user: &str| {
            desk.hold(
                &who(user, Role::Operator),
                "web1",
                &script,
                &verdict(&[]),
                "c",
                false,
            )
        };
        // 64 users, one 1 MiB script each, fill it; the next is refused
        let gates: Vec<_> = (0..HELD_BYTES_MAX >> 20)
            .map(|n| script_by(&format!("u{n}")).unwrap())
            .collect();
        assert_eq!(script_by("late").err().unwrap().code, ErrorCode::TooManyHeld);
        drop(gates);
        assert!(desk.is_empty());
        assert!(script_by("late").is_ok());
    }
}
