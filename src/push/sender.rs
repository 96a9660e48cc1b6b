//! Sends Web Push messages (RFC 8030) from a bounded queue, on a thread of
//! its own: each message
//! encrypted for its subscription (RFC 8291, `aes128gcm`), signed for its
//! push service (VAPID), with `TTL`, `Urgency` and `Topic`. Answers: 2xx
//! sent; 404/410 the subscription is gone (and removed); 429 and 5xx, or no
//! answer, retried with backoff (honouring `Retry-After`) until the
//! message's TTL runs out; anything else refused (logged).

use super::subscriptions::{Subscription, Subscriptions};
use super::vapid::Vapid;
use crate::metrics::Metrics;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Messages waiting to be sent; more are dropped (and counted).
const QUEUE: usize = 10_000;

/// Pushes in flight at once.
const CONCURRENT: usize = 32;

/// The longest wait between tries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How urgent a message is (RFC 8030 §5.3): the push service may hold a
/// `low` one until the phone wakes anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Urgency {
    /// Only when the phone is on power and Wi-Fi.
    Low,
    /// The default.
    Normal,
    /// Wakes the phone at once.
    High,
}

impl Urgency {
    fn as_str(self) -> &'static str {
        match self {
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }
}

/// One message for a device's subscriptions.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// The plaintext (the message's JSON).
    pub body: Arc<[u8]>,
    /// How long the push service should keep it for an unreachable phone.
    pub ttl: Duration,
    /// Its urgency.
    pub urgency: Urgency,
    /// Replaces an undelivered older message with the same topic.
    pub topic: Option<String>,
    /// The item whose receipt a sent push moves on (see [`Parts::pushed`]).
    pub receipt: Option<String>,
}

/// Told (device, item) when a push service took a message with a receipt.
pub(crate) type Pushed = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// A message on its way to one subscription.
struct Job {
    subscription: Subscription,
    message: Arc<Message>,
    /// Given up after this (the message's TTL).
    deadline: Instant,
    tries: u32,
}

/// How one try ended.
#[derive(Debug, PartialEq, Eq)]
enum Tried {
    Sent,
    Gone,
    Again(Option<Duration>),
    Refused(u16),
}

/// The sending side of the queue (cheap to clone).
#[derive(Clone)]
pub(crate) struct Sender {
    queue: mpsc::Sender<Job>,
    metrics: Metrics,
}

/// What the sender needs.
pub(crate) struct Parts {
    /// Signs for push services.
    pub vapid: Arc<Vapid>,
    /// The HTTPS client (web roots and the operator's `--push-ca-cert`).
    pub http: reqwest::Client,
    /// To drop subscriptions that are gone.
    pub subscriptions: Subscriptions,
    /// Counts outcomes.
    pub metrics: Metrics,
    /// Runs the sends; shutdown waits for them.
    pub tasks: TaskTracker,
    /// Ends waiting retries at shutdown.
    pub stop: CancellationToken,
    /// Told when a push service took a message with a receipt.
    pub pushed: Option<Pushed>,
}

/// Sends jobs from the queue.
struct Worker {
    parts: Parts,
    requeue: mpsc::Sender<Job>,
}

impl Sender {
    /// Starts the sender on a thread of its own: encrypting is the costly
    /// part of a push, and on one thread a burst of pushes takes at most
    /// one core, never the API's. Shutdown waits for it through the task
    /// tracker.
    pub(crate) fn start(parts: Parts) -> std::io::Result<Sender> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let metrics = parts.metrics.clone();
        let running = parts.tasks.token();
        let worker = Arc::new(Worker { parts, requeue: queue.clone() });
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name("web-push".into()).spawn(move || {
            runtime.block_on(dispatch(worker, jobs));
            drop(running);
        })?;
        Ok(Sender { queue, metrics })
    }

    /// Queues `message` for each of `subscriptions` (never waits).
    pub(crate) fn send(&self, subscriptions: Vec<Subscription>, message: Message) {
        let message = Arc::new(message);
        let deadline = Instant::now() + message.ttl;
        for subscription in subscriptions {
            let job = Job { subscription, message: message.clone(), deadline, tries: 0 };
            if self.queue.try_send(job).is_err() {
                self.metrics.push("queue_full");
            }
        }
    }
}

/// Takes jobs off the queue, at most [`CONCURRENT`] at once.
async fn dispatch(worker: Arc<Worker>, mut jobs: mpsc::Receiver<Job>) {
    let slots = Arc::new(Semaphore::new(CONCURRENT));
    loop {
        let job = tokio::select! {
            job = jobs.recv() => match job { Some(job) => job, None => return },
            _ = worker.parts.stop.cancelled() => return,
        };
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let w = worker.clone();
        worker.parts.tasks.spawn(async move {
            w.deliver(job).await;
            drop(slot);
        });
    }
}

