//! Checkpoints in the C2SP tlog-checkpoint format, signed as C2SP signed notes.
//!
//! A checkpoint's text is `origin\nsize\nbase64(root)\n`. The signed note appends a blank
//! line and one signature line per key: `— name base64(key id ‖ Ed25519 signature)\n`, the
//! signature being over the text (with its final newline).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use signing::{check_key_name, Signer, Verifier};

use super::merkle::Hash;
use super::LogError;

/// The em dash that starts a signature line.
const DASH: &str = "\u{2014}";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The checkpoint text that is signed.
    pub fn text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    /// Parses checkpoint text (without signatures).
    pub fn parse_text(text: &str) -> Result<Self, LogError> {
        let body = text.strip_suffix('\n').ok_or(LogError::Malformed("text must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or(LogError::Malformed("no origin"))?;
        let size = lines
            .next()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s.len() == 1 || !s.starts_with('0')))
            .and_then(|s| s.parse().ok())
            .ok_or(LogError::Malformed("size is not a decimal number"))?;
        let root: Hash = lines
            .next()
            .and_then(|r| B64.decode(r).ok())
            .and_then(|r| r.try_into().ok())
            .ok_or(LogError::Malformed("root is not 32 base64 bytes"))?;
        // Extension lines may follow; we write none and ignore any.
        Ok(Self { origin: origin.to_owned(), size, root })
    }

    /// The signed note of this checkpoint by `signer`, whose key is named `name`.
    pub fn sign(&self, name: &str, signer: &dyn Signer) -> String {
        let text = self.text();
        let mut sig = signer.key_id().to_vec();
        sig.extend_from_slice(&signer.sign(text.as_bytes()));
        format!("{text}\n{DASH} {name} {}\n", B64.encode(sig))
    }
}

/// Opens a signed checkpoint note, requiring a valid signature by one of `keys` (each with its
/// key name), and returns the checkpoint.
pub fn open_note(note: &str, keys: &[(&str, &dyn Verifier)]) -> Result<Checkpoint, LogError> {
    let (text, sigs) = note.split_once("\n\n").ok_or(LogError::Malformed("no blank line before signatures"))?;
    let text = format!("{text}\n");
    let checkpoint = Checkpoint::parse_text(&text)?;
    if !sigs.ends_with('\n') {
        return Err(LogError::Malformed("signatures must end with a newline"));
    }
    let mut verified = false;
    for line in sigs.lines() {
        let rest = line
            .strip_prefix(DASH)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or(LogError::Malformed("bad signature line"))?;
        let (name, b64) = rest.split_once(' ').ok_or(LogError::Malformed("bad signature line"))?;
        check_key_name(name).map_err(|_| LogError::Malformed("bad key name"))?;
        let raw = B64.decode(b64).map_err(|_| LogError::Malformed("signature is not base64"))?;
        if raw.len() < 4 {
            return Err(LogError::Malformed("signature too short"));
        }
        let (id, sig) = raw.split_at(4);
        for (key_name, key) in keys {
            if *key_name == name && key.key_id() == id {
                if let Ok(sig) = <[u8; 64]>::try_from(sig) {
                    verified |= key.verify(text.as_bytes(), &sig);
                }
            }
        }
    }
    if verified {
        Ok(checkpoint)
    } else {
        Err(LogError::Unverified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signing::Ed25519Signer;

    #[test]
    fn signed_checkpoint_opens_and_tampering_is_caught() {
        let s = Ed25519Signer::generate("example.org/log".into()).unwrap();
        let v = s.verifier();
        let c = Checkpoint { origin: "example.org/log".into(), size: 42, root: [7; 32] };
        let note = c.sign(s.name(), &s);
        assert!(note.starts_with(
            "example.org/log\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n\u{2014} example.org/log "
        ));
        assert_eq!(open_note(&note, &[(v.name(), &v)]).unwrap(), c);
        let tampered = note.replacen("\n42\n", "\n43\n", 1);
        assert_eq!(open_note(&tampered, &[(v.name(), &v)]), Err(LogError::Unverified));
        let other = Ed25519Signer::generate("example.org/log".into()).unwrap().verifier();
        assert_eq!(open_note(&note, &[(other.name(), &other)]), Err(LogError::Unverified));
    }

    #[test]
    fn checkpoint_text_is_strict() {
        assert!(Checkpoint::parse_text("o\n01\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n").is_err());
        assert!(Checkpoint::parse_text("o\n1\nshort\n").is_err());
        assert!(Checkpoint::parse_text("o\n1\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=").is_err());
    }
}
