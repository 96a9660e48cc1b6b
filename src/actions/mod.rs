//! The allow-list of build actions a phone may start, read from
//! `actions.toml` in the data directory: each action has a name, the
//! phrases that select it, an argv (no shell) whose `{param}` placeholders
//! are filled only with allowed values, a working directory, a timeout,
//! `confirm = true` for risky ones, and typed parameters with allowed
//! values. The file is read again when it changes.

pub(crate) mod llm;
pub mod matcher;
pub(crate) mod runner;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Why `actions.toml` was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActionsError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// It is not valid TOML or does not have the expected shape.
    #[error("{path}: {detail}")]
    Syntax {
        /// The file.
        path: String,
        /// What the parser said.
        detail: String,
    },
    /// An action breaks a rule.
    #[error("{path}: action {action:?}: {detail}")]
    Invalid {
        /// The file.
        path: String,
        /// The action.
        action: String,
        /// The rule it breaks.
        detail: String,
    },
}

/// One parameter of an action.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Param {
    /// Its name, used as `{name}` in argv.
    pub(crate) name: String,
    /// The allowed values (letters, digits, `.`, `_`, `-`).
    pub(crate) values: Vec<String>,
    /// Used when the text names no value; without it the value is required.
    #[serde(default)]
    pub(crate) default: Option<String>,
}

/// One allow-listed action.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Its name.
    pub(crate) name: String,
    /// What it does, in words (shown on the phone).
    #[serde(default)]
    pub(crate) description: String,
    /// Phrases that select it ("nightly build", "run the tests").
    pub(crate) phrases: Vec<String>,
    /// The program and its arguments; `{param}` placeholders allowed.
    pub(crate) argv: Vec<String>,
    /// Where it runs (default: the data directory).
    #[serde(default)]
    pub(crate) workdir: Option<PathBuf>,
    /// Seconds before it is stopped (default 600).
    #[serde(default = "default_timeout")]
    pub(crate) timeout_s: u64,
    /// Ask the phone for an approval first.
    #[serde(default)]
    pub(crate) confirm: bool,
    /// Its parameters.
    #[serde(default, rename = "param")]
    pub(crate) params: Vec<Param>,
}

fn default_timeout() -> u64 {
    600
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "action")]
    actions: Vec<Action>,
}

const MAX_TIMEOUT_S: u64 = 24 * 3600;

impl Action {
    /// The timeout.
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s)
    }

    /// The argv with every placeholder filled from `params`.
    pub(crate) fn argv_with(&self, params: &BTreeMap<String, String>) -> Vec<String> {
        self.argv
            .iter()
            .map(|arg| params.iter().fold(arg.clone(), |arg, (name, value)| arg.replace(&format!("{{{name}}}"), value)))
            .collect()
    }

    fn check(&self) -> Result<(), String> {
        let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !word(&self.name) {
            return Err("the name may contain only letters, digits, '.', '_' and '-'".into());
        }
        if self.phrases.iter().all(|p| matcher::words(p).is_empty()) {
            return Err("needs at least one phrase with a word in it".into());
        }
        if self.argv.first().is_none_or(|a| a.is_empty()) {
            return Err("argv needs a program".into());
        }
        if self.timeout_s == 0 || self.timeout_s > MAX_TIMEOUT_S {
            return Err(format!("timeout_s must be 1 to {MAX_TIMEOUT_S}"));
        }
        for p in &self.params {
            if !word(&p.name) || p.values.is_empty() || !p.values.iter().all(|v| word(v)) {
                return Err(format!("parameter {:?} needs a plain name and plain allowed values", p.name));
            }
            if p.default.as_ref().is_some_and(|d| !p.values.contains(d)) {
                return Err(format!("parameter {:?}: the default is not an allowed value", p.name));
            }
        }
        let filled = self.argv_with(&self.params.iter().map(|p| (p.name.clone(), String::new())).collect());
        if filled.iter().any(|a| a.contains('{') && a.contains('}')) {
            return Err("argv names a parameter that is not declared".into());
        }
        Ok(())
    }
}

