//! `wagroups numbers …`: business numbers, on the simulated network or Meta's Cloud API.
//! A cloud-api number's secrets are sealed with the deployment's key before they are stored
//! and never printed back.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use wagroups_core::{
    admin,
    model::{HealthStatus, NumberHealth, Profile, ProviderKind},
    secret::Secret,
    store::prelude::*,
    validate,
};
use wagroups_providers::cloud::{CloudChange, CloudConfig, CloudSetup};
use wagroups_store::SqliteStore;

#[derive(Subcommand)]
pub enum NumbersCmd {
    /// Register a business number in an organisation.
    Add(AddArgs),
    /// Change a cloud-api number's settings or credentials (a new access token resumes a
    /// number whose token Meta refused).
    Update(UpdateArgs),
    /// Ask Meta once whether a cloud-api number's token, phone number ID and Groups API
    /// eligibility are in order; says what is wrong in plain words (exit status 1).
    Check { waba_number: String },
    /// Disable a number: creating groups on it is refused (422).
    Disable { waba_number: String },
    /// Enable a disabled number.
    Enable { waba_number: String },
    /// List numbers: provider, Meta's phone number ID and health (never secrets).
    List {
        /// Only this organisation's (name or ID).
        #[arg(long, env = "WAGROUPS_ORG")]
        org: Option<String>,
    },
}

#[derive(Args)]
pub struct AddArgs {
    /// Organisation name or ID.
    #[arg(long, env = "WAGROUPS_ORG")]
    org: String,
    /// The business WhatsApp number, digits in international form.
    #[arg(long, env = "WAGROUPS_WABA_NUMBER")]
    waba_number: String,
    #[arg(long, env = "WAGROUPS_PROVIDER", default_value = "simulated", value_parser = ["simulated", "cloud-api"])]
    provider: String,
    /// The simulated network's semantics (a cloud-api number is always `cloud`).
    #[arg(long, env = "WAGROUPS_PROFILE", default_value = "cloud", value_parser = ["cloud", "linked-device"])]
    profile: String,
    #[command(flatten)]
    cloud: CloudArgs,
}

#[derive(Args)]
pub struct UpdateArgs {
    /// The number to change.
    waba_number: String,
    /// An alias by which linked-device gateways' clients name the number (Wawp's
    /// `instance_id`); empty to clear it. Any provider.
    #[arg(long)]
    instance_id: Option<String>,
    #[command(flatten)]
    cloud: CloudArgs,
}

/// Meta's Cloud API settings of a number. Every secret can come from the flag, from an
/// environment variable, or from a file (`--…-file`, read whole, trimmed).
#[derive(Args)]
pub struct CloudArgs {
    /// Meta's ID of the business phone number (App Dashboard > WhatsApp > API Setup).
    #[arg(long, env = "WAGROUPS_PHONE_NUMBER_ID")]
    phone_number_id: Option<String>,
    /// A system-user access token with whatsapp_business_messaging and
    /// whatsapp_business_management.
    #[arg(long, env = "WAGROUPS_ACCESS_TOKEN", hide_env_values = true)]
    access_token: Option<String>,
    #[arg(long, env = "WAGROUPS_ACCESS_TOKEN_FILE", conflicts_with = "access_token")]
    access_token_file: Option<PathBuf>,
    /// The Meta app's secret: Meta signs its webhooks with it.
    #[arg(long, env = "WAGROUPS_APP_SECRET", hide_env_values = true)]
    app_secret: Option<String>,
    #[arg(long, env = "WAGROUPS_APP_SECRET_FILE", conflicts_with = "app_secret")]
    app_secret_file: Option<PathBuf>,
    /// The verify token you type into the App Dashboard's webhook settings.
    #[arg(long, env = "WAGROUPS_VERIFY_TOKEN", hide_env_values = true)]
    verify_token: Option<String>,
    #[arg(long, env = "WAGROUPS_VERIFY_TOKEN_FILE", conflicts_with = "verify_token")]
    verify_token_file: Option<PathBuf>,
    /// The WhatsApp Business Account ID.
    #[arg(long, env = "WAGROUPS_WABA_ID")]
    waba_id: Option<String>,
    /// Meta's Graph API (default https://graph.facebook.com; tests point it at a local server).
    #[arg(long, env = "WAGROUPS_GRAPH_URL")]
    graph_url: Option<String>,
    /// The Graph API version (default v23.0).
    #[arg(long, env = "WAGROUPS_API_VERSION")]
    api_version: Option<String>,
    /// Meta's "group invite link" utility template, to send participants the link 1:1.
    #[arg(long, env = "WAGROUPS_INVITE_TEMPLATE")]
    invite_template: Option<String>,
    #[arg(long, env = "WAGROUPS_INVITE_TEMPLATE_LANGUAGE", requires = "invite_template")]
    invite_template_language: Option<String>,
}

