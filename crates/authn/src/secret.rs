//! Loading the server secret API keys are hashed under.

use std::io::Write;
use std::path::Path;

use portcullis_config::runtime::SecretSource;

use crate::apikey::KeySecret;

/// Reads a shared secret that must already exist (a JWT HS secret): at
/// least 32 bytes, from a file or hex in an environment variable.
pub fn load_bytes(source: &SecretSource) -> Result<Vec<u8>, String> {
    let key = match source {
        SecretSource::File(p) => {
            let bytes = std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
            KeySecret::new(bytes).map_err(|e| format!("{}: {e}", p.display()))?
        }
        other => load(other)?,
    };
    Ok(key.as_bytes().to_vec())
}

/// Reads a credential the gateway presents elsewhere (a client secret),
/// whatever its length: the file's first line, or the variable's value.
pub fn load_text(source: &SecretSource) -> Result<String, String> {
    let text = match source {
        SecretSource::File(p) => {
            std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))?
        }
        SecretSource::Env(v) => {
            std::env::var(v).map_err(|_| format!("the environment variable {v} is not set"))?
        }
        SecretSource::Ephemeral => return Err("no secret is configured".into()),
    };
    Ok(text.lines().next().unwrap_or("").to_owned())
}

/// Reads (or, for a missing file, creates) the key-hashing secret.
pub fn load(source: &SecretSource) -> Result<KeySecret, String> {
    match source {
        SecretSource::Ephemeral => KeySecret::generate().map_err(|e| e.to_string()),
        SecretSource::Env(var) => {
            let text = std::env::var(var)
                .map_err(|_| format!("the environment variable {var} is not set"))?;
            let bytes = hex(text.trim())
                .ok_or_else(|| format!("{var} must hold hex digits (64 or more)"))?;
            KeySecret::new(bytes).map_err(|e| format!("{var}: {e}"))
        }
        SecretSource::File(path) => match std::fs::read(path) {
            Ok(bytes) => KeySecret::new(bytes).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        },
    }
}

/// Creates the secret file with fresh random bytes, readable by its owner
/// only. `create_new` makes two processes starting at once agree: the
/// loser reads the winner's file.
fn create(path: &Path) -> Result<KeySecret, String> {
    let secret = KeySecret::generate().map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(secret.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let bytes =
                std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            KeySecret::new(bytes).map_err(|e| format!("{}: {e}", path.display()))
        }
        Err(e) => Err(format!("creating {}: {e}", path.display())),
    }
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            let d = |c: u8| char::from(c).to_digit(16);
            match p {
                [a, b] => Some(u8::try_from(d(*a)? * 16 + d(*b)?).ok()?),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_created_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.key");
        let src = SecretSource::File(path.clone());
        let first = load(&src).unwrap();
        let again = load(&src).unwrap();
        assert_eq!(first.as_bytes(), again.as_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        assert!(load(&src).unwrap_err().contains("at least 32 bytes"));
    }

    #[test]
    fn hex_secrets_are_decoded_and_checked() {
        assert_eq!(hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(hex("0g"), None);
        assert_eq!(hex("abc"), None);
    }
}
