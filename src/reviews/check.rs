//! [`PolicyCheck`]: the command rules as one caller meets them.
//!
//! Every command Pink-Page runs from a string passes here first: STUB's
//! `ssh_command`, each BMX4 command, `diff_command` (WebSocket and REST),
//! BMX5 scripts (their text), workflow command and batch steps (when the
//! plan is made and again when each step starts). A refusal is an audit
//! row (`command.denied`) and 55000; a hold goes to the [`ReviewDesk`] and
//! its caller is told (`command_held`, later `command_released`).

use std::sync::Arc;

use pinkpage_actors::access::Principal;
use pinkpage_actors::policy::rules::{CommandPolicy, RuleAction, Verdict};
use pinkpage_actors::policy::{CommandCheck, Gate};
use pinkpage_actors::server::ServerSpec;
use pinkpage_actors::AppError;

use super::{HeldCommand, ReviewDesk};
use crate::journal::Journal;
use crate::records::audit::{NewAuditEvent, Outcome};
use crate::settings::live::LiveSettings;

/// What the caller of a held command is told.
#[derive(Debug, Clone)]
pub enum HoldNotice {
    /// The command waits for review.
    Held(HeldCommand),
    /// It was approved and starts now (its `held_id`).
    Released(String),
}

/// How a caller hears of its holds.
pub type Notify = Arc<dyn Fn(HoldNotice) + Send + Sync>;

/// The rules for one caller. Cheap to clone.
#[derive(Clone)]
pub struct PolicyCheck {
    /// The settings now: each command is judged by the rules a reload
    /// last left (a rule change is an access change, WAVE2), so a running
    /// shell's next line and a run's next step meet the new rules.
    live: Arc<LiveSettings>,
    desk: Arc<ReviewDesk>,
    journal: Journal,
    principal: Principal,
    /// The audit rows' actor: a connection id, `rest`, `workflow:<run>`.
    actor: String,
    remote: Option<String>,
    /// Where holds are told; `None`: to every connection of the caller
    /// (work not tied to a connection).
    notify: Option<Notify>,
}

impl PolicyCheck {
    /// The rules as `principal` meets them, acting as `actor`.
    pub fn new(
        live: Arc<LiveSettings>,
        desk: Arc<ReviewDesk>,
        journal: Journal,
        principal: Principal,
        actor: impl Into<String>,
        remote: Option<String>,
    ) -> PolicyCheck {
        PolicyCheck {
            live,
            desk,
            journal,
            principal,
            actor: actor.into(),
            remote,
            notify: None,
        }
    }

    /// The rules now.
    fn policy(&self) -> Arc<CommandPolicy> {
        self.live.current().command_policy.clone()
    }

    /// Holds are told through `notify` (a connection's own frames).
    pub fn telling(mut self, notify: Notify) -> PolicyCheck {
        self.notify = Some(notify);
        self
    }

    /// The verdict alone, nothing recorded: for plans and listings.
    pub fn verdict(&self, server: &ServerSpec, command: &str) -> Verdict {
        self.policy().judge(command, &server.tags, self.principal.role)
    }

    /// Refuses `command` on `server` unless a rule lets it run now or
    /// after review (what a plan checks before anything starts: a held
    /// command is held only when its step starts); the verdict otherwise,
    /// for [`hold_if_reviewed`](Self::hold_if_reviewed) once the rest of
    /// the work is ready.
    pub fn refuse_denied(&self, server: &ServerSpec, command: &str) -> Result<Verdict, AppError> {
        let verdict = self.verdict(server, command);
        match verdict.action {
            RuleAction::Deny => Err(self.denied(server, command, &verdict)),
            RuleAction::Allow | RuleAction::Review => Ok(verdict),
        }
    }