/// A secret from its flag (or variable) or its file; `None` when neither was given.
fn secret(flag: &str, value: Option<String>, file: Option<PathBuf>) -> anyhow::Result<Option<Secret>> {
    match (value, file) {
        (Some(v), _) => Ok(Some(Secret::new(v.trim().to_string()))),
        (None, Some(path)) => {
            let text =
                std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("--{flag}-file {}: {e}", path.display()))?;
            Ok(Some(Secret::new(text.trim().to_string())))
        }
        (None, None) => Ok(None),
    }
}

struct CloudSecrets {
    access_token: Option<Secret>,
    app_secret: Option<Secret>,
    verify_token: Option<Secret>,
}

impl CloudArgs {
    fn secrets(&mut self) -> anyhow::Result<CloudSecrets> {
        Ok(CloudSecrets {
            access_token: secret("access-token", self.access_token.take(), self.access_token_file.take())?,
            app_secret: secret("app-secret", self.app_secret.take(), self.app_secret_file.take())?,
            verify_token: secret("verify-token", self.verify_token.take(), self.verify_token_file.take())?,
        })
    }

    /// Whether any cloud-api setting was given.
    fn any(&self) -> bool {
        self.phone_number_id.is_some()
            || self.access_token.is_some()
            || self.access_token_file.is_some()
            || self.app_secret.is_some()
            || self.app_secret_file.is_some()
            || self.verify_token.is_some()
            || self.verify_token_file.is_some()
            || self.waba_id.is_some()
            || self.graph_url.is_some()
            || self.api_version.is_some()
            || self.invite_template.is_some()
            || self.invite_template_language.is_some()
    }
}

pub async fn run(store: &SqliteStore, database: &str, cmd: NumbersCmd) -> anyhow::Result<()> {
    match cmd {
        NumbersCmd::Add(args) => add(store, database, args).await,
        NumbersCmd::Update(args) => update(store, database, args).await,
        NumbersCmd::Check { waba_number } => check(store, database, &waba_number).await,
        NumbersCmd::Disable { waba_number } => {
            let n = admin::set_number_disabled(store, &waba_number, true).await?;
            println!("disabled number {}", n.waba_number);
            Ok(())
        }
        NumbersCmd::Enable { waba_number } => {
            let n = admin::set_number_disabled(store, &waba_number, false).await?;
            println!("enabled number {}", n.waba_number);
            Ok(())
        }
        NumbersCmd::List { org } => {
            let org_id = match org {
                Some(o) => Some(admin::org(store, &o).await?.id),
                None => None,
            };
            println!("NUMBER\tORG\tPROVIDER\tPROFILE\tSTATE\tPHONE_NUMBER_ID\tHEALTH");
            for n in store.list_numbers(org_id.as_ref()).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    n.waba_number,
                    n.org_id,
                    n.provider,
                    n.profile,
                    if n.disabled { "disabled" } else { "enabled" },
                    n.provider_ref.as_deref().unwrap_or("-"),
                    health(&n.health),
                );
            }
            Ok(())
        }
    }
}

fn health(h: &NumberHealth) -> String {
    match (h.status, h.until) {
        (HealthStatus::RateLimited, Some(until)) => format!("rate_limited until {}", until.to_rfc3339()),
        (status, _) => status.to_string(),
    }
}

