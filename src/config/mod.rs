//! The appliance's configuration: one `Config`, resolved from three layers in
//! order of precedence — command-line flags, then environment variables (the
//! original design's names where it had one), then an optional TOML file
//! (`--config`) — and finally the built-in defaults.

mod acme;
mod oidc;
pub(crate) use oidc::OidcConfig;
mod settings;

pub(crate) use settings::Secret;
pub use settings::Settings;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The TOML file is not valid.
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    /// A setting has a value that cannot work.
    #[error("invalid setting {setting}: {reason}")]
    Invalid { setting: &'static str, reason: String },
}

/// Where the HTTPS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsSource {
    /// Generated and signed by the appliance's own CA.
    Generated,
    /// The operator's own PEM files.
    Files { cert: PathBuf, key: PathBuf },
}

/// The SMS provider and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SmsConfig {
    /// Print each message on the console (the default). Pairing links are
    /// printed whole only when the operator chose this provider by name
    /// (`show_links`) or standard output is a terminal.
    Console { show_links: bool },
    /// Twilio's REST API.
    Twilio { account_sid: String, auth_token: Secret, from: String, api_base: String },
    /// AWS SNS `Publish`, signed with SigV4.
    Sns {
        region: String,
        endpoint: String,
        access_key_id: String,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    },
    /// A JSON POST to a URL.
    Webhook { url: String },
    /// A local program that gets the message on stdin.
    Command { argv: Vec<String> },
}

/// Per-client request budgets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LimitsConfig {
    /// Invite creations (SMS, resend, QR) per minute.
    pub(crate) invites_per_minute: u32,
    /// Accepts and look-ups per minute.
    pub(crate) accepts_per_minute: u32,
    /// Requests per API token per minute.
    pub(crate) token_requests_per_minute: u32,
}

/// Pairing rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PairingConfig {
    /// Lifetime of an SMS invite.
    pub(crate) invite_expiry: Duration,
    /// Lifetime of a QR token.
    pub(crate) qr_expiry: Duration,
    /// Whether a QR pairing needs a 6-digit OTP.
    pub(crate) qr_require_otp: bool,
    /// Whether that OTP travels inside the QR link.
    pub(crate) qr_embed_otp: bool,
    /// Countries SMS may go to (empty: all).
    pub(crate) allowed_countries: Vec<String>,
    /// Whether a new phone waits for an admin's approval.
    pub(crate) requires_approval: bool,
}

/// The resolved configuration of one appliance.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data directory.
    pub(crate) data_dir: PathBuf,
    /// HTTPS API address.
    pub(crate) http_addr: SocketAddr,
    /// MQTT/TLS address.
    pub(crate) mqtt_addr: SocketAddr,
    /// Most MQTT connections from one IP address.
    pub(crate) mqtt_max_per_ip: usize,
    /// Publishes a second one phone may send.
    pub(crate) mqtt_publish_rate: u32,
    /// Host phones use to reach the broker (None: the base URL's host).
    pub(crate) mqtt_public_host: Option<String>,
    /// Server certificate source.
    pub(crate) tls: TlsSource,
    /// Extra names for the generated certificate.
    pub(crate) tls_sans: Vec<String>,
    /// Certificates by ACME, when `acme_domain` is set.
    pub(crate) acme: Option<crate::acme::AcmeConfig>,
    /// Console sign-in through an OpenID provider, when `oidc_issuer` is set.
    pub(crate) oidc: Option<OidcConfig>,
    /// The shared PostgreSQL database, when `database_url` is set.
    pub(crate) database: Option<DatabaseConfig>,
    /// This node's name (among several sharing one database).
    pub(crate) node_name: String,
    /// Plain HTTP instead of HTTPS.
    pub(crate) insecure_http: bool,
    /// Public base URL (None: derived from the host name and port).
    pub(crate) base_url: Option<url::Url>,
    /// Pairing rules.
    pub(crate) pairing: PairingConfig,
    /// Admin token required for the device routes.
    pub(crate) devices_require_admin: bool,
    /// Admin token set by the operator.
    pub(crate) admin_token: Option<Secret>,
    /// Device token lifetime.
    pub(crate) jwt_ttl: Duration,
    /// SMS provider.
    pub(crate) sms: SmsConfig,
    /// Rate limits.
    pub(crate) limits: LimitsConfig,
    /// Expired-invite sweep period.
    pub(crate) sweep_interval: Duration,
    /// How long notifications are kept.
    pub(crate) notification_retention: Duration,
    /// The LLM command matcher, when an API key is set.
    pub(crate) llm: Option<crate::actions::llm::LlmConfig>,
    /// Longest long poll.
    pub(crate) long_poll_max: Duration,
    /// The token `/metrics` needs (None: loopback and admins only).
    pub(crate) metrics_token: Option<Secret>,
    /// Most HTTPS connections (open or opening) from one client address.
    pub(crate) http_max_per_ip: usize,
    /// Web Push (contact empty: the base URL).
    pub(crate) push: crate::push::PushConfig,
    /// Proxies whose forwarded client addresses are believed.
    pub(crate) trusted_proxies: crate::proxy::TrustedProxies,
    /// Escalation by SMS (`after` zero: off).
    pub(crate) escalation: crate::messaging::escalation::EscalationConfig,
    /// The operator's SMS texts.
    pub(crate) sms_templates: crate::sms::templates::TemplateTexts,
}

