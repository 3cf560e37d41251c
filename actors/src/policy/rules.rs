//! Rules and the verdict on one command.
//!
//! A [`CommandPolicy`] is the servers file's `[[command_rules]]` in file
//! order and a default action. The first rule that applies to the server
//! (its tags) and the caller (their role) and matches the command decides;
//! when none does, the default does (`allow` unless configured). Rules are
//! shown in full to operators (`GET /api/v1/command-rules`), so a refusal
//! names its rule and message and explains itself; they never hold
//! secrets.

use std::fmt;
use std::sync::Arc;

use regex::Regex;

use super::words::{commands, contains, Command};
use crate::access::Role;
use crate::error::{AppError, ErrorCode};

/// What a rule does with a command it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleAction {
    /// Runs.
    Allow,
    /// Refused (55000) with the rule's message.
    Deny,
    /// Held until an approver approves it (55001 when rejected, 55002 at
    /// the timeout); refused like `deny` at an interactive prompt.
    Review,
}

impl RuleAction {
    /// The name in the servers file and on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            RuleAction::Allow => "allow",
            RuleAction::Deny => "deny",
            RuleAction::Review => "review",
        }
    }
}

impl RuleAction {
    /// How strict it is: allow 0, review 1, deny 2.
    const fn severity(self) -> u8 {
        match self {
            RuleAction::Allow => 0,
            RuleAction::Review => 1,
            RuleAction::Deny => 2,
        }
    }
}

impl std::str::FromStr for RuleAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "allow" => Ok(RuleAction::Allow),
            "deny" => Ok(RuleAction::Deny),
            "review" => Ok(RuleAction::Review),
            other => Err(format!(
                "unknown action '{other}'; expected allow, deny or review"
            )),
        }
    }
}

/// What a rule matches.
#[derive(Clone)]
pub enum Matcher {
    /// A regular expression, searched for in the whole command text
    /// (anchor it with `^` and `$` to match the whole of it).
    Regex(Regex),
    /// Phrases of whole shell words, any of which may stand anywhere in
    /// one command (`super::words`). Each phrase is kept as written and
    /// split on whitespace.
    Words(Vec<(String, Vec<String>)>),
}

impl Matcher {
    /// A regex matcher; the error is the regex crate's explanation.
    pub fn regex(pattern: &str) -> Result<Matcher, String> {
        Regex::new(pattern).map(Matcher::Regex).map_err(|e| e.to_string())
    }

    /// A words matcher; refuses an empty list or an empty phrase.
    pub fn words(phrases: &[String]) -> Result<Matcher, String> {
        if phrases.is_empty() {
            return Err("words must name at least one command".to_owned());
        }
        let mut out = Vec::with_capacity(phrases.len());
        for phrase in phrases {
            let split: Vec<String> = phrase.split_whitespace().map(str::to_owned).collect();
            if split.is_empty() {
                return Err("words must not hold an empty entry".to_owned());
            }
            out.push((phrase.clone(), split));
        }
        Ok(Matcher::Words(out))
    }

    /// Whether it matches the whole line as written (a regex may span
    /// commands; `words` stand in one command, so they never do here).
    fn matches_line(&self, line: &str) -> bool {
        match self {
            Matcher::Regex(re) => re.is_match(line),
            Matcher::Words(_) => false,
        }
    }

