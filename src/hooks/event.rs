//! What a forge's event comes to, whatever the forge: a build or deployment
//! of a project's branch with an outcome, the people who may have caused it
//! (in the order they are asked for a user id), and the words and link for
//! the phone.

use serde_json::Value;

/// How it ended (or that a deployment began).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// It passed.
    Success,
    /// It failed (or timed out, or errored).
    Failure,
    /// Someone cancelled it.
    Cancelled,
    /// A deployment was asked for or started.
    Deployment,
}

impl Outcome {
    /// How a title says it.
    pub(super) fn words(self) -> &'static str {
        match self {
            Outcome::Success => "passed",
            Outcome::Failure => "failed",
            Outcome::Cancelled => "was cancelled",
            Outcome::Deployment => "started",
        }
    }

    /// The notification kind of a build with this outcome.
    pub(super) fn build_kind(self) -> &'static str {
        match self {
            Outcome::Success => "build_success",
            Outcome::Failure => "build_failure",
            Outcome::Cancelled => "build_cancelled",
            Outcome::Deployment => "build_started",
        }
    }
}

/// A forge event that may notify someone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Happening {
    /// `owner/name` or `group/project`.
    pub project: String,
    /// The branch (or ref) it ran on.
    pub branch: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Logins and e-mails of who may have caused it, most likely first.
    pub actors: Vec<String>,
    /// The notification's headline.
    pub title: String,
    /// Its text.
    pub body: String,
    /// Where the phone goes to look.
    pub link: Option<String>,
    /// The notification kind.
    pub kind: &'static str,
}

/// What an event is to the appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Parsed {
    /// Something that may notify.
    Happening(Happening),
    /// Something it does not act on, and why.
    Ignored(String),
}

/// The text at `path` in `v`, if any and not empty.
pub(super) fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, key| v.get(key))?.as_str().filter(|s| !s.is_empty())
}

/// The texts found at each of `paths`, in order, without repeats.
pub(super) fn actors(v: &Value, paths: &[&[&str]]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for path in paths {
        if let Some(who) = text(v, path) {
            if !found.iter().any(|f| f.eq_ignore_ascii_case(who)) {
                found.push(who.to_owned());
            }
        }
    }
    found
}

/// The first line of a commit message, cut to fit.
pub(super) fn headline(message: Option<&str>) -> String {
    message.and_then(|m| m.lines().next()).unwrap_or_default().chars().take(200).collect()
}

/// A link, if it is an http(s) URL.
pub(super) fn link(candidate: Option<&str>) -> Option<String> {
    candidate.filter(|l| l.starts_with("https://") || l.starts_with("http://")).map(str::to_owned)
}