async fn add(store: &SqliteStore, database: &str, mut args: AddArgs) -> anyhow::Result<()> {
    let provider = ProviderKind::parse(&args.provider).unwrap_or(ProviderKind::Simulated);
    let profile = Profile::parse(&args.profile).unwrap_or(Profile::Cloud);
    let setup = match provider {
        ProviderKind::Simulated => {
            anyhow::ensure!(
                !args.cloud.any(),
                "the cloud-api settings (--phone-number-id, --access-token…) need --provider cloud-api"
            );
            admin::NumberSetup::simulated(profile)
        }
        ProviderKind::CloudApi => {
            anyhow::ensure!(
                profile == Profile::Cloud,
                "--profile: a cloud-api number has the cloud profile"
            );
            let digits = validate::waba_number("waba-number", &args.waba_number)?;
            let secrets = args.cloud.secrets()?;
            let missing: Vec<&str> = [
                ("--phone-number-id", args.cloud.phone_number_id.is_none()),
                ("--access-token", secrets.access_token.is_none()),
                ("--app-secret", secrets.app_secret.is_none()),
                ("--verify-token", secrets.verify_token.is_none()),
            ]
            .into_iter()
            .filter_map(|(flag, absent)| absent.then_some(flag))
            .collect();
            anyhow::ensure!(
                missing.is_empty(),
                "a cloud-api number needs {} (or their WAGROUPS_* variables)",
                missing.join(", ")
            );
            let key = crate::secret_key(store, database, true)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no secret key could be made"))?;
            let c = args.cloud;
            let config = CloudConfig::new(
                &digits,
                CloudSetup {
                    phone_number_id: c.phone_number_id.unwrap_or_default(),
                    waba_id: c.waba_id,
                    graph_url: c.graph_url,
                    api_version: c.api_version,
                    invite_template: c.invite_template,
                    invite_template_language: c.invite_template_language,
                    access_token: secrets.access_token.unwrap_or_else(|| Secret::new("")),
                    app_secret: secrets.app_secret.unwrap_or_else(|| Secret::new("")),
                    verify_token: secrets.verify_token.unwrap_or_else(|| Secret::new("")),
                },
                &key,
            )?;
            admin::NumberSetup {
                provider,
                profile,
                provider_ref: Some(config.phone_number_id.clone()),
                provider_config: config.to_value(),
            }
        }
    };
    let n = admin::add_number(store, &args.org, &args.waba_number, setup).await?;
    match &n.provider_ref {
        Some(id) => println!("added number {} ({}, phone number ID {id})", n.waba_number, n.provider),
        None => println!("added number {} ({}, {} profile)", n.waba_number, n.provider, n.profile),
    }
    Ok(())
}

async fn update(store: &SqliteStore, database: &str, mut args: UpdateArgs) -> anyhow::Result<()> {
    let digits = validate::waba_number("waba-number", &args.waba_number)?;
    let number = store
        .find_number(&digits)
        .await?
        .ok_or_else(|| anyhow::anyhow!("number {digits} not found"))?;
    // A cloud setting on a number of another provider is refused before anything changes.
    anyhow::ensure!(
        !args.cloud.any() || number.provider == ProviderKind::CloudApi,
        "number {digits} is on the {} provider: only cloud-api numbers have settings to change",
        number.provider
    );
    if let Some(alias) = args.instance_id.take() {
        let alias = alias.trim();
        admin::set_instance_id(store, &digits, (!alias.is_empty()).then_some(alias)).await?;
        println!(
            "number {digits}: instance ID {}",
            if alias.is_empty() { "cleared" } else { alias }
        );
        if !args.cloud.any() {
            return Ok(());
        }
    }
    anyhow::ensure!(
        number.provider == ProviderKind::CloudApi,
        "number {digits} is on the {} provider: only cloud-api numbers have settings to change",
        number.provider
    );
    anyhow::ensure!(
        args.cloud.phone_number_id.is_none(),
        "--phone-number-id cannot change: add the other phone number as its own number"
    );
    anyhow::ensure!(args.cloud.any(), "nothing to change: give a setting or a credential");
    let secrets = args.cloud.secrets()?;
    let new_token = secrets.access_token.is_some();
    let key = crate::secret_key(store, database, false)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no secret key: this number's secrets cannot be opened"))?;
    let c = args.cloud;
    let config = CloudConfig::of(&number)?.change(
        &digits,
        CloudChange {
            waba_id: c.waba_id,
            graph_url: c.graph_url,
            api_version: c.api_version,
            invite_template: c.invite_template,
            invite_template_language: c.invite_template_language,
            access_token: secrets.access_token,
            app_secret: secrets.app_secret,
            verify_token: secrets.verify_token,
        },
        &key,
    )?;
    store.set_number_provider_config(&digits, &config.to_value()).await?;
    // A new token is worth trying: a number Meta refused the old one for resumes.
    if new_token && number.health.status == HealthStatus::CredentialsInvalid {
        store.set_number_health(number.id, &NumberHealth::default()).await?;
        let resumed = store
            .resume_commands(number.id, wagroups_core::time::Timestamp::now())
            .await?;
        println!(
            "updated number {digits}; its new access token will be tried now ({resumed} waiting commands resumed)"
        );
    } else {
        println!("updated number {digits}");
    }
    Ok(())
}

