//! One layer of settings (flags with their environment variables, or the
//! TOML file), and the value types it is written in.

use super::{ConfigError, MINUTE};
use clap::builder::BoolishValueParser;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// A duration written the human way (`15m`, `3s`, `30days`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = humantime::DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s).map(Dur)
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A secret setting: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// One layer of settings. Every field is optional so that layers can be
/// stacked; the same struct is parsed from flags (with clap, which also reads
/// the environment) and from the TOML file.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Data directory (database, keys, certificates, audit log).
    #[arg(long, env = "TOPDOG_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Address of the HTTPS API (port 0 picks a free port).
    #[arg(long, env = "TOPDOG_HTTP_ADDR")]
    pub(crate) http_addr: Option<SocketAddr>,
    /// Address phones use for MQTT/TLS, announced at pairing.
    #[arg(long, env = "TOPDOG_MQTT_ADDR")]
    pub(crate) mqtt_addr: Option<SocketAddr>,
    /// Most MQTT connections (open or opening) from one IP address.
    #[arg(long, env = "TOPDOG_MQTT_MAX_PER_IP")]
    pub(crate) mqtt_max_per_ip: Option<usize>,
    /// Publishes a second one phone may send, sustained (bursts of five
    /// seconds' worth); beyond it its connection is closed.
    #[arg(long, env = "TOPDOG_MQTT_PUBLISH_RATE")]
    pub(crate) mqtt_publish_rate: Option<u32>,
    /// Host name (or host:port) phones use to reach the broker.
    #[arg(long, env = "TOPDOG_MQTT_PUBLIC_HOST")]
    pub(crate) mqtt_public_host: Option<String>,
    /// PEM certificate chain to serve instead of the generated one.
    #[arg(long, env = "TOPDOG_TLS_CERT", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key for `--tls-cert`.
    #[arg(long, env = "TOPDOG_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Extra DNS names or IP addresses for the generated server certificate.
    #[arg(long = "tls-san", env = "TOPDOG_TLS_SAN", value_delimiter = ',')]
    pub(crate) tls_san: Option<Vec<String>>,
    /// A DNS name to get a certificate for by ACME (repeat for more; the
    /// first is the public name in pairing links and for MQTT).
    #[arg(long = "acme-domain", env = "TOPDOG_ACME_DOMAIN", value_delimiter = ',')]
    pub(crate) acme_domain: Option<Vec<String>>,
    /// Contact e-mail for the ACME account (expiry warnings).
    #[arg(long, env = "TOPDOG_ACME_EMAIL")]
    pub(crate) acme_email: Option<String>,
    /// ACME directory URL (default: Let's Encrypt's production directory).
    #[arg(long, env = "TOPDOG_ACME_DIRECTORY")]
    pub(crate) acme_directory: Option<String>,
    /// Use Let's Encrypt's staging directory (untrusted test certificates).
    #[arg(long, env = "TOPDOG_ACME_STAGING", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub(crate) acme_staging: Option<bool>,
    /// PEM root the ACME directory's own HTTPS certificate chains to (an
    /// internal ACME server such as step-ca).
    #[arg(long, env = "TOPDOG_ACME_CA_CERT")]
    pub(crate) acme_ca_cert: Option<PathBuf>,
    /// Where HTTP-01 challenges are answered and other plain HTTP requests
    /// are redirected to HTTPS (default :80; `off` for none).
    #[arg(long, env = "TOPDOG_ACME_HTTP_ADDR")]
    pub(crate) acme_http_addr: Option<String>,
    /// The ACME challenge: `tls-alpn-01` or `http-01` (default: TLS-ALPN-01
    /// when the HTTPS listener is on port 443, else HTTP-01).
    #[arg(long, env = "TOPDOG_ACME_CHALLENGE")]
    pub(crate) acme_challenge: Option<String>,
    /// A PostgreSQL database to keep the records in, shared by every node
    /// given the same one (`postgres://user:password@host:port/db`; default:
    /// the data directory's embedded database).
    #[arg(long, env = "TOPDOG_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<Secret>,
    /// A CA certificate (PEM) to trust for the PostgreSQL server's TLS.
    #[arg(long, env = "TOPDOG_DATABASE_CA_CERT")]
    pub(crate) database_ca_cert: Option<PathBuf>,
    /// This node's name among several sharing one database (default: the
    /// host name).
    #[arg(long, env = "TOPDOG_NODE_NAME")]
    pub(crate) node_name: Option<String>,
    /// The OpenID provider people sign in to the console with (its issuer
    /// URL); turns single sign-on on.
    #[arg(long, env = "TOPDOG_OIDC_ISSUER")]
    pub(crate) oidc_issuer: Option<String>,
    /// This appliance's client id at the OpenID provider.
    #[arg(long, env = "TOPDOG_OIDC_CLIENT_ID")]
    pub(crate) oidc_client_id: Option<String>,
    /// A file (0600) holding the client secret.
    #[arg(long, env = "TOPDOG_OIDC_CLIENT_SECRET_FILE")]
    pub(crate) oidc_client_secret_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for the OpenID provider.
    #[arg(long, env = "TOPDOG_OIDC_CA_CERT")]
    pub(crate) oidc_ca_cert: Option<PathBuf>,
    /// Scopes to ask for besides `openid` (default: profile,email).
    #[arg(long, env = "TOPDOG_OIDC_SCOPES", value_delimiter = ',')]
    pub(crate) oidc_scopes: Option<Vec<String>>,
    /// The ID token claim listing the person's groups (default: groups).
    #[arg(long, env = "TOPDOG_OIDC_ROLE_CLAIM")]
    pub(crate) oidc_role_claim: Option<String>,
    /// The group whose members are admins (default: topdog-admins).
    #[arg(long, env = "TOPDOG_OIDC_ADMIN_GROUP")]
    pub(crate) oidc_admin_group: Option<String>,
    /// The group whose members are developers (default: topdog-developers).
    #[arg(long, env = "TOPDOG_OIDC_DEVELOPER_GROUP")]
    pub(crate) oidc_developer_group: Option<String>,
    /// The ID token claim holding the person's user id (default:
    /// preferred_username).
    #[arg(long, env = "TOPDOG_OIDC_USER_CLAIM")]
    pub(crate) oidc_user_claim: Option<String>,
    /// Addresses or networks of reverse proxies and load balancers whose
    /// forwarded client addresses are believed (X-Forwarded-For, Forwarded,
    /// the PROXY protocol on the MQTT port), comma separated.
    #[arg(long, env = "TOPDOG_TRUSTED_PROXIES", value_delimiter = ',')]
    pub(crate) trusted_proxies: Option<Vec<String>>,
    /// Serve plain HTTP instead of HTTPS (only behind a TLS-terminating proxy).
    #[arg(long, env = "TOPDOG_INSECURE_HTTP", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub(crate) insecure_http: Option<bool>,
    /// Public base URL of the pairing links (default https://HOSTNAME:PORT).
    #[arg(long, env = "PAIRING_BASE_URL")]
    pub(crate) base_url: Option<String>,
    /// How long an SMS invite stays valid (e.g. 15m).
    #[arg(long, env = "TOPDOG_INVITE_EXPIRY")]
    pub(crate) invite_expiry: Option<Dur>,
    /// The original design's invite expiry, in minutes.
    #[arg(long, env = "PAIRING_INVITE_EXPIRY_MINUTES", hide = true)]
    pub(crate) invite_expiry_minutes: Option<u64>,
    /// How long a QR token stays valid (e.g. 5m).
    #[arg(long, env = "TOPDOG_QR_EXPIRY")]
    pub(crate) qr_expiry: Option<Dur>,
    /// The QR token lifetime, in minutes.
    #[arg(long, env = "PAIRING_QR_EXPIRY_MINUTES", hide = true)]
    pub(crate) qr_expiry_minutes: Option<u64>,
    /// Require a 6-digit OTP with QR pairing.
    #[arg(long, env = "PAIRING_QR_REQUIRE_OTP", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub(crate) qr_require_otp: Option<bool>,
    /// Put the OTP inside the QR link instead of showing it separately.
    #[arg(long, env = "PAIRING_QR_EMBED_OTP", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub(crate) qr_embed_otp: Option<bool>,
    /// New phones work only once an admin approves them.
    #[arg(long, env = "TOPDOG_PAIRING_REQUIRES_APPROVAL", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub(crate) pairing_requires_approval: Option<bool>,
    /// Require the admin token for the device list and device actions.
    #[arg(long, env = "PHONE_DEVICES_REQUIRE_ADMIN", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub(crate) devices_require_admin: Option<bool>,
    /// Set the admin token instead of generating one.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<Secret>,
    /// Lifetime of a device token (e.g. 30days).
    #[arg(long, env = "TOPDOG_JWT_TTL")]
    pub(crate) jwt_ttl: Option<Dur>,
    /// SMS provider: console, twilio, sns, webhook or command.
    #[arg(long, env = "TOPDOG_SMS_PROVIDER")]
    pub(crate) sms_provider: Option<String>,
    /// Only send SMS to these countries (ISO codes, comma separated).
    #[arg(long, env = "TOPDOG_SMS_ALLOWED_COUNTRIES", value_delimiter = ',')]
    pub(crate) sms_allowed_countries: Option<Vec<String>>,
    /// Twilio account SID.
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    pub(crate) twilio_account_sid: Option<String>,
    /// Twilio auth token.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub(crate) twilio_auth_token: Option<Secret>,
    /// The Twilio number messages come from.
    #[arg(long, env = "TWILIO_PHONE_NUMBER")]
    pub(crate) twilio_phone_number: Option<String>,
    /// Twilio API base URL (for a proxy or a test double).
    #[arg(long, env = "TWILIO_API_BASE")]
    pub(crate) twilio_api_base: Option<String>,
    /// AWS region for SNS.
    #[arg(long, env = "AWS_REGION")]
    pub(crate) aws_region: Option<String>,
    /// SNS endpoint URL (default https://sns.REGION.amazonaws.com).
    #[arg(long, env = "AWS_ENDPOINT_URL_SNS")]
    pub(crate) aws_endpoint_url_sns: Option<String>,
    /// AWS access key id.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub(crate) aws_access_key_id: Option<String>,
    /// AWS secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub(crate) aws_secret_access_key: Option<Secret>,
    /// AWS session token (temporary credentials).
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true)]
    pub(crate) aws_session_token: Option<Secret>,
    /// URL that receives each SMS as a JSON POST.
    #[arg(long, env = "TOPDOG_SMS_WEBHOOK_URL")]
    pub(crate) sms_webhook_url: Option<String>,
    /// Program (and arguments, space separated) that gets each SMS on stdin.
    #[arg(long, env = "TOPDOG_SMS_COMMAND")]
    pub(crate) sms_command: Option<String>,
    /// Invite creations allowed per client per minute.
    #[arg(long, env = "TOPDOG_RATE_INVITES_PER_MINUTE")]
    pub(crate) rate_invites_per_minute: Option<u32>,
    /// Accepts and invite look-ups allowed per client per minute.
    #[arg(long, env = "TOPDOG_RATE_ACCEPTS_PER_MINUTE")]
    pub(crate) rate_accepts_per_minute: Option<u32>,
    /// Requests allowed per API token per minute.
    #[arg(long, env = "TOPDOG_RATE_TOKEN_REQUESTS_PER_MINUTE")]
    pub(crate) rate_token_requests_per_minute: Option<u32>,
    /// How often expired invites are marked in the store.
    #[arg(long, env = "TOPDOG_SWEEP_INTERVAL")]
    pub(crate) sweep_interval: Option<Dur>,
    /// How long notifications are kept for phones that were offline.
    #[arg(long, env = "TOPDOG_NOTIFICATION_RETENTION")]
    pub(crate) notification_retention: Option<Dur>,
    /// Anthropic API key: turns on the LLM command matcher.
    #[arg(long, env = "ANTHROPIC_API_KEY", hide_env_values = true)]
    pub(crate) anthropic_api_key: Option<Secret>,
    /// Anthropic API base URL (for a proxy or a test double).
    #[arg(long, env = "ANTHROPIC_BASE_URL")]
    pub(crate) anthropic_base_url: Option<String>,
    /// The model the LLM command matcher asks.
    #[arg(long, env = "TOPDOG_LLM_MODEL")]
    pub(crate) llm_model: Option<String>,
    /// Longest long poll (`GET /phone/approvals/{id}?wait=`); lower it
    /// behind a proxy with a shorter read timeout.
    #[arg(long, env = "TOPDOG_LONG_POLL_MAX")]
    pub(crate) long_poll_max: Option<Dur>,
    /// Bearer token `GET /metrics` needs; without it, only loopback
    /// clients (and admins) may scrape.
    #[arg(long, env = "TOPDOG_METRICS_TOKEN", hide_env_values = true)]
    pub(crate) metrics_token: Option<Secret>,
    /// Most HTTPS connections (open or opening) from one client address.
    #[arg(long, env = "TOPDOG_HTTP_MAX_PER_IP")]
    pub(crate) http_max_per_ip: Option<usize>,
    /// Hosts phones may register push endpoints on besides the browsers'
    /// push services (a self-hosted UnifiedPush distributor; `*.domain`
    /// allowed), comma separated.
    #[arg(long, env = "TOPDOG_PUSH_ALLOWED_HOSTS", value_delimiter = ',')]
    pub(crate) push_allowed_hosts: Option<Vec<String>>,
    /// A PEM root certificate the Web Push sender trusts besides the web's.
    #[arg(long, env = "TOPDOG_PUSH_CA_CERT")]
    pub(crate) push_ca_cert: Option<PathBuf>,
    /// How push services can reach the operator (VAPID `sub`): a mailto:
    /// or https: URL (default: the base URL).
    #[arg(long, env = "TOPDOG_PUSH_CONTACT")]
    pub(crate) push_contact: Option<String>,
    /// An approval or priority-5 notification no phone has seen this long
    /// is texted to its user (0: never; also off without a configured SMS
    /// provider).
    #[arg(long, env = "TOPDOG_ESCALATE_AFTER")]
    pub(crate) escalate_after: Option<Dur>,
    /// An unseen priority-5 notification is texted again this often.
    #[arg(long, env = "TOPDOG_ESCALATE_REPEAT")]
    pub(crate) escalate_repeat: Option<Dur>,
    /// Most escalation texts for one item.
    #[arg(long, env = "TOPDOG_ESCALATE_MAX_PER_ITEM")]
    pub(crate) escalate_max_per_item: Option<u32>,
    /// Most escalation texts to one user in an hour.
    #[arg(long, env = "TOPDOG_ESCALATE_MAX_PER_HOUR")]
    pub(crate) escalate_max_per_hour: Option<u32>,
    /// The pairing invite's text ({user_name}, {pairing_link}, {expiry_minutes}).
    #[arg(long, env = "TOPDOG_SMS_INVITE_TEMPLATE")]
    pub(crate) sms_invite_template: Option<String>,
    /// A resent invite's text (the same placeholders).
    #[arg(long, env = "TOPDOG_SMS_RESEND_TEMPLATE")]
    pub(crate) sms_resend_template: Option<String>,
    /// An escalation's text ({user_name}, {kind}, {title}, {item_link}).
    #[arg(long, env = "TOPDOG_SMS_ESCALATION_TEMPLATE")]
    pub(crate) sms_escalation_template: Option<String>,
}

