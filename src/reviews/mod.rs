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
    timeout: Duration,
    journal: Journal,
    broadcast: Addr<BroadcastActor>,
}

/// Whether `who` may answer a hold of `held` under `verdict`.
fn may_answer(verdict: &Verdict, who: &Principal) -> bool {
    verdict.may_approve(&who.user, who.role)
}

impl ReviewDesk {
    /// An empty desk; holds end after `timeout`.
    pub fn new(timeout: Duration, journal: Journal, broadcast: Addr<BroadcastActor>) -> Arc<ReviewDesk> {
        Arc::new(ReviewDesk {
            entries: Mutex::new(HashMap::new()),
            timeout,
            journal,
            broadcast,
        })
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
            expires_at: now + chrono::Duration::from_std(self.timeout).unwrap_or_default(),
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut entries = self.lock();
            let mine = entries.values().filter(|e| e.held.user == held.user).count();
            if mine >= HELD_PER_USER || entries.len() >= HELD_MAX {
                return Err(AppError::with_detail(
                    ErrorCode::TooManyHeld,
                    format!("{mine} of your commands wait for review (at most {HELD_PER_USER}; {HELD_MAX} in the daemon)"),
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
        }
        let mut row = self.row(&held, "command.held", &held.user);
        row.detail = Some(serde_json::json!({ "held_id": held.held_id, "rule": held.rule }));
        self.journal.audit(row);
        self.broadcast
            .do_send(Publish(Event::CommandReview(ReviewNotice::Requested {
                held_id: held.held_id.clone(),
                user: requester.user.clone(),
                server: held.server.clone(),
                command: held.command.clone(),
                rule: held.rule.clone(),
                approvers: held.approvers.clone(),
                announce,
            })));
        log::info!(held_id = held.held_id.as_str(), user = held.user.as_str(), server = server, rule = held.rule.as_str(); "command held for review");
        let gate = self.wait(held.clone(), rx);
        Ok((held, gate))
    }

    /// The gate of `held`: its answer, or the timeout.
    fn wait(self: &Arc<Self>, held: HeldCommand, rx: oneshot::Receiver<Answer>) -> Gate {
        let desk = self.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            // removes the entry if the work goes away while it waits
            let mut guard = Withdraw {
                desk: desk.clone(),
                held_id: Some(held.held_id.clone()),
            };
            let answer = tokio::time::timeout(timeout, rx).await;
            guard.held_id = None;
            match answer {
                Ok(Ok(Answer {
                    decision: Decision::Approve,
                    ..
                })) => Ok(()),
                Ok(Ok(Answer {
                    decision: Decision::Reject,
                    by,
                    comment,
                })) => {
                    let mut detail = format!("'{by}' rejected it");
                    if !comment.is_empty() {
                        detail.push_str(": ");
                        detail.push_str(&comment);
                    }
                    Err(AppError::with_detail(ErrorCode::CommandRejected, detail))
                }
                // the sender went without an answer: only the timeout path
                // below removes without answering, so this is a shutdown
                Ok(Err(_)) => Err(AppError::with_detail(
                    ErrorCode::CommandRejected,
                    "the review ended unanswered",
                )),
                Err(_) => {
                    // ours to end unless a decision took it meanwhile
                    if desk.lock().remove(&held.held_id).is_some() {
                        let mut row = desk.row(&held, "command.review.timeout", &held.user);
                        row.ended(Outcome::Refused, Some(ErrorCode::CommandReviewTimeout.code()));
                        row.detail = Some(serde_json::json!({ "held_id": held.held_id, "rule": held.rule }));
                        desk.journal.audit(row);
                        desk.ended(&held, "timeout", None);
                    }
                    Err(AppError::with_detail(
                        ErrorCode::CommandReviewTimeout,
                        format!("nobody answered within {}s", timeout.as_secs()),
                    ))
                }
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
            if !may_answer(&entry.verdict, approver) {
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
            .filter(|e| e.held.user == *who.user || may_answer(&e.verdict, who))
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
