//! A checked ID token's claims turned into a person: the user id from the
//! configured claim (held to the user-id rules), the name, and the role
//! from the groups claim (admin before developer; neither is refused).

use super::OidcError;
use crate::clock::Timestamp;
use crate::config::OidcConfig;
use crate::ids::UserId;
use crate::people::{Person, Role};
use serde_json::Value;

/// The person the claims describe.
pub(super) fn person(config: &OidcConfig, claims: &Value, now: Timestamp) -> Result<Person, OidcError> {
    let raw = claims[config.user_claim.as_str()].as_str().ok_or_else(|| {
        OidcError::UserId(format!(
            "the identity provider sent no `{}` claim to take the user id from",
            config.user_claim
        ))
    })?;
    let user_id = UserId::parse(raw).map_err(|e| {
        OidcError::UserId(format!("`{raw}` (claim `{}`) is not a valid user id: {}", config.user_claim, e.reason))
    })?;
    let groups = groups(&claims[config.role_claim.as_str()]);
    let role = if groups.contains(&config.admin_group.as_str()) {
        Role::Admin
    } else if groups.contains(&config.developer_group.as_str()) {
        Role::Developer
    } else {
        return Err(OidcError::NoRole(user_id.to_string()));
    };
    let name = claims["name"].as_str().filter(|n| !n.trim().is_empty()).unwrap_or(raw);
    Ok(Person { name: name.chars().take(100).collect(), user_id, role, signed_in_at: now })
}

/// A groups claim: a list of names, or one name.
fn groups(claim: &Value) -> Vec<&str> {
    match claim {
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        Value::String(one) => vec![one.as_str()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> OidcConfig {
        OidcConfig {
            issuer: "https://id.example.com".into(),
            client_id: "topdog".into(),
            client_secret_file: "/s".into(),
            ca_cert: None,
            scopes: vec![],
            role_claim: "groups".into(),
            admin_group: "ops".into(),
            developer_group: "devs".into(),
            user_claim: "preferred_username".into(),
        }
    }

    #[test]
    fn roles_come_from_the_groups_claim_and_others_are_refused() {
        let now = chrono::Utc::now();
        let admin = person(&config(), &json!({"preferred_username": "ada", "groups": ["devs", "ops"]}), now).unwrap();
        assert_eq!((admin.user_id.as_str(), admin.role), ("ada", Role::Admin));
        let dev = person(&config(), &json!({"preferred_username": "dan", "groups": "devs", "name": "Dan D"}), now);
        assert_eq!(dev.unwrap().name, "Dan D");
        let none = person(&config(), &json!({"preferred_username": "eve", "groups": ["sales"]}), now);
        assert!(matches!(none, Err(OidcError::NoRole(_))));
        let bad = person(&config(), &json!({"preferred_username": "ada@example.com", "groups": ["ops"]}), now);
        assert!(matches!(bad, Err(OidcError::UserId(_))));
        assert!(matches!(person(&config(), &json!({"groups": ["ops"]}), now), Err(OidcError::UserId(_))));
    }
}