pub(crate) const MINUTE: u64 = 60;

/// Shortest admin token an operator may choose (the generated one has 43
/// characters of randomness).
pub(crate) const MIN_ADMIN_TOKEN: usize = 32;

fn admin_token(s: &Settings) -> Result<Option<Secret>, ConfigError> {
    match &s.admin_token {
        Some(token) if token.0.trim().chars().count() < MIN_ADMIN_TOKEN => Err(invalid(
            "admin_token",
            format!("must be at least {MIN_ADMIN_TOKEN} characters (e.g. `openssl rand -base64 32`)"),
        )),
        other => Ok(other.clone()),
    }
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { setting, reason: reason.into() }
}

impl Config {
    /// Resolves flags and environment (`cli`) over the file named by
    /// `config_file`, then applies the defaults.
    pub fn load(cli: Settings, config_file: Option<&Path>) -> Result<Config, ConfigError> {
        let file = match config_file {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        Config::resolve(cli.or(file))
    }

    /// Applies defaults and checks the values.
    pub fn resolve(s: Settings) -> Result<Config, ConfigError> {
        let base_url = match &s.base_url {
            Some(u) => Some(url::Url::parse(u).map_err(|e| invalid("base_url", e.to_string()))?),
            None => None,
        };
        let tls = match (s.tls_cert.clone(), s.tls_key.clone()) {
            (Some(cert), Some(key)) => TlsSource::Files { cert, key },
            (None, None) => TlsSource::Generated,
            _ => return Err(invalid("tls_cert", "tls_cert and tls_key go together")),
        };
        let limits = LimitsConfig {
            invites_per_minute: positive("rate_invites_per_minute", s.rate_invites_per_minute.unwrap_or(20))?,
            accepts_per_minute: positive("rate_accepts_per_minute", s.rate_accepts_per_minute.unwrap_or(60))?,
            token_requests_per_minute: positive(
                "rate_token_requests_per_minute",
                s.rate_token_requests_per_minute.unwrap_or(600),
            )?,
        };
        let http_addr = s.http_addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8443)));
        let config = Config {
            acme: acme::acme_config(&s, http_addr, &tls)?,
            oidc: oidc::oidc_config(&s)?,
            database: database_config(&s)?,
            node_name: node_name(&s)?,
            data_dir: s.data_dir.clone().unwrap_or_else(|| PathBuf::from("topdog-data")),
            http_addr,
            mqtt_addr: s.mqtt_addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8883))),
            mqtt_max_per_ip: s.mqtt_max_per_ip.unwrap_or(1000).max(1),
            mqtt_publish_rate: positive("mqtt_publish_rate", s.mqtt_publish_rate.unwrap_or(20))?,
            mqtt_public_host: s.mqtt_public_host.clone(),
            tls,
            tls_sans: s.tls_san.clone().unwrap_or_default(),
            insecure_http: s.insecure_http.unwrap_or(false),
            base_url,
            pairing: pairing_config(&s)?,
            devices_require_admin: s.devices_require_admin.unwrap_or(true),
            admin_token: admin_token(&s)?,
            jwt_ttl: nonzero("jwt_ttl", s.jwt_ttl.map(|d| d.0).unwrap_or(Duration::from_secs(30 * 24 * 3600)))?,
            sms: sms_config(&s)?,
            limits,
            sweep_interval: nonzero(
                "sweep_interval",
                s.sweep_interval.map(|d| d.0).unwrap_or(Duration::from_secs(60)),
            )?,
            notification_retention: nonzero(
                "notification_retention",
                s.notification_retention.map(|d| d.0).unwrap_or(Duration::from_secs(30 * 24 * 3600)),
            )?,
            llm: llm_config(&s)?,
            long_poll_max: s.long_poll_max.map(|d| d.0).unwrap_or(Duration::from_secs(60)),
            metrics_token: s.metrics_token.clone().filter(|t| !t.0.is_empty()),
            http_max_per_ip: s.http_max_per_ip.unwrap_or(256).max(1),
            push: push_config(&s)?,
            trusted_proxies: crate::proxy::TrustedProxies::parse(&s.trusted_proxies.clone().unwrap_or_default())
                .map_err(|e| invalid("trusted_proxies", e))?,
            escalation: escalation_config(&s),
            sms_templates: crate::sms::templates::TemplateTexts {
                invite: s.sms_invite_template.clone(),
                resend: s.sms_resend_template.clone(),
                escalation: s.sms_escalation_template.clone(),
            },
        };
        Ok(config)
    }
}

