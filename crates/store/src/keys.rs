//! The deployment's secret key (it seals Meta's tokens and app secrets at rest): from
//! `WAGROUPS_SECRET_KEY`, or from a key file beside the SQLite database created on first use
//! (mode 0600). The database keeps a value sealed with the key, so a replaced or lost key is
//! a clear error at start, never secrets that silently fail to open.

use std::path::PathBuf;

use wagroups_core::{
    secret::{KEY_CHECK_SETTING, Sealed, SecretKey},
    store::Store,
};

use crate::db::file_of;

/// Where a key came from (named in errors and logs; never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Env => f.write_str("WAGROUPS_SECRET_KEY"),
            KeySource::File(p) => write!(f, "the key file {}", p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{from} is not a usable secret key: {reason}")]
    Unreadable { from: KeySource, reason: String },
    #[error(
        "{from} does not open this database's secrets: they were sealed with another key. Set WAGROUPS_SECRET_KEY to the key they were sealed with (or restore its key file)"
    )]
    WrongKey { from: KeySource },
    #[error(
        "this database holds sealed secrets but no secret key was found: set WAGROUPS_SECRET_KEY, or restore the key file {}",
        .file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "beside the database".into())
    )]
    Missing { file: Option<PathBuf> },
    #[error("could not write the key file {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] wagroups_core::store::StoreError),
}

/// The key file of the SQLite database at `database_url`: `wagroups.db` has `wagroups.db.key`.
pub fn key_file(database_url: &str) -> Option<PathBuf> {
    let path = file_of(database_url).ok()?;
    let mut name = path.file_name()?.to_os_string();
    name.push(".key");
    Some(path.with_file_name(name))
}

/// The deployment's key: `env` (the value of `WAGROUPS_SECRET_KEY`) or the key file beside
/// the database. With `create`, a deployment that has none gets one (a new key file, mode
/// 0600) and the database records its check value; without it, `None` means no key and no
/// sealed secrets.
pub async fn secret_key(
    store: &dyn Store,
    database_url: &str,
    env: Option<&str>,
    create: bool,
) -> Result<Option<SecretKey>, KeyError> {
    let file = key_file(database_url);
    let given = match env.map(str::trim).filter(|v| !v.is_empty()) {
        Some(text) => Some((
            SecretKey::from_text(text).map_err(|e| KeyError::Unreadable {
                from: KeySource::Env,
                reason: e.to_string(),
            })?,
            KeySource::Env,
        )),
        None => match &file {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(path).map_err(|e| KeyError::Unreadable {
                    from: KeySource::File(path.clone()),
                    reason: e.to_string(),
                })?;
                Some((
                    SecretKey::from_text(&text).map_err(|e| KeyError::Unreadable {
                        from: KeySource::File(path.clone()),
                        reason: e.to_string(),
                    })?,
                    KeySource::File(path.clone()),
                ))
            }
            _ => None,
        },
    };
    let check = store.setting(KEY_CHECK_SETTING).await?.map(Sealed::from_stored);
    match (check, given) {
        (Some(check), Some((key, source))) => {
            if key.opens_key_check(&check) {
                Ok(Some(key))
            } else {
                Err(KeyError::WrongKey { from: source })
            }
        }
        (Some(_), None) => Err(KeyError::Missing { file }),
        (None, Some((key, source))) => {
            if create {
                record_check(store, &key, source).await?;
            }
            Ok(Some(key))
        }
        (None, None) if create => {
            let Some(path) = file else {
                return Err(KeyError::Missing { file: None });
            };
            let key = SecretKey::generate();
            write_key_file(&path, &key)?;
            record_check(store, &key, KeySource::File(path.clone())).await?;
            tracing::info!(file = %path.display(), "created the secret key file (keep it with the database's backups)");
            Ok(Some(key))
        }
        (None, None) => Ok(None),
    }
}

async fn record_check(store: &dyn Store, key: &SecretKey, source: KeySource) -> Result<(), KeyError> {
    store
        .put_setting_if_absent(KEY_CHECK_SETTING, key.key_check().as_stored())
        .await?;
    // Another process may have recorded its own key first: this one must be it.
    match store.setting(KEY_CHECK_SETTING).await?.map(Sealed::from_stored) {
        Some(check) if key.opens_key_check(&check) => Ok(()),
        _ => Err(KeyError::WrongKey { from: source }),
    }
}

fn write_key_file(path: &std::path::Path, key: &SecretKey) -> Result<(), KeyError> {
    use std::io::Write as _;
    let err = |e: std::io::Error| KeyError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(format!("{}\n", key.to_text()).as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)
}