    /// Whether it matches one command of the line (quotes taken off).
    fn matches_command(&self, command: &Command) -> bool {
        match self {
            Matcher::Regex(re) => re.is_match(&command.text),
            Matcher::Words(phrases) => phrases.iter().any(|(_, split)| contains(&command.words, split)),
        }
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Regex(re) => f.debug_tuple("Regex").field(&re.as_str()).finish(),
            Matcher::Words(phrases) => f
                .debug_tuple("Words")
                .field(&phrases.iter().map(|(p, _)| p).collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// One `[[command_rules]]` entry.
#[derive(Debug, Clone)]
pub struct CommandRule {
    /// Unique among the rules; what refusals and reviews name.
    pub name: String,
    /// What it matches.
    pub matcher: Matcher,
    /// Servers it applies to: those carrying any of these tags (empty: every
    /// server).
    pub tags: Vec<String>,
    /// Callers it applies to (empty: every role).
    pub roles: Vec<Role>,
    /// What it does.
    pub action: RuleAction,
    /// Shown with a refusal or a hold: why the rule exists.
    pub message: String,
    /// Users who may approve a command it holds (empty: every admin).
    pub approvers: Vec<String>,
}

impl CommandRule {
    /// Whether the rule applies on a server with `tags` to a caller in
    /// `role`.
    fn applies(&self, tags: &[String], role: Role) -> bool {
        (self.tags.is_empty() || self.tags.iter().any(|t| tags.contains(t)))
            && (self.roles.is_empty() || self.roles.contains(&role))
    }
}

/// The rules in order and the action when none matches.
#[derive(Debug, Clone)]
pub struct CommandPolicy {
    rules: Vec<Arc<CommandRule>>,
    default: RuleAction,
}

impl Default for CommandPolicy {
    /// No rules; everything runs.
    fn default() -> Self {
        CommandPolicy {
            rules: Vec::new(),
            default: RuleAction::Allow,
        }
    }
}

impl CommandPolicy {
    /// The rules in the order they are tried; names must be unique.
    pub fn new(rules: Vec<CommandRule>, default: RuleAction) -> Result<CommandPolicy, String> {
        for (i, rule) in rules.iter().enumerate() {
            if rules[..i].iter().any(|r| r.name == rule.name) {
                return Err(format!("command rule '{}' is defined twice", rule.name));
            }
        }
        Ok(CommandPolicy {
            rules: rules.into_iter().map(Arc::new).collect(),
            default,
        })
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Arc<CommandRule>] {
        &self.rules
    }

    /// The action when no rule matches.
    pub fn default_action(&self) -> RuleAction {
        self.default
    }

    /// Whether anything but `allow` can ever come out (no rules and an
    /// `allow` default: every check is skipped).
    pub fn is_open(&self) -> bool {
        self.default == RuleAction::Allow && self.rules.iter().all(|r| r.action == RuleAction::Allow)
    }

    /// The verdict on `command`, run on a server with `tags` by a caller
    /// in `role`. Each command of the line (`;`, `&&`, `|`, a line break
    /// ... separate them; quotes come off) gets the first rule that matches
    /// it, or the default; a rule whose regex matches the whole line as
    /// written counts too; the strictest of these verdicts wins (deny, then
    /// review, then allow), so `ls; reboot` is not allowed by a rule for
    /// `ls`. Cost: one pass to cut the line, then the rules in order for
    /// each command.
    pub fn judge(&self, command: &str, tags: &[String], role: Role) -> Verdict {
        if self.is_open() {
            return Verdict {
                action: RuleAction::Allow,
                rule: None,
            };
        }
        let applying: Vec<&Arc<CommandRule>> = self.rules.iter().filter(|r| r.applies(tags, role)).collect();
        let of = |rule: &Arc<CommandRule>| Verdict {
            action: rule.action,
            rule: Some(rule.clone()),
        };
        let default = Verdict {
            action: self.default,
            rule: None,
        };
        let mut verdict = applying
            .iter()
            .find(|r| r.matcher.matches_line(command))
            .map(|r| of(r));
        let parts = commands(command);
        for part in &parts {
            let found = applying
                .iter()
                .find(|r| r.matcher.matches_command(part))
                .map_or_else(|| default.clone(), |r| of(r));
            verdict = Some(match verdict {
                Some(so_far) if so_far.action.severity() >= found.action.severity() => so_far,
                _ => found,
            });
        }
        verdict.unwrap_or(default)
    }
}

/// Whether `user` in `role` may answer a hold whose rule names
/// `approvers`: one of them when it names some, else any admin. The one
/// rule both the review desk and the approvers' notices follow.
pub fn is_approver(approvers: &[String], user: &str, role: Role) -> bool {
    if approvers.is_empty() {
        role == Role::Admin
    } else {
        approvers.iter().any(|a| a == user)
    }
}

/// What the policy says of one command.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// What to do.
    pub action: RuleAction,
    /// The rule that decided; `None` for the default action.
    pub rule: Option<Arc<CommandRule>>,
}

/// The name a verdict of the default action goes by.
pub const DEFAULT_RULE: &str = "default";

impl Verdict {
    /// The deciding rule's name, or [`DEFAULT_RULE`].
    pub fn rule_name(&self) -> &str {
        self.rule.as_ref().map_or(DEFAULT_RULE, |r| r.name.as_str())
    }

    /// The deciding rule's message (empty for the default action).
    pub fn message(&self) -> &str {
        self.rule.as_ref().map_or("", |r| r.message.as_str())
    }

    /// Whether `user` (in `role`) may approve what this verdict held:
    /// the rule's approvers when it names some, else any admin.
    pub fn may_approve(&self, user: &str, role: Role) -> bool {
        let approvers = self.rule.as_ref().map_or(&[][..], |r| r.approvers.as_slice());
        is_approver(approvers, user, role)
    }

    /// The refusal (55000) of a command this verdict denies on `server`.
    pub fn denial(&self, server: &str) -> AppError {
        let mut detail = format!(
            "rule '{}' refuses this command on server '{server}'",
            self.rule_name()
        );
        if !self.message().is_empty() {
            detail.push_str(": ");
            detail.push_str(self.message());
        }
        AppError::with_detail(ErrorCode::CommandDenied, detail)
    }

    /// The refusal of a line typed at an interactive prompt, or `None`
    /// when it may run: `review` refuses there too, since keystrokes are
    /// never held.
    pub fn typed_refusal(&self, server: &str) -> Option<AppError> {
        match self.action {
            RuleAction::Allow => None,
            RuleAction::Deny => Some(self.denial(server)),
            RuleAction::Review => {
                let mut e = self.denial(server);
                if let Some(detail) = &mut e.detail {
                    detail.push_str(
                        " (a review rule refuses at an interactive prompt: run it as a command to ask for approval)",
                    );
                }
                Some(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, matcher: Matcher, action: RuleAction) -> CommandRule {
        CommandRule {
            name: name.into(),
            matcher,
            tags: vec![],
            roles: vec![],
            action,
            message: format!("{name} says no"),
            approvers: vec![],
        }
    }

    fn words(list: &[&str]) -> Matcher {
        Matcher::words(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_first_matching_rule_decides_and_the_default_covers_the_rest() {
        let policy = CommandPolicy::new(
            vec![
                rule(
                    "ok-tmp",
                    Matcher::regex(r"^rm -rf /tmp/").unwrap(),
                    RuleAction::Allow,
                ),
                rule("no-rm", words(&["rm -rf /", "mkfs"]), RuleAction::Deny),
                rule(
                    "restarts",
                    Matcher::regex(r"systemctl\s+restart").unwrap(),
                    RuleAction::Review,
                ),
            ],
            RuleAction::Allow,
        )
        .unwrap();
        let judge = |c: &str| policy.judge(c, &[], Role::Operator);
        assert_eq!(judge("rm -rf /tmp/x").action, RuleAction::Allow);
        assert_eq!(judge("rm -rf /tmp/x").rule_name(), "ok-tmp");
        assert_eq!(judge("sudo rm -rf /").action, RuleAction::Deny);
        assert_eq!(
            judge("mkfs.ext4 /dev/sda").action,
            RuleAction::Allow,
            "whole words only"
        );
        assert_eq!(judge("sudo mkfs /dev/sda").rule_name(), "no-rm");
        assert_eq!(judge("systemctl  restart nginx").action, RuleAction::Review);
        assert_eq!(judge("uptime").rule_name(), DEFAULT_RULE);
        assert_eq!(judge("uptime").action, RuleAction::Allow);
    }

    #[test]
    fn every_command_of_a_line_is_judged_and_the_strictest_wins() {
        let policy = CommandPolicy::new(
            vec![
                rule(
                    "ok-tmp",
                    Matcher::regex(r"^rm -rf /tmp/").unwrap(),
                    RuleAction::Allow,
                ),
                rule("no-mkfs", words(&["mkfs"]), RuleAction::Deny),
                rule(
                    "restarts",
                    Matcher::regex(r"systemctl\s+restart").unwrap(),
                    RuleAction::Review,
                ),
            ],
            RuleAction::Allow,
        )
        .unwrap();
        let judge = |c: &str| policy.judge(c, &[], Role::Operator);
        // an allowed first command does not carry a denied second one
        assert_eq!(judge("rm -rf /tmp/x; mkfs /dev/sda").rule_name(), "no-mkfs");
        // deny is stricter than review, wherever it stands
        assert_eq!(
            judge("systemctl restart x && mkfs /dev/sda").action,
            RuleAction::Deny
        );
        assert_eq!(judge("ls | systemctl restart x").action, RuleAction::Review);
        // a quoted parameter is judged as the shell will run it
        assert_eq!(judge("systemctl 'restart' 'nginx'").action, RuleAction::Review);

        // under a default deny, every command of the line must be allowed
        let strict = CommandPolicy::new(
            vec![rule("ls", words(&["ls"]), RuleAction::Allow)],
            RuleAction::Deny,
        )
        .unwrap();
        assert_eq!(
            strict.judge("ls -l", &[], Role::Operator).action,
            RuleAction::Allow
        );
        assert_eq!(
            strict.judge("ls; reboot", &[], Role::Operator).action,
            RuleAction::Deny
        );
        assert_eq!(
            strict.judge("ls; reboot", &[], Role::Operator).rule_name(),
            DEFAULT_RULE
        );
    }

    #[test]
    fn a_regex_may_match_across_the_commands_of_a_line() {
        let policy = CommandPolicy::new(
            vec![rule(
                "pipe-to-shell",
                Matcher::regex(r"curl .*\| *sh").unwrap(),
                RuleAction::Deny,
            )],
            RuleAction::Allow,
        )
        .unwrap();
        assert_eq!(
            policy
                .judge("curl http://x/i.sh | sh", &[], Role::Operator)
                .action,
            RuleAction::Deny
        );
        assert_eq!(
            policy.judge("curl http://x/i.sh", &[], Role::Operator).action,
            RuleAction::Allow
        );
    }

    #[test]
    fn rules_apply_only_to_their_tags_and_roles() {
        let mut r = rule("prod-only", words(&["reboot"]), RuleAction::Deny);
        r.tags = tags(&["prod"]);
        r.roles = vec![Role::Operator];
        let policy = CommandPolicy::new(vec![r], RuleAction::Allow).unwrap();
        assert_eq!(
            policy
                .judge("reboot", &tags(&["prod", "web"]), Role::Operator)
                .action,
            RuleAction::Deny
        );
        assert_eq!(
            policy.judge("reboot", &tags(&["dev"]), Role::Operator).action,
            RuleAction::Allow
        );
        assert_eq!(
            policy.judge("reboot", &tags(&["prod"]), Role::Admin).action,
            RuleAction::Allow
        );
    }

    #[test]
    fn a_configured_default_applies_when_nothing_matches() {
        let policy = CommandPolicy::new(vec![], RuleAction::Review).unwrap();
        assert!(!policy.is_open());
        let verdict = policy.judge("ls", &[], Role::Operator);
        assert_eq!(verdict.action, RuleAction::Review);
        assert!(verdict.may_approve("root", Role::Admin));
        assert!(!verdict.may_approve("ana", Role::Operator));
    }

    #[test]
    fn named_approvers_replace_the_admins() {
        let mut r = rule("restarts", words(&["restart"]), RuleAction::Review);
        r.approvers = vec!["bob".into()];
        let policy = CommandPolicy::new(vec![r], RuleAction::Allow).unwrap();
        let verdict = policy.judge("systemctl restart x", &[], Role::Operator);
        assert!(verdict.may_approve("bob", Role::Operator));
        assert!(!verdict.may_approve("root", Role::Admin));
    }

    #[test]
    fn refusals_name_the_rule_and_its_message() {
        let policy = CommandPolicy::new(
            vec![
                rule("no-rm", words(&["rm -rf /"]), RuleAction::Deny),
                rule("held", words(&["restart"]), RuleAction::Review),
            ],
            RuleAction::Allow,
        )
        .unwrap();
        let denied = policy.judge("rm -rf /", &[], Role::Operator).denial("web1");
        assert_eq!(denied.code, ErrorCode::CommandDenied);
        let detail = denied.detail.unwrap();
        assert!(detail.contains("'no-rm'") && detail.contains("no-rm says no") && detail.contains("web1"));
        let typed = policy
            .judge("restart", &[], Role::Operator)
            .typed_refusal("web1")
            .unwrap();
        assert!(typed.detail.unwrap().contains("interactive prompt"));
        assert!(policy
            .judge("ls", &[], Role::Operator)
            .typed_refusal("web1")
            .is_none());
    }

    #[test]
    fn duplicate_names_and_empty_words_are_refused() {
        let twice = CommandPolicy::new(
            vec![
                rule("a", words(&["x"]), RuleAction::Deny),
                rule("a", words(&["y"]), RuleAction::Deny),
            ],
            RuleAction::Allow,
        );
        assert!(twice.unwrap_err().contains("'a'"));
        assert!(Matcher::words(&[]).is_err());
        assert!(Matcher::words(&["  ".into()]).is_err());
        assert!(Matcher::regex("(").is_err());
    }
}