/// Escalation, off unless an SMS provider was chosen (the implicit console
/// only prints).
fn escalation_config(s: &Settings) -> crate::messaging::escalation::EscalationConfig {
    let default = crate::messaging::escalation::EscalationConfig::default();
    let provider_chosen = s.sms_provider.is_some() || s.twilio_account_sid.is_some();
    let after = s.escalate_after.map(|d| d.0).unwrap_or(default.after);
    crate::messaging::escalation::EscalationConfig {
        after: if provider_chosen { after } else { Duration::ZERO },
        repeat: s.escalate_repeat.map(|d| d.0).filter(|d| !d.is_zero()).unwrap_or(default.repeat),
        max_per_item: s.escalate_max_per_item.unwrap_or(default.max_per_item).max(1),
        max_per_user_hour: s.escalate_max_per_hour.unwrap_or(default.max_per_user_hour).max(1),
    }
}

fn push_config(s: &Settings) -> Result<crate::push::PushConfig, ConfigError> {
    let contact = s.push_contact.clone().unwrap_or_default();
    if !contact.is_empty() && !contact.starts_with("mailto:") && !contact.starts_with("https:") {
        return Err(invalid("push_contact", "a mailto: or https: URL"));
    }
    Ok(crate::push::PushConfig {
        allowed_hosts: s.push_allowed_hosts.clone().unwrap_or_default(),
        ca_cert: s.push_ca_cert.clone(),
        contact,
    })
}

fn llm_config(s: &Settings) -> Result<Option<crate::actions::llm::LlmConfig>, ConfigError> {
    let Some(key) = &s.anthropic_api_key else { return Ok(None) };
    let base_url = s.anthropic_base_url.clone().unwrap_or_else(|| "https://api.anthropic.com".into());
    url::Url::parse(&base_url).map_err(|e| invalid("anthropic_base_url", e.to_string()))?;
    Ok(Some(crate::actions::llm::LlmConfig {
        api_key: key.0.clone(),
        base_url,
        model: s.llm_model.clone().unwrap_or_else(|| "claude-haiku-4-5".into()),
        timeout: Duration::from_secs(15),
    }))
}

fn positive(setting: &'static str, value: u32) -> Result<u32, ConfigError> {
    if value == 0 {
        return Err(invalid(setting, "must be at least 1"));
    }
    Ok(value)
}

fn nonzero(setting: &'static str, value: Duration) -> Result<Duration, ConfigError> {
    if value.is_zero() {
        return Err(invalid(setting, "must be longer than zero"));
    }
    Ok(value)
}

