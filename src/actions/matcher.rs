//! The offline command matcher: picks the allow-listed action whose phrase
//! appears (as whole words, in order) in the text, the longest phrase
//! winning, then reads each parameter's value from the words of the text.
//! No network, and nothing from the text but a choice among allowed values
//! ever reaches a command.

use super::Action;
use std::collections::BTreeMap;

/// What the text selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// An action with every parameter filled.
    Ready {
        /// The action's name.
        action: String,
        /// Its parameters.
        params: BTreeMap<String, String>,
    },
    /// An action, but a parameter is missing or given twice.
    NeedsParameter {
        /// The action's name.
        action: String,
        /// The parameter.
        param: String,
        /// Its allowed values.
        values: Vec<String>,
    },
    /// No action, or two equally good ones.
    Unknown,
}

/// The lower-case words of `text` (letters and digits; everything else
/// separates words).
pub(crate) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

fn contains_run(haystack: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The best phrase length with which `action` matches `text`.
fn score(action: &Action, text: &[String]) -> Option<usize> {
    action.phrases.iter().map(|p| words(p)).filter(|p| contains_run(text, p)).map(|p| p.len()).max()
}

/// Matches `text` against `actions`.
pub fn match_text(actions: &[Action], text: &str) -> Match {
    let text = words(text);
    let mut scored: Vec<(usize, &Action)> = actions.iter().filter_map(|a| score(a, &text).map(|s| (s, a))).collect();
    scored.sort_by_key(|(s, _)| std::cmp::Reverse(*s));
    match scored.as_slice() {
        [] => Match::Unknown,
        [(a, _), (b, _), ..] if a == b => Match::Unknown,
        [(_, action), ..] => fill(action, &text, |_| None),
    }
}

/// Fills an action's parameters from the words of the text, taking a value
/// from `given` first (the LLM matcher's choice, already checked).
pub(crate) fn fill(action: &Action, text: &[String], given: impl Fn(&str) -> Option<String>) -> Match {
    let mut params = BTreeMap::new();
    for p in &action.params {
        let named: Vec<&String> = p.values.iter().filter(|v| contains_run(text, &words(v))).collect();
        let value = match (given(&p.name), named.as_slice(), &p.default) {
            (Some(v), _, _) => v,
            (None, [one], _) => (*one).clone(),
            (None, [], Some(default)) => default.clone(),
            _ => {
                return Match::NeedsParameter {
                    action: action.name.clone(),
                    param: p.name.clone(),
                    values: p.values.clone(),
                }
            }
        };
        params.insert(p.name.clone(), value);
    }
    Match::Ready { action: action.name.clone(), params }
}

/// A sentence listing what the phone can say.
pub(crate) fn help(actions: &[Action]) -> String {
    if actions.is_empty() {
        return "No actions are set up yet; an admin can add them to actions.toml on the appliance.".into();
    }
    let list: Vec<String> = actions
        .iter()
        .map(|a| match a.phrases.first() {
            Some(p) if a.description.is_empty() => format!("\"{p}\""),
            Some(p) => format!("\"{p}\" ({})", a.description),
            None => a.name.clone(),
        })
        .collect();
    format!("I can do: {}.", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions() -> Vec<Action> {
        let text = r#"
[[action]]
name = "nightly"
phrases = ["nightly build", "nightly"]
argv = ["nightly.sh", "{project}", "{env}"]
[[action.param]]
name = "project"
values = ["alpha", "beta"]
[[action.param]]
name = "env"
values = ["staging", "production"]
default = "staging"

[[action]]
name = "tests"
phrases = ["run the tests", "test suite"]
argv = ["make", "test"]
"#;
        super::super::parse(std::path::Path::new("t"), text).unwrap()
    }

    #[test]
    fn the_issue_example_selects_nightly_for_alpha_on_staging() {
        let m = match_text(&actions(), "Run the nightly build for Project Alpha and deploy to staging");
        let params = BTreeMap::from([("env".into(), "staging".into()), ("project".into(), "alpha".into())]);
        assert_eq!(m, Match::Ready { action: "nightly".into(), params });
    }

    #[test]
    fn missing_and_doubled_parameters_are_asked_for() {
        assert!(
            matches!(match_text(&actions(), "nightly build please"), Match::NeedsParameter { param, .. } if param == "project")
        );
        assert!(matches!(match_text(&actions(), "nightly for alpha and beta"), Match::NeedsParameter { .. }));
        let m = match_text(&actions(), "nightly beta production");
        assert!(matches!(m, Match::Ready { params, .. } if params["env"] == "production"));
    }

    #[test]
    fn unknown_and_injection_text_matches_nothing() {
        for text in ["; rm -rf /", "", "deploy everything", "$(reboot)", "tests"] {
            assert_eq!(match_text(&actions(), text), Match::Unknown, "{text}");
        }
        assert!(help(&actions()).contains("\"nightly build\""));
    }
}