impl Worker {
    async fn deliver(&self, mut job: Job) {
        let tried = self.try_once(&job).await;
        let metrics = &self.parts.metrics;
        match tried {
            Tried::Sent => {
                metrics.push("sent");
                if let (Some(pushed), Some(item)) = (&self.parts.pushed, &job.message.receipt) {
                    pushed(&job.subscription.device_id, item);
                }
            }
            Tried::Gone => {
                if let Err(e) = self.parts.subscriptions.gone(&job.subscription).await {
                    tracing::error!(error = %e, "could not remove a push subscription that is gone");
                }
                metrics.push("gone");
            }
            Tried::Refused(status) => {
                metrics.push("refused");
                tracing::warn!(status, device = %job.subscription.device_id, "the push service refused a message");
            }
            Tried::Again(after) => {
                let wait = after.unwrap_or_else(|| backoff(job.tries)).min(MAX_BACKOFF);
                if Instant::now() + wait >= job.deadline {
                    metrics.push("expired");
                    return;
                }
                metrics.push("retried");
                job.tries += 1;
                let requeue = self.requeue.clone();
                let stop = self.parts.stop.clone();
                self.parts.tasks.spawn(async move {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => { let _ = requeue.try_send(job); }
                        _ = stop.cancelled() => {}
                    }
                });
            }
        }
    }

    async fn try_once(&self, job: &Job) -> Tried {
        let request = match self.request(job) {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!(error = %e, device = %job.subscription.device_id, "could not prepare a push");
                return Tried::Refused(0);
            }
        };
        match self.parts.http.execute(request).await {
            Ok(answer) => judge(answer.status().as_u16(), answer.headers()),
            Err(e) => {
                tracing::debug!(error = %e, "push service unreachable");
                Tried::Again(None)
            }
        }
    }

    /// The encrypted, signed request for one try.
    fn request(&self, job: &Job) -> anyhow::Result<reqwest::Request> {
        let sub = &job.subscription;
        let url = self.parts.subscriptions.hosts().check(&sub.endpoint)?;
        let origin = url.origin().ascii_serialization();
        let body = super::encrypt::encrypt(&job.message.body, &decode(&sub.p256dh)?, &decode(&sub.auth)?)?;
        let ttl = job.deadline.saturating_duration_since(Instant::now()).as_secs();
        let mut request = self
            .parts
            .http
            .post(url)
            .header("TTL", ttl.to_string())
            .header("Urgency", job.message.urgency.as_str())
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("Authorization", self.parts.vapid.authorization(&origin)?)
            .body(body);
        if let Some(topic) = &job.message.topic {
            request = request.header("Topic", topic);
        }
        Ok(request.build()?)
    }
}

fn decode(text: &str) -> anyhow::Result<Vec<u8>> {
    Ok(URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).or_else(|_| URL_SAFE.decode(text))?)
}

/// What a push service's answer means.
fn judge(status: u16, headers: &reqwest::header::HeaderMap) -> Tried {
    match status {
        200..=299 => Tried::Sent,
        404 | 410 => Tried::Gone,
        429 | 500..=599 => Tried::Again(retry_after(headers)),
        other => Tried::Refused(other),
    }
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok()
}

/// 1 s, 2 s, 4 s … between tries.
fn backoff(tries: u32) -> Duration {
    Duration::from_secs(1u64 << tries.min(9))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    #[test]
    fn answers_are_judged_as_push_services_mean_them() {
        let none = HeaderMap::new();
        assert_eq!(judge(201, &none), Tried::Sent);
        assert_eq!(judge(410, &none), Tried::Gone);
        assert_eq!(judge(404, &none), Tried::Gone);
        assert_eq!(judge(413, &none), Tried::Refused(413));
        assert_eq!(judge(503, &none), Tried::Again(None));
        let mut later = HeaderMap::new();
        later.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(judge(429, &later), Tried::Again(Some(Duration::from_secs(7))));
        let date = (chrono::Utc::now() + chrono::TimeDelta::seconds(90)).to_rfc2822();
        later.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        let Tried::Again(Some(wait)) = judge(429, &later) else { panic!("a wait") };
        assert!(wait > Duration::from_secs(80) && wait <= Duration::from_secs(90), "{wait:?}");
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(40), Duration::from_secs(512));
    }
}
