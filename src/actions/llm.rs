//! The optional LLM matcher (Anthropic Messages API): asked only when the
//! offline matcher finds nothing, it may only choose one of the allow-listed
//! actions and allowed parameter values through a tool whose schema lists
//! them; its answer is checked against the allow-list again before use.

use super::matcher::{self, Match};
use super::Action;
use serde_json::{json, Value};
use std::time::Duration;

/// Where and how to reach the model.
#[derive(Clone)]
pub(crate) struct LlmConfig {
    /// `ANTHROPIC_API_KEY`.
    pub api_key: String,
    /// The API's base URL (`https://api.anthropic.com` unless overridden).
    pub base_url: String,
    /// The model name.
    pub model: String,
    /// How long one request may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("api_key", &"****")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .finish()
    }
}

/// Why the model gave no usable answer (logged; the phone gets the offline
/// matcher's answer).
#[derive(Debug, thiserror::Error)]
pub(crate) enum LlmError {
    /// The request failed.
    #[error("LLM request: {0}")]
    Http(#[from] reqwest::Error),
    /// The API answered with an error.
    #[error("LLM API answered {0}")]
    Status(u16),
}

/// The LLM matcher.
#[derive(Clone)]
pub(crate) struct LlmMatcher {
    config: LlmConfig,
    http: reqwest::Client,
}

const TOOL: &str = "choose_action";

fn tool(actions: &[Action]) -> Value {
    let mut properties = serde_json::Map::new();
    let names: Vec<&str> = actions.iter().map(|a| a.name.as_str()).chain(["none"]).collect();
    properties.insert("action".into(), json!({ "type": "string", "enum": names }));
    let mut params = serde_json::Map::new();
    for p in actions.iter().flat_map(|a| &a.params) {
        params.insert(p.name.clone(), json!({ "type": "string", "enum": p.values }));
    }
    properties.insert("params".into(), json!({ "type": "object", "properties": params }));
    json!({
        "name": TOOL,
        "description": "Choose the one allow-listed build action the user asked for, or none.",
        "input_schema": { "type": "object", "properties": properties, "required": ["action"] },
    })
}

fn system_prompt(actions: &[Action]) -> String {
    let list: Vec<String> = actions
        .iter()
        .map(|a| {
            let params: Vec<String> = a.params.iter().map(|p| format!("{} ∈ {:?}", p.name, p.values)).collect();
            format!("- {}: {} (phrases {:?}; parameters: {})", a.name, a.description, a.phrases, params.join(", "))
        })
        .collect();
    format!(
        "You map a developer's spoken request to one of these build actions, or to \"none\". \
         Never invent actions or values.\n{}",
        list.join("\n")
    )
}

/// Checks the model's tool input against the allow-list.
fn judge(actions: &[Action], text: &str, input: &Value) -> Match {
    let Some(action) = actions.iter().find(|a| Some(a.name.as_str()) == input["action"].as_str()) else {
        return Match::Unknown;
    };
    let given = |name: &str| {
        let value = input["params"][name].as_str()?;
        let p = action.params.iter().find(|p| p.name == name)?;
        p.values.iter().find(|v| v.as_str() == value).cloned()
    };
    matcher::fill(action, &matcher::words(text), given)
}

impl LlmMatcher {
    /// A matcher for `config`.
    pub(crate) fn new(config: LlmConfig) -> Result<LlmMatcher, LlmError> {
        let http = reqwest::Client::builder().timeout(config.timeout).build()?;
        Ok(LlmMatcher { config, http })
    }

    /// Asks the model which action `text` means.
    pub(crate) async fn choose(&self, actions: &[Action], text: &str) -> Result<Match, LlmError> {
        if actions.is_empty() {
            return Ok(Match::Unknown);
        }
        let body = json!({
            "model": self.config.model,
            "max_tokens": 256,
            "system": system_prompt(actions),
            "tools": [tool(actions)],
            "tool_choice": { "type": "tool", "name": TOOL },
            "messages": [{ "role": "user", "content": text }],
        });
        let url = format!("{}/v1/messages", self.config.base_url.trim_end_matches('/'));
        let response = self
            .http
            .post(url)
            .header("x-api-key", &self.config.api_key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(LlmError::Status(response.status().as_u16()));
        }
        let answer: Value = response.json().await?;
        let input = answer["content"]
            .as_array()
            .and_then(|blocks| blocks.iter().find(|b| b["type"] == "tool_use" && b["name"] == TOOL))
            .map(|b| b["input"].clone())
            .unwrap_or(Value::Null);
        Ok(judge(actions, text, &input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions() -> Vec<Action> {
        let text = r#"
[[action]]
name = "nightly"
phrases = ["nightly build"]
argv = ["nightly.sh", "{project}"]
[[action.param]]
name = "project"
values = ["alpha", "beta"]
"#;
        super::super::parse(std::path::Path::new("t"), text).unwrap()
    }

    #[test]
    fn answers_outside_the_allow_list_are_refused() {
        let a = actions();
        let ok = judge(&a, "overnight job", &json!({"action": "nightly", "params": {"project": "beta"}}));
        assert!(matches!(ok, Match::Ready { params, .. } if params["project"] == "beta"));
        assert_eq!(judge(&a, "x", &json!({"action": "rm -rf /"})), Match::Unknown);
        assert_eq!(judge(&a, "x", &json!({"action": "none"})), Match::Unknown);
        let bad_value = judge(&a, "x", &json!({"action": "nightly", "params": {"project": "; reboot"}}));
        assert!(matches!(bad_value, Match::NeedsParameter { .. }));
        assert_eq!(tool(&a)["input_schema"]["properties"]["action"]["enum"], json!(["nightly", "none"]));
    }
}
