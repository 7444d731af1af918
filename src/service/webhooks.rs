//! Webhooks: each downstream system registered with a `webhook_url` gets its events pushed,
//! one request per event in seq order, signed in the Standard Webhooks form (`webhook-id`:
//! the event's id, `webhook-timestamp`, `webhook-signature`: `v1,` and base64 HMAC-SHA256
//! over `id.timestamp.body` under the system's `whsec_` secret). A failed delivery (no answer,
//! or not 2xx) is retried with exponential backoff, never skipped: the next event waits. The
//! position of each system is kept in the data directory after every delivery, so a restart
//! resumes there (delivery is at least once: receivers deduplicate by `webhook-id`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Service, ServiceError};
use domain::{ControllerId, Token};
use format::Receipt;
use tokens::TokenUse;

/// The first retry waits this long; each next one twice as long, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Events read per step of a system's feed.
const PAGE: usize = 100;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The Standard Webhooks `webhook-signature` value of one message.
pub fn webhook_signature(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", b64().encode(mac.finalize().into_bytes()))
}

impl Service {
    /// The raw secret of a system's webhook: derived from the ledger's token key and the
    /// system's first registration, so every node has the same one without storing it.
    fn webhook_key(&self, controller: &ControllerId, system: &Token) -> Result<Vec<u8>, ServiceError> {
        let rows =
            self.projections().downstream(controller, system)?.ok_or(ServiceError::NotFound("downstream system"))?;
        if rows.current.system.webhook_url.is_none() {
            return Err(ServiceError::NotFound("webhook"));
        }
        let tag =
            self.ledger.tokens().tag(TokenUse::WebhookSecret, &format!("{controller}\0{system}\0{}", rows.first_seq));
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| ServiceError::Internal("a webhook secret did not decode".into()))
    }

    /// A system's webhook secret in the Standard Webhooks form (`whsec_` and base64), for its
    /// receiver to verify deliveries with.
    pub fn webhook_secret(&self, controller: &ControllerId, system: &Token) -> Result<String, ServiceError> {
        Ok(format!("whsec_{}", b64().encode(self.webhook_key(controller, system)?)))
    }

    /// Delivers every system's webhooks until the process ends: one task per system with a
    /// webhook, started when it appears.
    pub async fn deliver_webhooks(self: Arc<Self>) {
        let client = match reqwest::Client::builder().timeout(Duration::from_secs(30)).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "webhooks cannot start: no HTTP client");
                return;
            }
        };
        let mut running: HashMap<(ControllerId, Token), tokio::task::JoinHandle<()>> = HashMap::new();
        let mut rx = self.subscribe();
        loop {
            match self.projections().downstream_systems(None) {
                Ok(systems) => {
                    for (controller, sv) in systems {
                        let key = (controller.clone(), sv.system.id.clone());
                        let live = running.get(&key).is_some_and(|h| !h.is_finished());
                        if sv.system.webhook_url.is_some() && !live {
                            let (service, client) = (self.clone(), client.clone());
                            running.insert(key, tokio::spawn(service.deliver_to(client, controller, sv.system.id)));
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "webhooks: reading the systems failed"),
            }
            // New registrations are events: look again when the log grows (or every 5 s).
            if tokio::time::timeout(Duration::from_secs(5), rx.changed()).await.is_ok_and(|r| r.is_err()) {
                return;
            }
        }
    }

    fn cursor_path(&self, controller: &ControllerId, system: &Token) -> PathBuf {
        self.ledger.data_dir().webhooks().join(format!("{controller}.{system}.position"))
    }

    /// Delivers one system's events in order, for as long as it has a webhook.
    async fn deliver_to(self: Arc<Self>, client: reqwest::Client, controller: ControllerId, system: Token) {
        let path = self.cursor_path(&controller, &system);
        let mut after: u64 = std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
        let mut rx = self.subscribe();
        loop {
            let rows = match self.projections().downstream(&controller, &system) {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = %e, "webhooks: reading a system failed");
                    return;
                }
            };
            let Some(url) = rows.current.system.webhook_url.clone() else { return };
            let (Ok(page), Ok(key)) =
                (self.downstream_feed(&controller, &system, after, PAGE), self.webhook_key(&controller, &system))
            else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            for r in &page.events {
                self.deliver_one(&client, &url, &key, r).await;
                after = r.seq;
                if let Err(e) = write_position(&path, after) {
                    tracing::error!(error = %e, "webhooks: could not keep a system's position");
                }
            }
            if page.next_after > after {
                after = page.next_after;
                let _ = write_position(&path, after);
            }
            if !page.has_more
                && tokio::time::timeout(Duration::from_secs(5), rx.changed()).await.is_ok_and(|r| r.is_err())
            {
                return;
            }
        }
    }

    /// Posts one event until the receiver answers 2xx, backing off between tries.
    async fn deliver_one(&self, client: &reqwest::Client, url: &str, key: &[u8], r: &Receipt) {
        let body = serde_json::json!({
            "type": r.event.kind.as_str(),
            "timestamp": format::timestamp::format(&r.event.recorded_at),
            "data": r,
        })
        .to_string();
        let id = r.event.id.to_string();
        let mut wait = FIRST_BACKOFF;
        loop {
            let now = chrono::Utc::now().timestamp();
            let sent = client
                .post(url)
                .header("content-type", "application/json")
                .header("webhook-id", &id)
                .header("webhook-timestamp", now.to_string())
                .header("webhook-signature", webhook_signature(key, &id, now, body.as_bytes()))
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => {
                    metrics::METRICS.webhook_delivered(true);
                    return;
                }
                Ok(resp) => tracing::warn!(status = resp.status().as_u16(), seq = r.seq, "webhook refused; retrying"),
                Err(e) => tracing::warn!(error = %e.without_url(), seq = r.seq, "webhook not delivered; retrying"),
            }
            metrics::METRICS.webhook_delivered(false);
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_BACKOFF);
        }
    }
}

fn write_position(path: &std::path::Path, seq: u64) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{seq}\n"))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    signing::sync_parent(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_standard_webhooks_one() {
        // The Standard Webhooks specification's example: secret
        // `whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw`, id `msg_p5jXN8AQM9LWM0D4loKWxJek`,
        // timestamp 1614265330, body `{"test": 2432232314}`.
        let key = b64().decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = webhook_signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
