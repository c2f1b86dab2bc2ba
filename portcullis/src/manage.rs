//! `portcullis consumers ...` and `portcullis keys ...`: credential
//! management on the store a configuration file names. A running gateway
//! picks the changes up within a second.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use clap::Subcommand;
use portcullis_authn::AuthServices;
use portcullis_authn::manage::{self, KeyRequest, KeyView};
use portcullis_config::file::DurationStr;
use portcullis_config::runtime::StoreLocation;
use portcullis_store::Store;

#[derive(Subcommand)]
pub enum ConsumersCommand {
    /// Create a consumer.
    Create {
        #[arg(long, short)]
        config: PathBuf,
        /// A unique name, like billing-service.
        name: String,
        /// A group or role (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// A metadata entry key=value (repeatable).
        #[arg(long = "meta")]
        metadata: Vec<String>,
    },
    /// List consumers.
    List {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Delete a consumer with all its credentials.
    Delete {
        #[arg(long, short)]
        config: PathBuf,
        /// Its name or id.
        consumer: String,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create an API key; it is printed once and never stored.
    Create {
        #[arg(long, short)]
        config: PathBuf,
        /// The consumer's name or id.
        #[arg(long)]
        consumer: String,
        #[arg(long)]
        label: Option<String>,
        /// A scope the key grants (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Lifetime, like 90d or 12h. Default: no expiry.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long, short)]
        config: PathBuf,
        /// Only this consumer's keys.
        #[arg(long)]
        consumer: Option<String>,
    },
    /// Replace a key: a new key with the same consumer, label and scopes;
    /// the old one keeps working for the overlap.
    Rotate {
        #[arg(long, short)]
        config: PathBuf,
        /// The key's id (the part after the prefix).
        key_id: String,
        /// How long the old key keeps working, like 1h. Default: 0s.
        #[arg(long, default_value = "0s")]
        overlap: String,
    },
    /// Revoke a key at once.
    Revoke {
        #[arg(long, short)]
        config: PathBuf,
        key_id: String,
    },
}

#[derive(Subcommand)]
pub enum BasicCommand {
    /// Set a consumer's HTTP Basic username and password; the password is
    /// read from standard input (never the command line) and stored only as
    /// an argon2id hash.
    Set {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        consumer: String,
        #[arg(long)]
        username: String,
    },
    /// Remove a Basic username.
    Delete {
        #[arg(long, short)]
        config: PathBuf,
        username: String,
    },
}

pub fn basic(cmd: BasicCommand) -> anyhow::Result<()> {
    match cmd {
        BasicCommand::Set {
            config,
            consumer,
            username,
        } => {
            let (s, _) = open(&config)?;
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            manage::set_password(store(&s)?, &consumer, &username, password)?;
            eprintln!("set the password of {username} ({consumer})");
        }
        BasicCommand::Delete { config, username } => {
            let (s, _) = open(&config)?;
            store(&s)?.delete_basic(&username)?;
            eprintln!("deleted {username}");
        }
    }
    Ok(())
}

/// The store and key secret a configuration file names.
fn open(config: &Path) -> anyhow::Result<(std::sync::Arc<AuthServices>, String)> {
    let cfg = portcullis_config::load(config)
        .map_err(|e| anyhow!("the configuration does not compile\n{e}"))?;
    let mut settings = cfg.authentication.clone();
    if settings.store == StoreLocation::Memory {
        bail!(
            "the configured store is in memory: it lives in the gateway process; use the admin API"
        );
    }
    // Even when no route takes stored credentials yet: keys can exist
    // before routes use them.
    settings.store_in_use = true;
    // Lock-out state is the gateway's; the CLI needs none.
    settings.lockout = None;
    let services = AuthServices::open(&settings, None).map_err(|e| anyhow!(e))?;
    Ok((services, settings.key_prefix))
}

fn store(s: &AuthServices) -> anyhow::Result<&dyn Store> {
    Ok(s.snapshot
        .as_ref()
        .ok_or_else(|| anyhow!("no credential store"))?
        .store()
        .as_ref())
}

fn seconds(text: &str, what: &str) -> anyhow::Result<i64> {
    let d = DurationStr::parse(text)
        .ok_or_else(|| anyhow!("{what} \"{text}\" is not a duration (like 30s, 12h, 90d)"))?;
    Ok(i64::try_from(d.0.as_secs()).unwrap_or(i64::MAX))
}

fn time(t: Option<i64>) -> String {
    match t {
        Some(t) => portcullis_telemetry::rfc3339(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(t).unwrap_or(0)),
        ),
        None => "-".to_owned(),
    }
}

fn print_keys(keys: &[KeyView]) {
    println!(
        "{:<12} {:<20} {:<8} {:<22} {:<22} SCOPES",
        "ID", "CONSUMER", "STATUS", "CREATED", "EXPIRES"
    );
    for k in keys {
        println!(
            "{:<12} {:<20} {:<8} {:<22} {:<22} {}",
            k.id,
            k.consumer_id,
            k.status,
            time(Some(k.created_at)),
            time(k.expires_at),
            k.scopes.join(" ")
        );
    }
}

fn print_created(k: &manage::CreatedKey) {
    println!("{}", k.key);
    eprintln!(
        "key {} for consumer {}: shown once, store it now (only its keyed hash is kept){}",
        k.record.id,
        k.record.consumer_id,
        k.record
            .expires_at
            .map(|t| format!("; expires {}", time(Some(t))))
            .unwrap_or_default()
    );
}

pub fn consumers(cmd: ConsumersCommand) -> anyhow::Result<()> {
    match cmd {
        ConsumersCommand::Create {
            config,
            name,
            groups,
            metadata,
        } => {
            let (s, _) = open(&config)?;
            let mut meta = BTreeMap::new();
            for m in metadata {
                let (k, v) = m
                    .split_once('=')
                    .ok_or_else(|| anyhow!("metadata \"{m}\" is not key=value"))?;
                meta.insert(k.to_owned(), v.to_owned());
            }
            let c = manage::create_consumer(store(&s)?, &name, &groups, &meta)?;
            println!("{}", c.id);
        }
        ConsumersCommand::List { config } => {
            let (s, _) = open(&config)?;
            println!("{:<20} {:<24} GROUPS", "ID", "NAME");
            for c in store(&s)?.consumers()? {
                println!("{:<20} {:<24} {}", c.id, c.name, c.groups.join(","));
            }
        }
        ConsumersCommand::Delete { config, consumer } => {
            let (s, _) = open(&config)?;
            store(&s)?.delete_consumer(&consumer)?;
            eprintln!("deleted {consumer} and its credentials");
        }
    }
    Ok(())
}

pub fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create {
            config,
            consumer,
            label,
            scopes,
            expires_in,
        } => {
            let (s, prefix) = open(&config)?;
            let expires_in = expires_in
                .map(|e| seconds(&e, "--expires-in"))
                .transpose()?;
            let k = manage::create_key(
                store(&s)?,
                &s.secret,
                &prefix,
                &consumer,
                &KeyRequest {
                    label,
                    scopes,
                    expires_in,
                },
            )?;
            print_created(&k);
        }
        KeysCommand::List { config, consumer } => {
            let (s, _) = open(&config)?;
            print_keys(&manage::list_keys(store(&s)?, consumer.as_deref())?);
        }
        KeysCommand::Rotate {
            config,
            key_id,
            overlap,
        } => {
            let (s, prefix) = open(&config)?;
            let overlap = seconds(&overlap, "--overlap")?;
            let k = manage::rotate_key(store(&s)?, &s.secret, &prefix, &key_id, overlap)
                .with_context(|| format!("rotating {key_id}"))?;
            print_created(&k);
            eprintln!("the old key {key_id} stops working in {overlap}s");
        }
        KeysCommand::Revoke { config, key_id } => {
            let (s, _) = open(&config)?;
            let v = manage::revoke_key(store(&s)?, &key_id)?;
            eprintln!("revoked {} (consumer {})", v.id, v.consumer_id);
        }
    }
    Ok(())
}

pub fn admin_token() -> anyhow::Result<()> {
    let (token, hash) = portcullis_authn::admin_token::generate().map_err(|e| anyhow!("{e}"))?;
    println!("{token}");
    eprintln!(
        "the management API token above is shown once; put its hash in the configuration:\n\nadmin:\n  token_hash: \"{hash}\""
    );
    Ok(())
}
