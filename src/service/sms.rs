//! Texts from people: what an SMS keyword records, and the providers' own proof that a
//! webhook came from them (Twilio's `X-Twilio-Signature`, when the controller has configured
//! its Twilio auth token with `consent-ledger sms twilio-token`).

use std::path::PathBuf;

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};

use super::{ContactInput, EventInput, Service, ServiceError};
use domain::{Channel, ContactPoint, ControllerId, EventType, Method};
use format::{derived_id, Receipt};
use ledger::DataDir;

/// The file of a controller's Twilio auth token in a data directory (mode 0600).
fn twilio_token_path(dir: &DataDir, controller: &ControllerId) -> PathBuf {
    dir.providers().join(format!("{controller}.twilio-token"))
}

/// Sets (or with `None` removes) the Twilio auth token of a controller: from then on a form
/// posted to the SMS webhook for it must carry a valid `X-Twilio-Signature`.
pub fn set_twilio_token(dir: &DataDir, controller: &ControllerId, token: Option<&str>) -> std::io::Result<()> {
    let path = twilio_token_path(dir, controller);
    let _ = std::fs::remove_file(&path);
    if let Some(token) = token {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        signing::write_secret_file(&path, token.trim().as_bytes())?;
    }
    signing::sync_parent(&path)
}

/// Twilio's signature of a webhook (its "validating requests" algorithm): base64 of
/// HMAC-SHA1, keyed by the auth token, over the full URL Twilio called followed by every
/// posted parameter's name and value, sorted by name.
pub fn twilio_signature(token: &[u8], url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(token).expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl Service {
    /// Records what an SMS keyword asks for (`objection.raised` for STOP, `.lifted` for
    /// START) against the sending number, scoped to SMS. The provider's message id makes a
    /// retried delivery record nothing new.
    pub async fn sms_keyword(
        &self,
        controller: &ControllerId,
        from: ContactPoint,
        kind: EventType,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Receipt, ServiceError> {
        let id = Some(derived_id(format!("sms\0{controller}\0{message_id}").as_bytes()));
        let mut input = EventInput::by_contact(id, kind, ContactInput::Address(from), Channel::Sms, Method::SmsKeyword);
        input.recorded_by = super::Recorder::SmsProvider.token();
        self.record(controller, vec![input], now)
            .await?
            .pop()
            .ok_or_else(|| ServiceError::Internal("no receipt".into()))
    }

    /// Checks a Twilio webhook's signature when the controller has configured its auth
    /// token; without one, a form is taken on the webhook secret alone.
    pub fn check_twilio_signature(
        &self,
        controller: &ControllerId,
        url: &str,
        params: &[(String, String)],
        signature: Option<&str>,
    ) -> Result<(), ServiceError> {
        let token = match self.ledger.shared_records() {
            // A database ledger: the token every node shares; unreadable is not "none set".
            Some(db) => match db.provider_token(controller.as_str(), "twilio") {
                Ok(Some(token)) => token,
                Ok(None) => return Ok(()),
                Err(e) => {
                    static UNREADABLE: metrics::Throttle = metrics::Throttle::every_secs(10);
                    if let Some(left_out) = UNREADABLE.due() {
                        tracing::warn!(error = %e, left_out, "could not read the Twilio token (at most one warning in 10 s; left_out: since the last)");
                    }
                    return Err(ServiceError::NotYet("the provider's settings cannot be read now; retry shortly"));
                }
            },
            None => match std::fs::read(twilio_token_path(&self.ledger.data_dir(), controller)) {
                Ok(token) => token,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(ServiceError::Io(e)),
            },
        };
        let want = twilio_signature(&token, url, params);
        let got = signature.unwrap_or_default().trim();
        // Constant-time comparison.
        let same = want.len() == got.len() && want.bytes().zip(got.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if same {
            Ok(())
        } else {
            Err(ServiceError::Unauthenticated("the X-Twilio-Signature does not match this request"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_signature_matches_twilios_documented_example() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .rev()
        .collect();
        let sig = twilio_signature(b"12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params);
        assert_eq!(sig, "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    }
}
