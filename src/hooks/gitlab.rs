//! GitLab's events (`X-Gitlab-Event`): `Pipeline Hook` and `Job Hook` when
//! they end, `Deployment Hook` when a deployment starts or ends; everything
//! else is acknowledged and left alone.

use super::event::{actors, headline, link, text, Happening, Outcome, Parsed};
use super::HookError;
use serde_json::Value;

/// What GitLab's event `event` with payload `body` comes to.
pub(super) fn parse(event: &str, body: &[u8]) -> Result<Parsed, HookError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| HookError::Payload("GitLab", e.to_string()))?;
    match event {
        "Pipeline Hook" => pipeline(&v),
        "Job Hook" => job(&v),
        "Deployment Hook" => deployment(&v),
        other => Ok(Parsed::Ignored(format!("event `{other}` is not one Top Dog notifies of"))),
    }
}

fn status(word: Option<&str>) -> Option<Outcome> {
    match word? {
        "success" => Some(Outcome::Success),
        "failed" => Some(Outcome::Failure),
        "canceled" | "cancelled" => Some(Outcome::Cancelled),
        _ => None,
    }
}

fn project(v: &Value) -> Result<String, HookError> {
    text(v, &["project", "path_with_namespace"])
        .or_else(|| text(v, &["project_name"]))
        .map(str::to_owned)
        .ok_or_else(|| HookError::Payload("GitLab", "project.path_with_namespace is missing".into()))
}

fn ignored_status(word: Option<&str>) -> Parsed {
    Parsed::Ignored(format!("status `{}` does not notify", word.unwrap_or("?")))
}

fn pipeline(v: &Value) -> Result<Parsed, HookError> {
    let attributes = &v["object_attributes"];
    let Some(outcome) = status(text(attributes, &["status"])) else {
        return Ok(ignored_status(text(attributes, &["status"])));
    };
    let project = project(v)?;
    let branch = text(attributes, &["ref"]).unwrap_or_default().to_owned();
    let id = attributes["id"].as_u64().unwrap_or_default();
    let page = text(attributes, &["url"])
        .map(str::to_owned)
        .or_else(|| text(v, &["project", "web_url"]).map(|w| format!("{w}/-/pipelines/{id}")));
    Ok(Parsed::Happening(Happening {
        title: format!("{project}: pipeline {} on {branch}", outcome.words()),
        body: headline(text(v, &["commit", "message"])),
        link: link(page.as_deref()),
        kind: outcome.build_kind(),
        actors: actors(v, &[&["user", "username"], &["user", "email"], &["commit", "author", "email"]]),
        project,
        branch,
        outcome,
    }))
}

fn job(v: &Value) -> Result<Parsed, HookError> {
    let Some(outcome) = status(text(v, &["build_status"])) else {
        return Ok(ignored_status(text(v, &["build_status"])));
    };
    let project = project(v)?;
    let branch = text(v, &["ref"]).unwrap_or_default().to_owned();
    let job = text(v, &["build_name"]).unwrap_or("job");
    let id = v["build_id"].as_u64().unwrap_or_default();
    let home = text(v, &["project", "web_url"]).or_else(|| text(v, &["repository", "homepage"]));
    let page = home.map(|h| format!("{h}/-/jobs/{id}"));
    Ok(Parsed::Happening(Happening {
        title: format!("{project}: job {job} {} on {branch}", outcome.words()),
        body: headline(text(v, &["commit", "message"])),
        link: link(page.as_deref()),
        kind: outcome.build_kind(),
        actors: actors(v, &[&["user", "username"], &["user", "email"], &["commit", "author_email"]]),
        project,
        branch,
        outcome,
    }))
}

fn deployment(v: &Value) -> Result<Parsed, HookError> {
    let word = text(v, &["status"]);
    let outcome = match word {
        Some("running") => Outcome::Deployment,
        other => match status(other) {
            Some(outcome) => outcome,
            None => return Ok(ignored_status(word)),
        },
    };
    let project = project(v)?;
    let branch = text(v, &["ref"]).unwrap_or_default().to_owned();
    let environment = text(v, &["environment"]).unwrap_or("?");
    let page = text(v, &["deployable_url"]).or_else(|| text(v, &["environment_external_url"]));
    Ok(Parsed::Happening(Happening {
        title: format!("{project}: deploy of {branch} to {environment} {}", outcome.words()),
        body: text(v, &["commit_title"]).unwrap_or_default().to_owned(),
        link: link(page),
        kind: "deploy",
        actors: actors(v, &[&["user", "username"], &["user", "email"]]),
        project,
        branch,
        outcome,
    }))
}
