//! Every route the HTTP API serves, as (method, path template). It labels
//! the request metrics and is what `/openapi.json` must describe: a test
//! compares the two, and another probes every entry on a live appliance.

/// Every (method, path template) served.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("POST", "/phone/pairing/send-sms"),
    ("POST", "/phone/pairing/resend-sms/{code}"),
    ("GET", "/phone/pairing/invite/{code}"),
    ("DELETE", "/phone/pairing/invite/{code}"),
    ("POST", "/phone/pairing/generate-qr"),
    ("POST", "/phone/pairing/accept-invite"),
    ("GET", "/pair"),
    ("GET", "/phone/devices"),
    ("DELETE", "/phone/devices/{id}"),
    ("POST", "/phone/devices/{id}/suspend"),
    ("POST", "/phone/devices/{id}/reactivate"),
    ("POST", "/phone/devices/{id}/approve"),
    ("POST", "/phone/devices/{id}/reject"),
    ("POST", "/phone/devices/{id}/sms-number"),
    ("GET", "/phone/me"),
    ("DELETE", "/phone/me"),
    ("POST", "/phone/token/refresh"),
    ("POST", "/phone/notify"),
    ("GET", "/phone/notifications"),
    ("GET", "/phone/notifications/{id}"),
    ("POST", "/phone/notifications/{id}/not-me"),
    ("POST", "/phone/seen"),
    ("POST", "/phone/approvals"),
    ("GET", "/phone/approvals"),
    ("GET", "/phone/approvals/{id}"),
    ("POST", "/phone/approvals/{id}/respond"),
    ("POST", "/phone/commands"),
    ("GET", "/phone/events"),
    ("GET", "/phone/push/key"),
    ("GET", "/phone/push/subscriptions"),
    ("POST", "/phone/push/subscriptions"),
    ("DELETE", "/phone/push/subscriptions/{id}"),
    ("GET", "/admin/status"),
    ("GET", "/admin/audit"),
    ("GET", "/admin/backup"),
    ("GET", "/admin/activity"),
    ("GET", "/admin/license"),
    ("POST", "/admin/license"),
    ("POST", "/admin/session"),
    ("GET", "/admin/session"),
    ("DELETE", "/admin/session"),
    ("GET", "/auth/login"),
    ("GET", "/auth/callback"),
    ("GET", "/my/devices"),
    ("DELETE", "/my/devices/{id}"),
    ("POST", "/my/pairing/send-sms"),
    ("POST", "/my/pairing/generate-qr"),
    ("GET", "/my/activity"),
    ("GET", "/admin/tokens"),
    ("POST", "/admin/tokens"),
    ("DELETE", "/admin/tokens/{name}"),
    ("POST", "/hooks/github"),
    ("POST", "/hooks/gitlab"),
    ("POST", "/hooks/generic/{name}"),
    ("GET", "/"),
    ("GET", "/app"),
    ("GET", "/manifest.webmanifest"),
    ("GET", "/sw.js"),
    ("GET", "/assets/{file}"),
    ("GET", "/ca"),
    ("GET", "/ca.crt"),
    ("GET", "/ca.pem"),
];

/// Whether `path` fits `template` (a `{name}` level matches any one level).
fn fits(template: &str, path: &str) -> bool {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(t), Some(p)) if t == p || (t.starts_with('{') && !p.is_empty()) => {}
            _ => return false,
        }
    }
}

/// The route template of a path (for metrics: no code or id in a label).
pub(super) fn route_template(path: &str) -> &'static str {
    ROUTES.iter().map(|(_, t)| *t).find(|t| fits(t, path)).unwrap_or("unmatched")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_hide_codes_and_ids() {
        assert_eq!(route_template("/phone/pairing/invite/SECRET"), "/phone/pairing/invite/{code}");
        assert_eq!(route_template("/phone/devices/pixel/suspend"), "/phone/devices/{id}/suspend");
        assert_eq!(route_template("/phone/devices"), "/phone/devices");
        assert_eq!(route_template("/"), "/");
        assert_eq!(route_template("/nope"), "unmatched");
        assert_eq!(route_template("/phone/devices/"), "unmatched");
    }

    #[test]
    fn the_openapi_document_describes_exactly_these_routes() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../assets/openapi.json")).expect("assets/openapi.json is JSON");
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object().into_iter().flatten().map(move |(m, _)| (m.to_uppercase(), path.clone()))
            })
            .collect();
        let mut served: Vec<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        documented.sort();
        served.sort();
        assert_eq!(documented, served, "the document and the routes differ");
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let error = &op["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(error, "#/components/schemas/Error", "{method} {path} must describe its errors");
            }
        }
    }
}
