//! GitHub's events (`X-GitHub-Event`): `workflow_run` and `check_suite`
//! when completed, `deployment` when created and `deployment_status` when
//! it succeeds or fails; `ping` and everything else are acknowledged and
//! left alone.

use super::event::{actors, headline, link, text, Happening, Outcome, Parsed};
use super::HookError;
use serde_json::Value;

/// What GitHub's event `event` with payload `body` comes to.
pub(super) fn parse(event: &str, body: &[u8]) -> Result<Parsed, HookError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| HookError::Payload("GitHub", e.to_string()))?;
    match event {
        "workflow_run" => workflow_run(&v),
        "check_suite" => check_suite(&v),
        "deployment" => deployment(&v),
        "deployment_status" => deployment_status(&v),
        "ping" => Ok(Parsed::Ignored("ping: the hook is set up".into())),
        other => Ok(Parsed::Ignored(format!("event `{other}` is not one Top Dog notifies of"))),
    }
}

fn conclusion(word: Option<&str>) -> Option<Outcome> {
    match word? {
        "success" => Some(Outcome::Success),
        "failure" | "timed_out" | "startup_failure" | "error" => Some(Outcome::Failure),
        "cancelled" => Some(Outcome::Cancelled),
        _ => None,
    }
}

fn repository(v: &Value) -> Result<String, HookError> {
    text(v, &["repository", "full_name"])
        .map(str::to_owned)
        .ok_or_else(|| HookError::Payload("GitHub", "repository.full_name is missing".into()))
}

/// A completed run (`workflow_run` or `check_suite`, in `v[object]`): its
/// outcome, repository and branch; or why it does not notify.
fn completed(v: &Value, object: &str) -> Result<Result<(Outcome, String, String), Parsed>, HookError> {
    let action = text(v, &["action"]).unwrap_or_default();
    if action != "completed" {
        return Ok(Err(Parsed::Ignored(format!("action `{action}`: only completed runs notify"))));
    }
    let run = &v[object];
    let Some(outcome) = conclusion(text(run, &["conclusion"])) else {
        return Ok(Err(Parsed::Ignored("a conclusion that does not notify".into())));
    };
    Ok(Ok((outcome, repository(v)?, text(run, &["head_branch"]).unwrap_or_default().to_owned())))
}

/// A commit's short id (7 characters).
fn short(sha: Option<&str>) -> String {
    sha.unwrap_or_default().chars().take(7).collect()
}

fn workflow_run(v: &Value) -> Result<Parsed, HookError> {
    let (outcome, project, branch) = match completed(v, "workflow_run")? {
        Ok(found) => found,
        Err(ignored) => return Ok(ignored),
    };
    let run = &v["workflow_run"];
    let workflow = text(run, &["name"]).or_else(|| text(v, &["workflow", "name"])).unwrap_or("workflow");
    let sha = short(text(run, &["head_sha"]));
    Ok(Parsed::Happening(Happening {
        title: format!("{project}: {workflow} {} on {branch}", outcome.words()),
        body: format!("{} ({sha})", headline(text(run, &["head_commit", "message"]))),
        link: link(text(run, &["html_url"])),
        kind: outcome.build_kind(),
        actors: actors(
            v,
            &[
                &["workflow_run", "actor", "login"],
                &["workflow_run", "triggering_actor", "login"],
                &["workflow_run", "head_commit", "author", "email"],
                &["sender", "login"],
            ],
        ),
        project,
        branch,
        outcome,
    }))
}

fn check_suite(v: &Value) -> Result<Parsed, HookError> {
    let (outcome, project, branch) = match completed(v, "check_suite")? {
        Ok(found) => found,
        Err(ignored) => return Ok(ignored),
    };
    let suite = &v["check_suite"];
    let sha = text(suite, &["head_sha"]).unwrap_or_default();
    let page = text(v, &["repository", "html_url"]).map(|r| format!("{r}/commit/{sha}/checks"));
    Ok(Parsed::Happening(Happening {
        title: format!("{project}: checks {} on {branch}", outcome.words()),
        body: format!("{} ({})", headline(text(suite, &["head_commit", "message"])), short(Some(sha))),
        link: link(page.as_deref()),
        kind: outcome.build_kind(),
        actors: actors(v, &[&["check_suite", "head_commit", "author", "email"], &["sender", "login"]]),
        project,
        branch,
        outcome,
    }))
}

fn deployment(v: &Value) -> Result<Parsed, HookError> {
    let action = text(v, &["action"]).unwrap_or_default();
    if action != "created" {
        return Ok(Parsed::Ignored(format!("deployment action `{action}`")));
    }
    let project = repository(v)?;
    let d = &v["deployment"];
    let branch = text(d, &["ref"]).unwrap_or_default().to_owned();
    let environment = text(d, &["environment"]).unwrap_or("an environment");
    let page = text(v, &["repository", "html_url"]).map(|r| format!("{r}/deployments"));
    Ok(Parsed::Happening(Happening {
        title: format!("{project}: deploying {branch} to {environment}"),
        body: text(d, &["description"]).unwrap_or_default().to_owned(),
        link: link(page.as_deref()),
        kind: "deploy",
        actors: actors(v, &[&["deployment", "creator", "login"], &["sender", "login"]]),
        project,
        branch,
        outcome: Outcome::Deployment,
    }))
}

fn deployment_status(v: &Value) -> Result<Parsed, HookError> {
    let status = &v["deployment_status"];
    let Some(outcome) = conclusion(text(status, &["state"])) else {
        return Ok(Parsed::Ignored("a deployment state that does not notify".into()));
    };
    let project = repository(v)?;
    let branch = text(v, &["deployment", "ref"]).unwrap_or_default().to_owned();
    let environment = text(status, &["environment"]).or_else(|| text(v, &["deployment", "environment"]));
    let target = text(status, &["target_url"]).or_else(|| text(status, &["log_url"]));
    Ok(Parsed::Happening(Happening {
        title: format!("{project}: deploy of {branch} to {} {}", environment.unwrap_or("?"), outcome.words()),
        body: text(status, &["description"]).unwrap_or_default().to_owned(),
        link: link(target.or_else(|| text(status, &["environment_url"]))),
        kind: "deploy",
        actors: actors(
            v,
            &[&["deployment_status", "creator", "login"], &["deployment", "creator", "login"], &["sender", "login"]],
        ),
        project,
        branch,
        outcome,
    }))
}
