//! Pairing: SMS invites and QR tokens (256-bit, one-time, expiring), their
//! session record (pending → accepted | expired | cancelled, timestamped),
//! resend and cancel, and accept-invite, which turns an invite into a paired
//! device and its first token in one transaction (of racing accepts exactly
//! one wins). The HTTP shapes are those of the original design.

use crate::audit::{Actor, AuditLog, Event};
use crate::clock::{self, Clock};
use crate::config::PairingConfig;
use crate::devices::Device;
use crate::error::Coded;

use crate::auth::tokens::{Subject, Tokens};
use crate::ids::{DisplayName, InviteCode, UserId};
use crate::licensing::seats;
use crate::licensing::Licensing;
use crate::metrics::{InviteEvent, Metrics};
use crate::sms::number::PhoneNumber;
use crate::sms::templates::Templates;
use crate::sms::Sms;
use crate::store::{Store, Table, Tx, TxAbort};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod answers;
mod device;
mod error;
mod invite;
pub(crate) mod qr;
mod tx;
mod wire;

use answers::{accept_action, hint_of, outcome, sms_answer, view};
pub(crate) use error::PairingError;
pub(crate) use invite::{Invite, InviteKind, InviteStatus};
use tx::{accept_in, accept_reads, expire_in, get_invite, hash_otp, new_otp, renew_in};
pub(crate) use wire::{
    AcceptRequest, AcceptResponse, InviteView, PagePreview, QrRequest, QrResponse, SendSmsRequest, SendSmsResponse,
};

/// How paired phones reach the broker.
#[derive(Clone)]
pub(crate) struct MqttIdentity {
    /// The appliance CA (signs phone certificates).
    pub ca: Arc<crate::pki::Ca>,
    /// host:port phones connect to.
    pub broker: String,
}

/// An accepted pairing: the phone's answer, and its device as stored.
pub(crate) struct Accepted {
    /// What the phone is answered.
    pub answer: AcceptResponse,
    /// The device record the accept stored.
    pub device: Device,
    /// The user's other phones not revoked when it was stored (counted
    /// with the seat): at 0, there is nobody to tell of it.
    pub others: u32,
}

/// The pairing service.
#[derive(Clone)]
pub(crate) struct Pairing {
    store: Store,
    tokens: Arc<Tokens>,
    sms: Arc<dyn Sms>,
    templates: Arc<Templates>,
    audit: AuditLog,
    metrics: Metrics,
    config: PairingConfig,
    base_url: String,
    mqtt: MqttIdentity,
    licensing: Licensing,
    clock: Clock,
    /// Accepts that named no invite since the last sweep (audited as one
    /// line, so anonymous junk cannot grow the audit log).
    unknown_accepts: Arc<AtomicU64>,
}

/// The parts the pairing service works with.
pub(crate) struct Parts {
    /// The store.
    pub store: Store,
    /// The token signer.
    pub tokens: Arc<Tokens>,
    /// The SMS provider.
    pub sms: Arc<dyn Sms>,
    /// The SMS texts.
    pub templates: Arc<Templates>,
    /// The audit log.
    pub audit: AuditLog,
    /// Metrics.
    pub metrics: Metrics,
    /// Pairing rules.
    pub config: PairingConfig,
    /// Public base URL (no trailing slash).
    pub base_url: String,
    /// How phones reach the broker.
    pub mqtt: MqttIdentity,
    /// The license (for the seat limit).
    pub licensing: Licensing,
    /// The appliance's clock.
    pub clock: Clock,
}

impl Pairing {
    /// A service over its parts.
    pub(crate) fn new(parts: Parts) -> Pairing {
        let Parts { store, tokens, sms, templates, audit, metrics, config, base_url, mqtt, licensing, clock } = parts;
        let base_url = base_url.trim_end_matches('/').to_owned();
        Pairing {
            store,
            tokens,
            sms,
            templates,
            audit,
            metrics,
            config,
            base_url,
            mqtt,
            licensing,
            clock,
            unknown_accepts: Arc::default(),
        }
    }

    /// Parses a phone number as an invite would (the allowed countries).
    pub(crate) fn check_number(&self, input: &str) -> Result<PhoneNumber, PairingError> {
        Ok(PhoneNumber::parse_allowed(input, &self.config.allowed_countries)?)
    }

