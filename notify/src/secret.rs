//! Secrets read from files (mounted Kubernetes Secrets) when a notification is sent.

use std::path::Path;

use crate::error::NotifyError;

/// A secret file larger than this is refused: it is not a token, and reading it whole on
/// every send would be costly.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Reads a secret, without its trailing newline and whitespace. The error names the file,
/// never its contents.
pub(crate) async fn read(path: &Path) -> Result<String, NotifyError> {
    let err = |reason: String| NotifyError::Secret {
        path: path.to_path_buf(),
        reason,
    };
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| err(e.kind().to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    if meta.len() > MAX_SECRET_BYTES {
        return Err(err(format!("larger than {MAX_SECRET_BYTES} bytes")));
    }
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| err(e.kind().to_string()))?;
    // The contents are not quoted in the error: a secret with a bad byte is still secret.
    let text = String::from_utf8(bytes).map_err(|_| err("not UTF-8 text".into()))?;
    let value = text.trim_end();
    if value.is_empty() {
        return Err(err("empty".into()));
    }
    Ok(value.to_owned())
}

/// `text` with every secret value blanked out, for errors that quote a peer's answer.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s, "[secret]");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trims_the_final_newline_and_names_only_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "s3cr3t-value\n").unwrap();
        assert_eq!(read(&f).await.unwrap(), "s3cr3t-value");

        std::fs::write(&f, "\n").unwrap();
        let e = read(&f).await.unwrap_err().to_string();
        assert!(e.contains("token") && e.contains("empty"), "{e}");

        std::fs::write(&f, b"s3cr3t\xff-value").unwrap();
        let e = read(&f).await.unwrap_err().to_string();
        assert!(!e.contains("s3cr3t"), "{e}");

        let missing = read(&dir.path().join("missing"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("missing") && missing.contains("not found"),
            "{missing}"
        );
    }

    #[test]
    fn redacts_every_occurrence() {
        assert_eq!(
            redact("got Bearer abcd1234, echo abcd1234", &["abcd1234"]),
            "got Bearer [secret], echo [secret]"
        );
    }
}