async fn check(store: &SqliteStore, database: &str, waba_number: &str) -> anyhow::Result<()> {
    use wagroups_providers::cloud::{Credential, Graph, GraphError};
    let digits = validate::waba_number("waba-number", waba_number)?;
    let number = store
        .find_number(&digits)
        .await?
        .ok_or_else(|| anyhow::anyhow!("number {digits} not found"))?;
    anyhow::ensure!(
        number.provider == ProviderKind::CloudApi,
        "number {digits} is on the {} provider: there is nothing to check at Meta",
        number.provider
    );
    let key = crate::secret_key(store, database, false)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no secret key: this number's token cannot be opened"))?;
    let config = CloudConfig::of(&number)?;
    let token = config.open(&digits, Credential::AccessToken, &key)?;
    let id = &config.phone_number_id;
    let set = |status: HealthStatus, detail: Option<String>| NumberHealth {
        status,
        until: None,
        detail,
    };
    // Listing one group exercises all three: the token, the number, the Groups API.
    match Graph::new()?.active_groups(&config, &token, 1, None).await {
        Ok(_) => {
            if number.health.status != HealthStatus::Ok {
                store.set_number_health(number.id, &NumberHealth::default()).await?;
            }
            println!(
                "number {digits} is in order: Meta accepts its access token, knows phone number ID {id}, and lets it use the Groups API."
            );
            Ok(())
        }
        Err(GraphError::Meta { code: 190, message, .. }) => {
            store
                .set_number_health(
                    number.id,
                    &set(HealthStatus::CredentialsInvalid, Some(format!("190: {message}"))),
                )
                .await?;
            anyhow::bail!(
                "number {digits}: Meta refuses its access token (190: {message}). Make a new system-user token (Business Settings > System users) and run `wagroups numbers update {digits} --access-token …`."
            )
        }
        Err(GraphError::Meta {
            code: 131215, message, ..
        }) => {
            store
                .set_number_health(
                    number.id,
                    &set(HealthStatus::NotEligible, Some(format!("131215: {message}"))),
                )
                .await?;
            anyhow::bail!(
                "number {digits} may not use the Groups API (131215: {message}). Meta opens it to Official Business Accounts on the Cloud API."
            )
        }
        Err(GraphError::Meta {
            code: code @ (100 | 803 | 33),
            message,
            ..
        }) => anyhow::bail!(
            "Meta does not know phone number ID {id} for this token ({code}: {message}). Check it in App Dashboard > WhatsApp > API Setup, and that the token's system user has the number's WhatsApp Business Account."
        ),
        Err(GraphError::Meta {
            code: code @ (10 | 200..=299),
            message,
            ..
        }) => anyhow::bail!(
            "the access token lacks a permission ({code}: {message}): it needs whatsapp_business_management and whatsapp_business_messaging."
        ),
        Err(GraphError::Meta {
            status: 429,
            code,
            message,
            ..
        })
        | Err(GraphError::Meta {
            code: code @ (131208 | 4 | 80007 | 130429),
            message,
            ..
        }) => anyhow::bail!("Meta is rate-limiting number {digits} now ({code}: {message}); check again later."),
        Err(GraphError::Transport(m)) | Err(GraphError::NoAnswer(m)) => {
            anyhow::bail!("could not reach Meta at {}: {m}", config.graph_url)
        }
        Err(e) => anyhow::bail!("number {digits}: {e}"),
    }
}