    /// The configured SMS provider's name.
    pub(crate) fn sms_provider(&self) -> &'static str {
        self.sms.name()
    }

    fn link(&self, code: &InviteCode, otp: Option<&str>) -> String {
        match otp {
            Some(otp) => format!("{}/pair?code={}&otp={otp}", self.base_url, code.as_str()),
            None => format!("{}/pair?code={}", self.base_url, code.as_str()),
        }
    }

    fn new_invite(
        &self,
        kind: InviteKind,
        code: &InviteCode,
        user_id: UserId,
        user_name: DisplayName,
        ttl: Duration,
    ) -> Invite {
        let now = self.clock.now();
        Invite {
            kind,
            hint: code.masked(),
            user_id,
            user_name,
            phone: None,
            status: InviteStatus::Pending,
            created_at: now,
            expires_at: now + clock::span(ttl),
            accepted_at: None,
            cancelled_at: None,
            expired_at: None,
            device_id: None,
            otp_hash: None,
            otp_failures: 0,
            sends: 0,
        }
    }

    /// Refuses a new pairing for `user` when every seat is taken; the limit.
    fn check_seat(&self, user: &UserId) -> Result<u32, PairingError> {
        let limit = self.licensing.seat_limit()?;
        seats::check(&self.store, user, limit).map_err(|e| match e {
            seats::CheckError::Limit(l) => PairingError::SeatLimit(l),
            seats::CheckError::Store(s) => PairingError::Store(s),
        })?;
        Ok(limit)
    }

    /// Creates an SMS invite, stores it, then texts the link.
    pub(crate) async fn send_sms(&self, actor: &Actor, req: SendSmsRequest) -> Result<SendSmsResponse, PairingError> {
        let phone = PhoneNumber::parse_allowed(&req.phone_number, &self.config.allowed_countries)?;
        let user_id = UserId::parse(&req.user_id)?;
        let user_name = DisplayName::parse("user_name", &req.user_name)?;
        self.check_seat(&user_id)?;
        let code = InviteCode::generate();
        let mut invite = self.new_invite(InviteKind::Sms, &code, user_id, user_name, self.config.invite_expiry);
        invite.phone = Some(phone.clone());
        invite.sends = 1;
        self.store.insert(Table::Invites, &code.key().0, &invite).await?;
        self.metrics.invite_event(InviteEvent::Created, "sms");
        let sent = self.text_link(&code, &invite, &phone, false).await;
        self.audit.record(Event::new(actor, "invite.create", phone.masked(), outcome(&sent))).await;
        sent?;
        Ok(sms_answer(&code, &invite, &phone, "Pairing link sent"))
    }

    async fn text_link(
        &self,
        code: &InviteCode,
        invite: &Invite,
        phone: &PhoneNumber,
        resent: bool,
    ) -> Result<(), PairingError> {
        let (name, link) = (invite.user_name.as_str(), self.link(code, None));
        let text = self.templates.invite(resent, name, &link, self.config.invite_expiry);
        self.sms.send(phone, &text).await.map_err(|source| {
            tracing::warn!(error = %source, to = %phone, "pairing SMS failed");
            PairingError::Sms { source, code: code.as_str().to_owned() }
        })
    }

    /// Gives an SMS invite a new expiry and texts the link again.
    pub(crate) async fn resend(&self, actor: &Actor, raw_code: &str) -> Result<SendSmsResponse, PairingError> {
        let result = self.resend_inner(raw_code).await;
        let target = result.as_ref().map(|r| r.phone_number.clone()).unwrap_or_else(|_| hint_of(raw_code));
        self.audit.record(Event::new(actor, "invite.resend", target, outcome(&result))).await;
        result
    }

    async fn resend_inner(&self, raw_code: &str) -> Result<SendSmsResponse, PairingError> {
        let code = InviteCode::parse(raw_code)?;
        let now = self.clock.now();
        let ttl = clock::span(self.config.invite_expiry);
        let invite = self.store.commit(|tx| renew_in(tx, &code, now, ttl)).await?;
        let phone = invite.phone.clone().ok_or(PairingError::NotSms)?;
        self.text_link(&code, &invite, &phone, true).await?;
        Ok(sms_answer(&code, &invite, &phone, "Pairing link sent again"))
    }

    /// Cancels a pending invite.
    pub(crate) async fn cancel(&self, actor: &Actor, raw_code: &str) -> Result<InviteView, PairingError> {
        let code = InviteCode::parse(raw_code)?;
        let now = self.clock.now();
        let result = self
            .store
            .commit(|tx| {
                let mut invite = get_invite(tx, &code)?;
                invite.acceptable(now).map_err(TxAbort::Domain)?;
                invite.status = InviteStatus::Cancelled;
                invite.cancelled_at = Some(now);
                tx.put(Table::Invites, &code.key().0, &invite)?;
                Ok(invite)
            })
            .await
            .map_err(PairingError::from);
        self.audit.record(Event::new(actor, "invite.cancel", code.masked(), outcome(&result))).await;
        let invite = result?;
        self.metrics.invite_event(InviteEvent::Cancelled, invite.kind.label());
        Ok(view(&code, &invite, now))
    }

    /// The status of an invite (opening it consumes nothing).
    pub(crate) fn status(&self, raw_code: &str) -> Result<InviteView, PairingError> {
        let code = InviteCode::parse(raw_code)?;
        let invite = self.load(&code)?;
        Ok(view(&code, &invite, self.clock.now()))
    }

    /// What the pairing page shows (consumes nothing).
    pub(crate) fn preview(&self, raw_code: &str) -> Result<PagePreview, PairingError> {
        let code = InviteCode::parse(raw_code)?;
        let invite = self.load(&code)?;
        Ok(PagePreview {
            user_name: invite.user_name.to_string(),
            status: invite.effective_status(self.clock.now()),
            needs_otp: invite.otp_hash.is_some(),
        })
    }

    fn load(&self, code: &InviteCode) -> Result<Invite, PairingError> {
        self.store.get(Table::Invites, &code.key().0)?.ok_or(PairingError::NotFound)
    }

    /// Creates a one-time QR token (with an OTP when configured).
    pub(crate) async fn generate_qr(&self, actor: &Actor, req: QrRequest) -> Result<QrResponse, PairingError> {
        let user_id = UserId::parse(&req.user_id)?;
        let user_name = DisplayName::parse("user_name", req.user_name.as_deref().unwrap_or(user_id.as_str()))?;
        self.check_seat(&user_id)?;
        let code = InviteCode::generate();
        let mut invite = self.new_invite(InviteKind::Qr, &code, user_id, user_name, self.config.qr_expiry);
        let otp = self.config.qr_require_otp.then(new_otp);
        invite.otp_hash = otp.as_deref().map(hash_otp);
        let embedded = otp.as_deref().filter(|_| self.config.qr_embed_otp);
        let pairing_url = self.link(&code, embedded);
        let (qr_svg, qr_png_base64) = (qr::svg(&pairing_url)?, qr::png_base64(&pairing_url)?);
        self.store.insert(Table::Invites, &code.key().0, &invite).await?;
        self.metrics.invite_event(InviteEvent::Created, "qr");
        self.audit.record(Event::new(actor, "invite.create", format!("qr:{}", invite.user_id), "ok")).await;
        let shown_otp = if self.config.qr_embed_otp { None } else { otp };
        Ok(QrResponse {
            invite_code: code.as_str().to_owned(),
            pairing_url,
            expires_at: invite.expires_at,
            qr_svg,
            qr_png_base64,
            otp: shown_otp,
        })
    }

    /// Accepts an invite: exactly one accept of a code succeeds. Every
    /// attempt on a real invite is audited (`invite.accept` or
    /// `invite.reject`); attempts that name no invite (malformed fields, an
    /// unknown code) are counted in the metrics and audited in aggregate by
    /// the sweep.
    pub(crate) async fn accept(&self, req: AcceptRequest) -> Result<Accepted, PairingError> {
        let result = self.accept_inner(&req).await;
        if let Err(e @ (PairingError::Invalid(_) | PairingError::NotFound)) = &result {
            self.metrics.accept_refused(e.code());
            self.unknown_accepts.fetch_add(1, Ordering::Relaxed);
            return result;
        }
        let device: String = req.device_id.chars().take(64).collect();
        let target = format!("{device} via {}", hint_of(&req.invite_code));
        self.audit.record(Event::new(&Actor::Pairing, accept_action(&result), target, outcome(&result))).await;
        result
    }

    /// Writes one audit line for the accepts that named no invite since the
    /// last call; how many there were.
    pub(crate) async fn audit_unknown_accepts(&self) -> u64 {
        let n = self.unknown_accepts.swap(0, Ordering::Relaxed);
        if n > 0 {
            let target = format!("{n} accept(s) with a malformed request or an unknown code");
            self.audit.record(Event::new(&Actor::Pairing, "invite.reject_aggregate", target, "invite_not_found")).await;
        }
        n
    }

    /// Reads the invite (an unknown or used one costs no signing), signs
    /// the phone's certificate and token, then stores the device in one
    /// transaction that checks the invite again and takes the seat.
    async fn accept_inner(&self, req: &AcceptRequest) -> Result<Accepted, PairingError> {
        let code = InviteCode::parse(&req.invite_code)?;
        let mut device = device::from_request(req, self.clock.now(), self.config.requires_approval)?;
        // The id is taken with the read (one round trip on PostgreSQL):
        // every notification id made from now on is above it, and what an
        // earlier pairing of the same id received stays below it.
        let (pre, floor) = self.store.get_with_new_id::<Invite>(Table::Invites, &code.key().0)?;
        let pre = pre.ok_or(PairingError::NotFound)?;
        pre.acceptable(self.clock.now())?;
        device.inbox_floor = Some(crate::messaging::notifications::id_of(floor));
        device.user_id = pre.user_id.clone();
        let tenant = crate::messaging::wire::tenant_of(device.device_id.as_str());
        let (cert_pem, key_pem, cert_fingerprint) =
            device::client_cert(&self.mqtt.ca, req, device.device_id.as_str(), &tenant)?;
        device.fingerprint = cert_fingerprint;
        let issued = self.tokens.issue(&Subject {
            user_id: pre.user_id.as_str(),
            device_id: device.device_id.as_str(),
            fingerprint: &device.fingerprint,
        })?;
        device.token_jti = issued.claims.jti.clone();
        device.token_expires_at = issued.expires_at;
        let (now, otp) = (self.clock.now(), req.otp.clone());
        let reads = accept_reads(&code, &device);
        let licensing = self.licensing.clone();
        let accept = move |t: &Tx<'_>| accept_in(t, &code, otp.as_deref(), &device, now, &licensing);
        let tx::Stored { invite, device, others } = self.store.commit_grouped(reads, accept).await??;
        self.metrics.invite_event(InviteEvent::Accepted, invite.kind.label());
        tracing::info!(device = %device.device_id, user = %invite.user_id, "phone paired");
        let answer = AcceptResponse {
            device_id: device.device_id.to_string(),
            status: device.status,
            jwt_token: issued.token,
            expires_at: issued.expires_at,
            mqtt_broker: self.mqtt.broker.clone(),
            mqtt_topic_prefix: crate::messaging::wire::topic_prefix(invite.user_id.as_str(), device.device_id.as_str()),
            user_id: invite.user_id.to_string(),
            mqtt_client_cert: cert_pem,
            mqtt_client_key: key_pem,
            mqtt_ca_cert: self.mqtt.ca.cert_pem().to_owned(),
        };
        Ok(Accepted { answer, device, others })
    }

    /// Marks every pending invite past its expiry as expired; returns how
    /// many it marked.
    pub(crate) async fn sweep(&self) -> Result<usize, PairingError> {
        self.audit_unknown_accepts().await;
        let now = self.clock.now();
        let invites: Vec<(String, Invite)> = self.store.scan_keyed(Table::Invites)?;
        let mut swept = 0;
        for (key, _) in invites.iter().filter(|(_, i)| i.status == InviteStatus::Pending && i.expires_at <= now) {
            let marked = self.store.commit(|tx| expire_in(tx, key, now)).await?;
            if let Some(kind) = marked {
                self.metrics.invite_event(InviteEvent::Expired, kind.label());
                swept += 1;
            }
        }
        Ok(swept)
    }
}
