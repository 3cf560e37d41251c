//! SHA-256 as the project reports it: lowercase hex. One helper for every
//! caller (inline bytes in DIFF, files hashed over SFTP by DIFF and BMX5,
//! the relay's copy check), so a hash computed on one path always compares
//! equal to the same bytes hashed on another.

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes read per chunk by [`sha256_reader`]: memory stays bounded whatever
/// the size of what is hashed.
pub const HASH_CHUNK: usize = 64 * 1024;

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut h = Sha256Hex::new();
    h.update(bytes);
    h.finish()
}

/// An incremental SHA-256 for bytes that arrive in chunks (a copy that
/// hashes what it reads as it goes).
#[derive(Default)]
pub struct Sha256Hex(Sha256);

impl Sha256Hex {
    /// An empty hash.
    pub fn new() -> Self {
        Sha256Hex(Sha256::new())
    }

    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The hash of everything added, lowercase hex.
    pub fn finish(self) -> String {
        format!("{:x}", self.0.finalize())
    }
}

/// Reads `reader` to its end in [`HASH_CHUNK`] pieces and returns the
/// SHA-256 (lowercase hex) and the length. `on_chunk` hears every piece's
/// length (a caller that shows progress while verifying).
pub async fn sha256_reader<R: AsyncRead + Unpin>(
    mut reader: R,
    mut on_chunk: impl FnMut(usize),
) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256Hex::new();
    let mut buf = vec![0u8; HASH_CHUNK];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
        on_chunk(n);
    }
    Ok((hasher.finish(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_of_nothing_is_the_known_empty_digest() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hashing_in_pieces_equals_hashing_at_once() {
        let mut h = Sha256Hex::new();
        h.update(b"one\n");
        h.update(b"two\n");
        assert_eq!(h.finish(), sha256_hex(b"one\ntwo\n"));
    }

    #[tokio::test]
    async fn a_reader_is_hashed_in_chunks_and_its_length_counted() {
        let data = vec![7u8; HASH_CHUNK * 2 + 5];
        let mut chunks = 0;
        let (hash, len) = sha256_reader(&data[..], |_| chunks += 1).await.unwrap();
        assert_eq!(hash, sha256_hex(&data));
        assert_eq!(len, data.len() as u64);
        assert!(chunks >= 3, "{chunks}");
    }
}
