//! Command rules (issue 27): the servers file's `[[command_rules]]` and
//! `[command_policy]`, checked at start-up into the engine's
//! [`CommandPolicy`].
//!
//! ```toml
//! [command_policy]
//! default = "allow"              # allow (the default), deny or review
//!
//! [[command_rules]]
//! name = "no-root-wipe"
//! words = ["rm -rf /", "mkfs", "shutdown", "reboot"]   # or: regex = "..."
//! tags = ["prod"]                # servers carrying any of these; empty: all
//! roles = ["operator"]           # callers in these roles; empty: all
//! action = "deny"                # allow, deny or review
//! message = "Never on production; open a change request."
//! approvers = ["lee"]            # review only; empty: every admin
//! ```
//!
//! A rule has exactly one of `words` and `regex`. A rule that cannot be
//! built (a bad regular expression, an unknown role, a duplicate name)
//! stops start-up with the rule's name.

use std::str::FromStr;

use pinkpage_actors::access::Role;
use pinkpage_actors::policy::rules::{CommandPolicy, CommandRule, Matcher, RuleAction};
use serde::Deserialize;

use super::env::SettingDoc;
use super::names::check_name;

/// `PINKPAGE_REVIEW_TIMEOUT_S`, for the one list in `mod.rs`.
pub const REVIEW_TIMEOUT_DOC: SettingDoc = SettingDoc {
    name: "PINKPAGE_REVIEW_TIMEOUT_S",
    default: "600",
    meaning: "COMMAND POLICY: how long a command held by a `review` rule waits for an approver; unanswered, it is rejected unrun (55002)",
};

/// One `[[command_rules]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    name: String,
    #[serde(default)]
    words: Option<Vec<String>>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    action: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    approvers: Vec<String>,
}

/// `[command_policy]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    #[serde(default)]
    default: Option<String>,
}

/// The rules and the default, checked; errors name the rule.
pub fn build(rules: Vec<RawRule>, policy: Option<RawPolicy>) -> Result<CommandPolicy, String> {
    let default = match policy.and_then(|p| p.default) {
        Some(action) => {
            RuleAction::from_str(&action).map_err(|e| format!("[command_policy] default: {e}"))?
        }
        None => RuleAction::Allow,
    };
    let mut out = Vec::with_capacity(rules.len());
    for raw in rules {
        out.push(rule(raw)?);
    }
    CommandPolicy::new(out, default)
}

fn rule(raw: RawRule) -> Result<CommandRule, String> {
    check_name("command rule", &raw.name)?;
    let name = raw.name;
    let problem = |what: String| format!("command rule '{name}': {what}");
    let matcher = match (raw.words, raw.regex) {
        (Some(words), None) => Matcher::words(&words).map_err(problem)?,
        (None, Some(regex)) => {
            Matcher::regex(&regex).map_err(|e| problem(format!("invalid regular expression: {e}")))?
        }
        _ => return Err(problem("needs exactly one of `words` and `regex`".into())),
    };
    let action = RuleAction::from_str(&raw.action).map_err(problem)?;
    let roles = raw
        .roles
        .iter()
        .map(|r| Role::from_str(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(problem)?;
    if !raw.approvers.is_empty() && action != RuleAction::Review {
        return Err(problem("approvers are for `review` rules only".into()));
    }
    Ok(CommandRule {
        name,
        matcher,
        tags: raw.tags,
        roles,
        action,
        message: raw.message,
        approvers: raw.approvers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CommandPolicy, String> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            command_rules: Vec<RawRule>,
            command_policy: Option<RawPolicy>,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        build(file.command_rules, file.command_policy)
    }

    #[test]
    fn rules_build_in_order_with_their_default() {
        let policy = parse(
            r#"
            [command_policy]
            default = "review"
            [[command_rules]]
            name = "a"
            words = ["rm -rf /"]
            tags = ["prod"]
            action = "deny"
            [[command_rules]]
            name = "b"
            regex = "^systemctl restart"
            roles = ["operator"]
            action = "review"
            approvers = ["lee"]
            "#,
        )
        .unwrap();
        assert_eq!(policy.rules().len(), 2);
        assert_eq!(policy.rules()[1].approvers, vec!["lee".to_owned()]);
        assert_eq!(policy.default_action(), RuleAction::Review);
    }

    #[test]
    fn a_bad_rule_is_named() {
        let bad_regex = parse("[[command_rules]]\nname = \"broken\"\nregex = \"(\"\naction = \"deny\"\n");
        let e = bad_regex.unwrap_err();
        assert!(e.contains("'broken'") && e.contains("regular expression"), "{e}");
        let both =
            parse("[[command_rules]]\nname = \"two\"\nregex = \"x\"\nwords = [\"x\"]\naction = \"deny\"\n");
        assert!(both.unwrap_err().contains("exactly one"));
        let role = parse(
            "[[command_rules]]\nname = \"r\"\nwords = [\"x\"]\nroles = [\"root\"]\naction = \"deny\"\n",
        );
        assert!(role.unwrap_err().contains("'r'"));
        let action = parse("[[command_rules]]\nname = \"a\"\nwords = [\"x\"]\naction = \"maybe\"\n");
        assert!(action.unwrap_err().contains("maybe"));
        let approvers = parse(
            "[[command_rules]]\nname = \"a\"\nwords = [\"x\"]\naction = \"deny\"\napprovers = [\"x\"]\n",
        );
        assert!(approvers.unwrap_err().contains("review"));
        let default = parse("[command_policy]\ndefault = \"nope\"\n");
        assert!(default.unwrap_err().contains("default"));
    }
}