    /// What `verdict` (reached on `command` on `server`, and not a
    /// refusal) makes of it: nothing to wait for, or a hold, told to the
    /// caller, and the gate the work waits on.
    pub fn hold_if_reviewed(
        &self,
        server: &ServerSpec,
        command: &str,
        verdict: &Verdict,
    ) -> Result<Option<Gate>, AppError> {
        if verdict.action != RuleAction::Review {
            return Ok(None);
        }
        let announce = self.notify.is_none();
        let (held, gate) = self.desk.hold(
            &self.principal,
            &server.name,
            command,
            verdict,
            &self.actor,
            announce,
        )?;
        let Some(notify) = self.notify.clone() else {
            return Ok(Some(gate));
        };
        notify(HoldNotice::Held(held.clone()));
        Ok(Some(Box::pin(async move {
            gate.await?;
            notify(HoldNotice::Released(held.held_id));
            Ok(())
        })))
    }

    /// The refusal of `command` where commands are never held (a
    /// terminal's command): `review` refuses as `deny` does. A refusal is
    /// recorded.
    pub fn refuse_typed(&self, server: &ServerSpec, command: &str) -> Option<AppError> {
        let verdict = self.verdict(server, command);
        let refusal = verdict.typed_refusal(&server.name)?;
        self.record_denial(server, Some(command), &verdict, &refusal, None);
        Some(refusal)
    }

    /// The judge of lines typed into an interactive shell on `server`
    /// (`review` refuses there too), or `None` when no rule can refuse
    /// anything. One audit row per piece of input with a refused line
    /// (the first, with the count), so a paste of many refused lines is
    /// one row. A line only the default refuses is recorded without its
    /// text: under a default `deny` it may be a password typed at a prompt.
    pub fn typed_lines(&self, server: &Arc<ServerSpec>) -> Option<pinkpage_actors::policy::line::LineJudge> {
        if self.policy().is_open() {
            return None;
        }
        let (judging, reporting) = (self.clone(), self.clone());
        let (on, told) = (server.clone(), server.clone());
        Some(pinkpage_actors::policy::line::LineJudge::new(
            move |line| judging.verdict(&on, line).typed_refusal(&on.name),
            move |line, refusal, count| {
                let verdict = reporting.verdict(&told, line);
                let text = verdict.rule.is_some().then_some(line);
                reporting.record_denial(&told, text, &verdict, refusal, Some(count));
            },
        ))
    }

    fn denied(&self, server: &ServerSpec, command: &str, verdict: &Verdict) -> AppError {
        let e = verdict.denial(&server.name);
        self.record_denial(server, Some(command), verdict, &e, None);
        e
    }

    /// The `command.denied` row: `command` is `None` for a typed line kept
    /// out of the trail; `typed` is how many lines of one piece of typed
    /// input were refused (`None`: not typed).
    fn record_denial(
        &self,
        server: &ServerSpec,
        command: Option<&str>,
        verdict: &Verdict,
        e: &AppError,
        typed: Option<usize>,
    ) {
        log::info!(user = &*self.principal.user, server = server.name.as_str(), rule = verdict.rule_name(), typed = typed.is_some(); "command refused by a rule");
        let mut row = NewAuditEvent::new(self.actor.clone(), "command.denied")
            .by(Some(&self.principal.user), self.remote.clone())
            .in_domain("policy")
            .on(verdict.rule_name().to_owned());
        row.server = Some(server.name.clone());
        row.command = command.map(str::to_owned);
        row.ended(Outcome::Refused, Some(e.code.code()));
        row.detail = Some(match typed {
            Some(lines) => serde_json::json!({ "rule": verdict.rule_name(), "typed": true, "lines": lines }),
            None => serde_json::json!({ "rule": verdict.rule_name(), "typed": false }),
        });
        self.journal.audit(row);
    }
}

impl CommandCheck for PolicyCheck {
    fn check(&self, server: &ServerSpec, command: &str) -> Result<Option<Gate>, AppError> {
        let verdict = self.refuse_denied(server, command)?;
        self.hold_if_reviewed(server, command, &verdict)
    }
}