/// Parses and checks the text of an `actions.toml`.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Action>, ActionsError> {
    let shown = path.display().to_string();
    let file: File =
        toml::from_str(text).map_err(|e| ActionsError::Syntax { path: shown.clone(), detail: e.to_string() })?;
    let mut seen = std::collections::HashSet::new();
    for action in &file.actions {
        let invalid =
            |detail: String| ActionsError::Invalid { path: shown.clone(), action: action.name.clone(), detail };
        action.check().map_err(invalid)?;
        if !seen.insert(action.name.clone()) {
            return Err(invalid("the name is used twice".into()));
        }
    }
    Ok(file.actions)
}

const EXAMPLE: &str = r#"# Actions a paired phone may start by voice or text. Nothing else ever runs.
# Each action runs its argv directly (no shell); {param} placeholders are
# filled only with one of the parameter's allowed values.
#
# [[action]]
# name = "nightly"
# description = "Run the nightly build and deploy it"
# phrases = ["nightly build", "nightly"]
# argv = ["/opt/ci/nightly.sh", "--project", "{project}", "--env", "{env}"]
# workdir = "/opt/ci"
# timeout_s = 1800
# confirm = true            # ask the phone to approve first
#
# [[action.param]]
# name = "project"
# values = ["alpha", "beta"]
#
# [[action.param]]
# name = "env"
# values = ["staging", "production"]
# default = "staging"
"#;

/// The allow-list, re-read when the file changes.
#[derive(Clone)]
pub(crate) struct Actions {
    path: PathBuf,
    loaded: Arc<Mutex<Loaded>>,
}

/// The file's modification time when read, and what it held.
type Loaded = (Option<SystemTime>, Arc<Vec<Action>>);

impl Actions {
    /// Loads `path`, writing a commented example there when it is missing.
    pub(crate) fn load(path: &Path) -> Result<Actions, ActionsError> {
        if !path.exists() {
            let read = |source| ActionsError::Read { path: path.display().to_string(), source };
            std::fs::write(path, EXAMPLE).map_err(read)?;
        }
        let actions = Actions { path: path.to_owned(), loaded: Arc::new(Mutex::new((None, Arc::default()))) };
        actions.reload()?;
        Ok(actions)
    }

    fn reload(&self) -> Result<Arc<Vec<Action>>, ActionsError> {
        let read = |source| ActionsError::Read { path: self.path.display().to_string(), source };
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).map_err(read)?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.0 != Some(modified) {
            let text = std::fs::read_to_string(&self.path).map_err(read)?;
            *loaded = (Some(modified), Arc::new(parse(&self.path, &text)?));
        }
        Ok(loaded.1.clone())
    }

    /// The current allow-list (the last good one when the file has become
    /// invalid, which is logged).
    pub(crate) fn current(&self) -> Arc<Vec<Action>> {
        self.reload().unwrap_or_else(|e| {
            tracing::error!(error = %e, "actions.toml is invalid; keeping the previous actions");
            self.loaded.lock().unwrap_or_else(|p| p.into_inner()).1.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[action]]
name = "nightly"
phrases = ["nightly build"]
argv = ["./nightly.sh", "--project={project}", "{env}"]
confirm = true
[[action.param]]
name = "project"
values = ["alpha", "beta"]
[[action.param]]
name = "env"
values = ["staging", "production"]
default = "staging"
"#;

    #[test]
    fn a_good_file_parses_and_fills_placeholders() {
        let actions = parse(Path::new("a.toml"), GOOD).unwrap();
        let params = BTreeMap::from([("project".into(), "alpha".into()), ("env".into(), "staging".into())]);
        assert_eq!(actions[0].argv_with(&params), ["./nightly.sh", "--project=alpha", "staging"]);
        assert!(actions[0].confirm);
        assert_eq!(actions[0].timeout(), Duration::from_secs(600));
    }

    #[test]
    fn rule_breaking_files_are_refused() {
        let undeclared = GOOD.replace("{env}\"]", "{branch}\"]");
        let bad_value = GOOD.replace("\"beta\"", "\"beta; rm -rf /\"");
        let no_program = GOOD.replace("argv = [\"./nightly.sh\",", "argv = [\"\",");
        let unknown_key = GOOD.replace("confirm = true", "shell = true");
        for text in [undeclared, bad_value, no_program, unknown_key, "[[action]]\nname = 3".into()] {
            assert!(parse(Path::new("a.toml"), &text).is_err(), "{text}");
        }
    }

    #[test]
    fn the_example_is_valid_and_allows_nothing() {
        assert!(parse(Path::new("example"), EXAMPLE).unwrap().is_empty());
    }
}
