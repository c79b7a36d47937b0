//! Encryption at rest of connection secrets. A copy or dump of the metadata
//! database must not give away the passwords of the warehouses and clusters
//! it names, so secrets are sealed with ChaCha20-Poly1305 under a 256-bit
//! key kept outside the database, in a key file (as Grafana's `secret_key`
//! or Airflow's Fernet key). Every value gets a random 96-bit nonce, and the
//! connection it belongs to is bound in as associated data, so a sealed
//! value copied onto another connection's row does not open.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

const NONCE_LEN: usize = 12;

/// The key that seals connection secrets.
#[derive(Clone)]
pub struct SecretKey(Key);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// How a key file must look, for the error messages.
const KEY_FORMAT: &str = "64 hex digits (a 256-bit key, e.g. from `openssl rand -hex 32`)";

impl SecretKey {
    pub fn generate() -> SecretKey {
        SecretKey(rand::random::<[u8; 32]>().into())
    }

    pub fn from_hex(text: &str) -> Result<SecretKey, String> {
        let bytes = hex::decode(text.trim()).map_err(|_| format!("expected {KEY_FORMAT}"))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| format!("expected {KEY_FORMAT}"))?;
        Ok(SecretKey(bytes.into()))
    }

    /// Reads the key file at `path`, or creates it (readable by its owner
    /// only) with a new key when there is none. Says whether it created it.
    pub fn load_or_create(path: &Path) -> anyhow::Result<(SecretKey, bool)> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let key = SecretKey::from_hex(&text)
                    .map_err(|e| anyhow::anyhow!("secret key file {}: {e}", path.display()))?;
                Ok((key, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SecretKey::generate();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options
                    .open(path)
                    .with_context(|| format!("cannot create the secret key file {}", path.display()))?;
                writeln!(file, "{}", hex::encode(key.0))
                    .with_context(|| format!("cannot write the secret key file {}", path.display()))?;
                Ok((key, true))
            }
            Err(e) => Err(e).with_context(|| format!("cannot read the secret key file {}", path.display())),
        }
    }

    /// Seals `plaintext` for `context` (what it belongs to): hex of the
    /// nonce followed by the ciphertext and its tag.
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let payload = Payload { msg: plaintext.as_bytes(), aad: context.as_bytes() };
        let sealed = ChaCha20Poly1305::new(&self.0)
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("ChaCha20-Poly1305 seals any message shorter than 256 GiB");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        hex::encode(out)
    }

    /// Opens what `seal` made for the same `context`; `None` when the key
    /// or the context differ, or the value was altered.
    pub fn open(&self, sealed: &str, context: &str) -> Option<String> {
        let bytes = hex::decode(sealed).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let payload = Payload { msg: ciphertext, aad: context.as_bytes() };
        let plaintext = ChaCha20Poly1305::new(&self.0).decrypt(Nonce::from_slice(nonce), payload).ok()?;
        String::from_utf8(plaintext).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_context() {
        let key = SecretKey::generate();
        let sealed = key.seal("hunter2", "p1/warehouse");
        assert!(!sealed.contains(&hex::encode("hunter2")), "the plaintext is not in the sealed value");
        assert_eq!(key.open(&sealed, "p1/warehouse").as_deref(), Some("hunter2"));
        assert_eq!(key.open(&sealed, "p1/events"), None, "another connection's row");
        assert_eq!(SecretKey::generate().open(&sealed, "p1/warehouse"), None, "another key");
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(key.open(std::str::from_utf8(&altered).unwrap(), "p1/warehouse"), None, "an altered value");
        assert_eq!(key.open("not hex", "p1/warehouse"), None);
    }

    #[test]
    fn sealing_twice_gives_different_values() {
        let key = SecretKey::generate();
        assert_ne!(key.seal("same", "c"), key.seal("same", "c"), "each seal has its own nonce");
    }

    #[test]
    fn the_key_file_is_created_once_for_its_owner_and_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let (key, created) = SecretKey::load_or_create(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (again, created) = SecretKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again.open(&key.seal("s", "c"), "c").as_deref(), Some("s"), "the same key is read back");
    }

    #[test]
    fn a_malformed_key_file_says_what_a_key_looks_like() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        std::fs::write(&path, "abc\n").unwrap();
        let error = SecretKey::load_or_create(&path).unwrap_err().to_string();
        assert!(error.contains("secret.key") && error.contains("64 hex digits"), "{error}");
    }
}