fn pairing_config(s: &Settings) -> Result<PairingConfig, ConfigError> {
    let s = s.clone().normalised();
    let invite = s.invite_expiry.map(|d| d.0);
    let qr = s.qr_expiry.map(|d| d.0);
    Ok(PairingConfig {
        invite_expiry: nonzero("invite_expiry", invite.unwrap_or(Duration::from_secs(15 * MINUTE)))?,
        qr_expiry: nonzero("qr_expiry", qr.unwrap_or(Duration::from_secs(5 * MINUTE)))?,
        qr_require_otp: s.qr_require_otp.unwrap_or(false),
        qr_embed_otp: s.qr_embed_otp.unwrap_or(false),
        allowed_countries: s.sms_allowed_countries.clone().unwrap_or_default(),
        requires_approval: s.pairing_requires_approval.unwrap_or(false),
    })
}

fn required<T: Clone>(value: &Option<T>, setting: &'static str) -> Result<T, ConfigError> {
    value.clone().ok_or_else(|| invalid(setting, "is required by the chosen SMS provider"))
}

fn sms_config(s: &Settings) -> Result<SmsConfig, ConfigError> {
    let default = if s.twilio_account_sid.is_some() { "twilio" } else { "console" };
    match s.sms_provider.as_deref().unwrap_or(default) {
        "console" => Ok(SmsConfig::Console { show_links: s.sms_provider.is_some() }),
        "twilio" => Ok(SmsConfig::Twilio {
            account_sid: required(&s.twilio_account_sid, "twilio_account_sid")?,
            auth_token: required(&s.twilio_auth_token, "twilio_auth_token")?,
            from: required(&s.twilio_phone_number, "twilio_phone_number")?,
            api_base: s.twilio_api_base.clone().unwrap_or_else(|| "https://api.twilio.com".into()),
        }),
        "sns" => {
            let region = required(&s.aws_region, "aws_region")?;
            let endpoint =
                s.aws_endpoint_url_sns.clone().unwrap_or_else(|| format!("https://sns.{region}.amazonaws.com"));
            Ok(SmsConfig::Sns {
                region,
                endpoint,
                access_key_id: required(&s.aws_access_key_id, "aws_access_key_id")?,
                secret_access_key: required(&s.aws_secret_access_key, "aws_secret_access_key")?,
                session_token: s.aws_session_token.clone(),
            })
        }
        "webhook" => Ok(SmsConfig::Webhook { url: required(&s.sms_webhook_url, "sms_webhook_url")? }),
        "command" => {
            let argv: Vec<String> =
                required(&s.sms_command, "sms_command")?.split_whitespace().map(str::to_owned).collect();
            if argv.is_empty() {
                return Err(invalid("sms_command", "is empty"));
            }
            Ok(SmsConfig::Command { argv })
        }
        other => {
            Err(invalid("sms_provider", format!("unknown provider {other:?} (console, twilio, sns, webhook, command)")))
        }
    }
}

#[cfg(test)]
mod tests;

/// Where the shared PostgreSQL database is.
#[derive(Debug, Clone)]
pub(crate) struct DatabaseConfig {
    /// Its URL (it may carry a password).
    pub(crate) url: Secret,
    /// A CA certificate to trust for its TLS (besides the public roots).
    pub(crate) ca_cert: Option<PathBuf>,
}

fn database_config(s: &Settings) -> Result<Option<DatabaseConfig>, ConfigError> {
    let Some(url) = s.database_url.clone() else {
        return match s.database_ca_cert {
            Some(_) => Err(invalid("database_ca_cert", "needs database_url")),
            None => Ok(None),
        };
    };
    let parsed = url::Url::parse(&url.0).map_err(|_| invalid("database_url", "is not a URL"))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(invalid("database_url", "must be a postgres:// URL"));
    }
    Ok(Some(DatabaseConfig { url, ca_cert: s.database_ca_cert.clone() }))
}

fn node_name(s: &Settings) -> Result<String, ConfigError> {
    let name = s.node_name.clone().unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
    let fine = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    match fine {
        true => Ok(name),
        false => Err(invalid("node_name", "1–63 letters, digits, '-', '.' or '_'")),
    }
}