impl Settings {
    /// Folds the original design's minute variables into the duration
    /// settings of the same layer, so that a layer sets one value either way.
    pub(super) fn normalised(mut self) -> Settings {
        let minutes = |m: Option<u64>| m.map(|m| Dur(Duration::from_secs(m.saturating_mul(MINUTE))));
        self.invite_expiry = self.invite_expiry.or(minutes(self.invite_expiry_minutes.take()));
        self.qr_expiry = self.qr_expiry.or(minutes(self.qr_expiry_minutes.take()));
        self
    }

    /// Fills every field this layer leaves unset from `lower`. Field by
    /// field through serde, so a new setting needs no line here to keep its
    /// value from a lower layer.
    pub(crate) fn or(self, lower: Settings) -> Settings {
        let (this, lower) = (self.normalised(), lower.normalised());
        let (Ok(serde_json::Value::Object(mut high)), Ok(serde_json::Value::Object(low))) =
            (serde_json::to_value(&this), serde_json::to_value(&lower))
        else {
            return this;
        };
        for (field, value) in low {
            let unset = high.get(&field).is_none_or(serde_json::Value::is_null);
            if unset {
                high.insert(field, value);
            }
        }
        serde_json::from_value(serde_json::Value::Object(high)).unwrap_or(this)
    }

    /// Reads a TOML settings file.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_owned(), source: Box::new(e) })
    }
}
