//! Ed25519 batch verification for a log signed by few keys.
//!
//! The batch equation of ed25519-dalek's `verify_batch`, with random 128-bit weights `z`:
//! `-(Σ z·s)·B + Σ z·R + Σ (z·h)·A == 0`, where `h = SHA-512(R ‖ A ‖ M)`. A ledger's events are
//! signed by one key (a few after rotations), so the terms of one key are added up first:
//! `Σ (z·h)·A` becomes `(Σ z·h)·A` per distinct key, and the multiscalar multiplication has
//! n + 1 + keys points instead of 2n + 1, about half the work. The weights come from the
//! thread's CSPRNG, so no one who chooses the signatures can choose them too.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::{Signature, VerifyingKey};
use rand::RngCore;
use sha2::{Digest, Sha512};

/// Whether every signature verifies for its message and key, all at once. `false` when the
/// lengths differ, a signature is malformed (an `s` not reduced, an `R` not on the curve) or
/// any one does not verify: then check them one by one (`verify_strict`) to find which.
pub fn verify_batch(messages: &[&[u8]], signatures: &[Signature], keys: &[VerifyingKey]) -> bool {
    if messages.len() != signatures.len() || keys.len() != signatures.len() {
        return false;
    }
    let mut rng = rand::thread_rng();
    let mut distinct: Vec<(&VerifyingKey, Scalar)> = Vec::new();
    let mut b_coefficient = Scalar::ZERO;
    let mut scalars: Vec<Scalar> = Vec::with_capacity(signatures.len() + 4);
    let mut points: Vec<EdwardsPoint> = Vec::with_capacity(signatures.len() + 4);
    scalars.push(Scalar::ZERO); // the base point's, known at the end
    points.push(ED25519_BASEPOINT_POINT);
    for ((message, signature), key) in messages.iter().zip(signatures).zip(keys) {
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(*signature.s_bytes())) else {
            return false;
        };
        let Some(r) = CompressedEdwardsY(*signature.r_bytes()).decompress() else {
            return false;
        };
        let mut h = Sha512::new();
        h.update(signature.r_bytes());
        h.update(key.as_bytes());
        h.update(message);
        let mut wide = [0u8; 64];
        wide.copy_from_slice(&h.finalize());
        let hram = Scalar::from_bytes_mod_order_wide(&wide);
        let mut z = [0u8; 16];
        rng.fill_bytes(&mut z);
        let z = Scalar::from(u128::from_le_bytes(z));
        b_coefficient += z * s;
        scalars.push(z);
        points.push(r);
        match distinct.iter_mut().find(|(k, _)| k.as_bytes() == key.as_bytes()) {
            Some((_, sum)) => *sum += z * hram,
            None => distinct.push((key, z * hram)),
        }
    }
    scalars[0] = -b_coefficient;
    for (key, sum) in distinct {
        scalars.push(sum);
        points.push(key.to_edwards());
    }
    EdwardsPoint::vartime_multiscalar_mul(&scalars, &points).is_identity()
}

/// The positions of the signatures that do not verify, in order: none when the batch
/// verifies at once; otherwise each is checked alone (`verify_strict`) to tell which.
pub fn failing_signatures(messages: &[&[u8]], signatures: &[Signature], keys: &[VerifyingKey]) -> Vec<usize> {
    if verify_batch(messages, signatures, keys) {
        return Vec::new();
    }
    let alone = messages.iter().zip(signatures).zip(keys).map(|((m, s), k)| k.verify_strict(m, s).is_ok());
    let mut failing: Vec<usize> = alone.enumerate().filter(|(_, ok)| !ok).map(|(i, _)| i).collect();
    // Lengths that differ: what has no partner fails too.
    let (paired, longest) =
        (messages.len().min(signatures.len()).min(keys.len()), messages.len().max(signatures.len()).max(keys.len()));
    failing.extend(paired..longest);
    failing
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    /// `n` messages signed in turn by `keys` distinct keys.
    fn signed(n: usize, keys: usize) -> (Vec<Vec<u8>>, Vec<Signature>, Vec<VerifyingKey>) {
        let signers: Vec<SigningKey> = (0..keys).map(|k| key(k as u8 + 1)).collect();
        let msgs: Vec<Vec<u8>> = (0..n).map(|i| format!("event {i}").into_bytes()).collect();
        let sigs = msgs.iter().enumerate().map(|(i, m)| signers[i % keys].sign(m)).collect();
        let pks = (0..n).map(|i| signers[i % keys].verifying_key()).collect();
        (msgs, sigs, pks)
    }

    fn run(msgs: &[Vec<u8>], sigs: &[Signature], pks: &[VerifyingKey]) -> bool {
        let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        verify_batch(&refs, sigs, pks)
    }

    #[test]
    fn a_good_batch_verifies_with_one_key_or_several() {
        for keys in [1, 2, 5] {
            let (m, s, k) = signed(64, keys);
            assert!(run(&m, &s, &k), "{keys} keys");
        }
        assert!(run(&[], &[], &[]));
    }

    #[test]
    fn the_failing_signatures_are_named() {
        let (mut m, s, k) = signed(20, 2);
        let failing = |m: &[Vec<u8>]| {
            let refs: Vec<&[u8]> = m.iter().map(Vec::as_slice).collect();
            failing_signatures(&refs, &s, &k)
        };
        assert!(failing(&m).is_empty());
        m[3].push(b'!');
        m[17].push(b'!');
        assert_eq!(failing(&m), vec![3, 17]);
        assert_eq!(failing(&m[..19]), vec![3, 17, 19], "a signature without its message fails");
    }

    #[test]
    fn a_malformed_signature_or_mismatched_lengths_fail() {
        let (m, mut s, k) = signed(8, 1);
        assert!(!run(&m[..7], &s, &k));
        // s with its top bits set is not a reduced scalar.
        let mut bytes = s[3].to_bytes();
        bytes[63] |= 0xf0;
        s[3] = Signature::from_bytes(&bytes);
        assert!(!run(&m, &s, &k));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Changing any one message, signature byte or key makes the batch fail, as
        /// ed25519-dalek's own batch verification says; untouched, both accept it.
        #[test]
        fn agrees_with_ed25519_dalek(n in 1usize..40, keys in 1usize..4, which in 0usize..40, what in 0u8..3, bit in 0usize..512) {
            let (mut m, mut s, mut k) = signed(n, keys);
            let which = which % n;
            match what {
                0 => m[which].push(b'!'),
                1 => {
                    let mut bytes = s[which].to_bytes();
                    bytes[bit / 8] ^= 1 << (bit % 8);
                    s[which] = Signature::from_bytes(&bytes);
                }
                _ => k[which] = key(200).verifying_key(),
            }
            let refs: Vec<&[u8]> = m.iter().map(Vec::as_slice).collect();
            let theirs = ed25519_dalek::verify_batch(&refs, &s, &k).is_ok();
            prop_assert!(!theirs);
            prop_assert_eq!(run(&m, &s, &k), theirs);
        }
    }
}
