//! Prometheus metrics (`prometheus-client`): invite outcomes, devices by
//! state, HTTP requests by route and status, MQTT messages by direction and
//! type, replays, gateway handshake failures and connected phones, rendered
//! as text for `GET /metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

/// The methods counted by name; any other is counted as `other`, so a
/// client cannot add labels.
const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"];

fn method_label(method: &str) -> &'static str {
    METHODS.iter().find(|m| **m == method).copied().unwrap_or("other")
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    direction: &'static str,
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Invite outcomes counted by `invite_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InviteEvent {
    /// An SMS invite or QR token was made.
    Created,
    /// An invite was accepted.
    Accepted,
    /// An invite expired.
    Expired,
    /// An invite was cancelled.
    Cancelled,
}

/// The appliance's metrics (cheap to clone).
#[derive(Clone)]
pub(crate) struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    invites: [Family<KindLabel, Counter>; 4],
    devices: Family<StateLabel, Gauge>,
    requests: Family<RequestLabels, Counter>,
    seats_licensed: Gauge,
    seats_used: Gauge,
    license_days_left: Gauge,
    certificate_days_left: Gauge,
    acme_failures: Gauge,
    messages: Family<MessageLabels, Counter>,
    replayed: Counter,
    handshake_failures: Family<ReasonLabel, Counter>,
    phones_connected: Gauge,
    accepts_refused: Family<ReasonLabel, Counter>,
    pushes: Family<OutcomeLabel, Counter>,
    escalations: Family<OutcomeLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// Values read at scrape time.
#[derive(Debug, Default, Clone)]
pub(crate) struct Snapshot {
    /// Devices by state.
    pub devices_by_state: Vec<(&'static str, i64)>,
    /// Seats the license grants now.
    pub seats_licensed: i64,
    /// Seats in use.
    pub seats_used: i64,
    /// Days until the license expires (-1: no expiry).
    pub license_days_left: i64,
    /// Phones connected to the MQTT gateway.
    pub phones_connected: i64,
    /// Days until the server certificate ends.
    pub certificate_days_left: i64,
    /// Failed ACME attempts since the last success (0 when ACME is off).
    pub acme_failures: i64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("topdog");
        let invites: [Family<KindLabel, Counter>; 4] = Default::default();
        let names = ["invites_created", "invites_accepted", "invites_expired", "invites_cancelled"];
        for (family, name) in invites.iter().zip(names) {
            registry.register(name, format!("Pairing invites {}", &name[8..]), family.clone());
        }
        let devices = Family::<StateLabel, Gauge>::default();
        registry.register("devices", "Paired devices by state", devices.clone());
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route and status", requests.clone());
        let (seats_licensed, seats_used, license_days_left) = (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register("seats_licensed", "Seats the license grants now", seats_licensed.clone());
        registry.register("seats_used", "Users with at least one paired, not revoked device", seats_used.clone());
        registry.register("license_days_left", "Days until the license expires (-1: never)", license_days_left.clone());
        let certificate_days_left = Gauge::default();
        registry.register(
            "tls_certificate_days_left",
            "Days until the HTTPS and MQTT server certificate ends",
            certificate_days_left.clone(),
        );
        let acme_failures = Gauge::default();
        registry.register(
            "acme_failures",
            "Failed ACME attempts since the last certificate was issued (0: none, or ACME off)",
            acme_failures.clone(),
        );
        let messages = Family::<MessageLabels, Counter>::default();
        registry.register("mqtt_messages", "MQTT messages by direction (in: from phones) and type", messages.clone());
        let replayed = Counter::default();
        registry.register(
            "notifications_replayed",
            "Notifications sent again to a phone that came back",
            replayed.clone(),
        );
        let handshake_failures = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "gateway_refused",
            "MQTT connections the gateway refused, by reason",
            handshake_failures.clone(),
        );
        let phones_connected = Gauge::default();
        registry.register("phones_connected", "Phones connected to the MQTT gateway", phones_connected.clone());
        let accepts_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "pairing_accepts_refused",
            "Accept-invite requests refused before reaching an invite (unknown or malformed code), by reason",
            accepts_refused.clone(),
        );
        let pushes = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "push_messages",
            "Web Push messages by outcome (sent, retried, gone, expired, refused, queue_full)",
            pushes.clone(),
        );
        let escalations = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "escalations",
            "Escalation texts by outcome (sent, failed, no_number, over_budget)",
            escalations.clone(),
        );
        let inner = Inner {
            registry,
            invites,
            devices,
            requests,
            seats_licensed,
            seats_used,
            license_days_left,
            certificate_days_left,
            acme_failures,
            messages,
            replayed,
            handshake_failures,
            phones_connected,
            accepts_refused,
            pushes,
            escalations,
        };
        Metrics { inner: Arc::new(inner) }
    }

    /// Counts an invite event for an invite of `kind` (`sms` or `qr`).
    pub(crate) fn invite_event(&self, event: InviteEvent, kind: &'static str) {
        self.inner.invites[event as usize].get_or_create(&KindLabel { kind }).inc();
    }

    /// Counts one answered HTTP request.
    pub(crate) fn http_request(&self, route: &'static str, method: &str, status: u16) {
        let labels = RequestLabels { route, method: method_label(method), status };
        self.inner.requests.get_or_create(&labels).inc();
    }

    /// Counts one MQTT message; `inbound` when a phone sent it.
    pub(crate) fn message(&self, inbound: bool, kind: &'static str) {
        let direction = if inbound { "in" } else { "out" };
        self.inner.messages.get_or_create(&MessageLabels { direction, r#type: kind }).inc();
    }

    /// Counts notifications replayed to a phone.
    pub(crate) fn replayed(&self, n: usize) {
        self.inner.replayed.inc_by(n as u64);
    }

    /// Counts an accept-invite that named no invite (audited in aggregate).
    pub(crate) fn accept_refused(&self, reason: &'static str) {
        self.inner.accepts_refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts one Web Push try's outcome.
    pub(crate) fn push(&self, outcome: &'static str) {
        self.inner.pushes.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Counts one escalation text's outcome.
    pub(crate) fn escalation(&self, outcome: &'static str) {
        self.inner.escalations.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Counts a connection the gateway refused.
    pub(crate) fn gateway_refused(&self, reason: &'static str) {
        self.inner.handshake_failures.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// The text exposition, with the values read at scrape time.
    pub(crate) fn render(&self, now: &Snapshot) -> String {
        for (state, count) in &now.devices_by_state {
            self.inner.devices.get_or_create(&StateLabel { state }).set(*count);
        }
        self.inner.seats_licensed.set(now.seats_licensed);
        self.inner.seats_used.set(now.seats_used);
        self.inner.license_days_left.set(now.license_days_left);
        self.inner.certificate_days_left.set(now.certificate_days_left);
        self.inner.acme_failures.set(now.acme_failures);
        self.inner.phones_connected.set(now.phones_connected);
        let mut out = String::new();
        if encode(&mut out, &self.inner.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Metrics::new();
        m.invite_event(InviteEvent::Accepted, "qr");
        m.http_request("/healthz", "GET", 200);
        let text =
            m.render(&Snapshot { devices_by_state: vec![("active", 3)], seats_licensed: 5, ..Default::default() });
        assert!(text.contains("topdog_seats_licensed 5"), "{text}");
        assert!(text.contains(r#"topdog_invites_accepted_total{kind="qr"} 1"#), "{text}");
        assert!(text.contains(r#"topdog_devices{state="active"} 3"#), "{text}");
        assert!(text.contains(r#"topdog_http_requests_total{route="/healthz",method="GET",status="200"} 1"#), "{text}");
    }

    #[test]
    fn made_up_methods_share_one_label() {
        let m = Metrics::new();
        for i in 0..200 {
            m.http_request("unmatched", &format!("JUNK{i}{}", "X".repeat(1000)), 405);
        }
        let text = m.render(&Snapshot::default());
        assert!(
            text.contains(r#"topdog_http_requests_total{route="unmatched",method="other",status="405"} 200"#),
            "{text}"
        );
        assert!(text.len() < 10_000, "{} bytes", text.len());
    }
}
