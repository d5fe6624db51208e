//! The `dialboard` command line (SPEC §2).

use crate::access::NewUser;
use crate::api::guard::Security;
use crate::api::{app, AppState};
use crate::config::{FileConfig, ServeKeys, Settings};
use crate::serve::Limits;
use clap::{Args, Parser, Subcommand};
use dialboard_store::access::User;
use dialboard_store::{ApiKey, Scope, Store, TenantSettings};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "dialboard",
    version,
    about = "Real-time analytics for contact centers and sales dialers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// Database URL: sqlite://PATH (default sqlite://dialboard.db) or postgres://...
    #[arg(long, env = "DIALBOARD_DATABASE", global = true)]
    database: Option<String>,
    /// TOML configuration file (keys: listen, database, public_url, metrics_token,
    /// trusted_proxies, max_connections, sql_listen, smtp_url, smtp_from, and [[sources]] tables: brokers to consume).
    #[arg(long, env = "DIALBOARD_CONFIG", global = true)]
    config: Option<PathBuf>,
}

impl Common {
    fn settings(&self, listen: Option<String>) -> anyhow::Result<Settings> {
        Ok(Settings::resolve(
            listen,
            self.database.clone(),
            FileConfig::load(self.config.as_deref())?,
        ))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Fill a fictional call center, keep it live, and serve it.
    Demo {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, env = "DIALBOARD_LISTEN")]
        listen: Option<String>,
        /// Days of history to generate.
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// Seed: the same seed gives the same call center.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Serve the API.
    Serve {
        #[arg(long, env = "DIALBOARD_LISTEN")]
        listen: Option<String>,
        /// The URL users reach the server at (https://… makes the session cookie Secure and
        /// __Host-; its origin is the one browsers' requests must come from).
        #[arg(long, env = "DIALBOARD_PUBLIC_URL")]
        public_url: Option<String>,
        /// Bearer token that /metrics requires (without one, only loopback clients read it).
        #[arg(long, env = "DIALBOARD_METRICS_TOKEN")]
        metrics_token: Option<String>,
        /// A reverse proxy whose X-Forwarded-For is believed (repeat, or comma-separate).
        #[arg(long, env = "DIALBOARD_TRUSTED_PROXIES", value_delimiter = ',')]
        trusted_proxy: Vec<String>,
        /// Open connections at most (default 10,000, or less under the file-descriptor limit).
        #[arg(long, env = "DIALBOARD_MAX_CONNECTIONS")]
        max_connections: Option<usize>,
        /// Also serve the PostgreSQL protocol for BI tools on this address (user: the tenant's
        /// name, password: an API key with the read scope; docs/SQL.md).
        #[arg(long, env = "DIALBOARD_SQL_LISTEN")]
        sql_listen: Option<String>,
        /// Let webhooks target private, loopback and link-local addresses (refused otherwise).
        #[arg(long, env = "DIALBOARD_WEBHOOK_ALLOW_PRIVATE")]
        webhook_allow_private: bool,
        /// TLS certificate chain (PEM) of the SQL endpoint, for clients' sslmode=require.
        #[arg(long, env = "DIALBOARD_SQL_TLS_CERT", requires = "sql_tls_key")]
        sql_tls_cert: Option<PathBuf>,
        /// The private key (PEM) of --sql-tls-cert.
        #[arg(long, env = "DIALBOARD_SQL_TLS_KEY", requires = "sql_tls_cert")]
        sql_tls_key: Option<PathBuf>,
        /// Accept a key sent in clear text on an unencrypted SQL connection (else: SCRAM or TLS).
        #[arg(long, env = "DIALBOARD_SQL_ALLOW_CLEARTEXT")]
        sql_allow_cleartext: bool,
        /// The SMTP server for scheduled reports and alerts: smtp://[user:password@]host:port
        /// (STARTTLS when offered; ?tls=starttls requires it, ?tls=none never) or smtps://… (TLS).
        #[arg(long, env = "DIALBOARD_SMTP_URL")]
        smtp_url: Option<String>,
        /// The sender of that e-mail, e.g. "Dialboard <board@example.com>".
        #[arg(long, env = "DIALBOARD_SMTP_FROM")]
        smtp_from: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Create or upgrade the database schema.
    Migrate {
        #[command(flatten)]
        common: Common,
    },
    /// Copy a consistent SQLite database while the server runs (PostgreSQL: pg_dump).
    Backup {
        /// The new file to write the copy to.
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Manage users (browser logins).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Import events (NDJSON) or call records (CDR files, CSV exports) from a file.
    Import {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        spec: ImportArgs,
        file: PathBuf,
        /// Write each rejected row (line number, reason, text) to this CSV file.
        #[arg(long)]
        rejects: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
}

/// `dialboard import`'s options (SPEC §11); the upload's query parameters have the same names.
#[derive(Args)]
struct ImportArgs {
    #[arg(long, value_parser = crate::import::FORMATS)]
    format: String,
    /// The IANA zone of the file's local times (default: the tenant's).
    #[arg(long, conflicts_with = "utc")]
    timezone: Option<String>,
    /// The file's times are UTC.
    #[arg(long)]
    utc: bool,
    /// --format csv: FIELD=Column,... (started_at=Start,agent_id=Agent,disposition=Result,...).
    #[arg(long)]
    columns: Option<String>,
    /// --format freeswitch-cdr: the mod_cdr_csv template (default: the `example` template).
    #[arg(long)]
    template: Option<String>,
    /// SOURCE=Disposition,... over the default table (ANSWERED=Connected, NO ANSWER=No Answer, ...).
    #[arg(long)]
    map_disposition: Option<String>,
    /// PEER=agent_id,...: the agent a channel's peer or extension is.
    #[arg(long)]
    map_agent: Option<String>,
    /// Dialplan contexts of inbound calls (default from-pstn, from-trunk, public).
    #[arg(long)]
    inbound_context: Option<String>,
    /// Dialplan contexts of outbound calls (default from-internal, default).
    #[arg(long)]
    outbound_context: Option<String>,
}

impl ImportArgs {
    fn spec(self) -> crate::import::ImportSpec {
        crate::import::ImportSpec {
            format: self.format,
            timezone: self.timezone,
            utc: self.utc,
            columns: self.columns,
            template: self.template,
            map_disposition: self.map_disposition,
            map_agent: self.map_agent,
            inbound_context: self.inbound_context,
            outbound_context: self.outbound_context,
        }
    }
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant; prints its first admin API key alone on the last line.
    Create {
        name: String,
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// Show agents the other reps of a leaderboard only anonymized.
        #[arg(long)]
        leaderboard_privacy: bool,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create an API key; prints it alone on the last line (it is not shown again).
    Create {
        #[arg(long)]
        tenant: String,
        /// Comma-separated: ingest, read, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Bind the key to one agent's records.
        #[arg(long, conflicts_with = "team")]
        agent: Option<String>,
        /// Bind the key to one team's records.
        #[arg(long)]
        team: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from the first line of stdin.
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["admin", "manager", "agent", "viewer"])]
        role: String,
        /// The agent whose data an `agent` user sees as their own.
        #[arg(long)]
        agent: Option<String>,
        /// A manager's teams (repeat the flag), or an agent's team.
        #[arg(long)]
        team: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Set a user's password (the same policy as at creation); the new password is read from
    /// the first line of stdin. Every session of the user ends.
    Password {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        #[command(flatten)]
        common: Common,
    },
}

/// A password from the first line of stdin (never from the command line, which `ps` shows).
fn password_from_stdin() -> std::io::Result<String> {
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    Ok(password.trim_end_matches(['\r', '\n']).to_string())
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            listen,
            public_url,
            metrics_token,
            trusted_proxy,
            max_connections,
            sql_listen,
            webhook_allow_private,
            sql_tls_cert,
            sql_tls_key,
            sql_allow_cleartext,
            smtp_url,
            smtp_from,
            common,
        } => {
            let settings = common.settings(listen)?;
            let flags = ServeKeys {
                public_url,
                metrics_token,
                trusted_proxies: trusted_proxy,
                max_connections,
                sql_listen,
                webhook_allow_private,
                sql_tls_cert,
                sql_tls_key,
                sql_allow_cleartext: sql_allow_cleartext.then_some(true),
                smtp_url,
                smtp_from,
            };
            let keys = flags.or(settings.serve);
            let sql_listen = match keys.sql_listen.clone() {
                Some(address) => Some((address, keys.sql()?)),
                None => None,
            };
            let mailer = keys.mailer()?;
            let (security, limits) = keys.resolve()?;
            let store = crate::open_store(&settings.database)?;
            serve_with(
                store,
                &settings.listen,
                security,
                limits,
                sql_listen,
                mailer,
                &settings.sources,
                |url| println!("dialboard is serving on {url}\n{url}"),
            )
            .await
        }
        Command::Demo {
            listen,
            days,
            seed,
            common,
        } => {
            let settings = common.settings(listen)?;
            let store = crate::open_store(&settings.database)?;
            crate::demo::run(store, &settings.listen, days, seed).await
        }
        Command::Migrate { common } => {
            let settings = common.settings(None)?;
            let store = crate::open_store(&settings.database)?;
            store.shutdown().await;
            println!("database {} is up to date", crate::redacted(&settings.database));
            Ok(())
        }
        Command::Backup { to, common } => {
            let database = common.settings(None)?.database;
            crate::backup(&database, &to)?;
            println!("backed up {} to\n{}", crate::redacted(&database), to.display());
            Ok(())
        }
        Command::Tenant {
            command:
                TenantCommand::Create {
                    name,
                    timezone,
                    leaderboard_privacy,
                    common,
                },
        } => {
            let store = crate::open_store(&common.settings(None)?.database)?;
            let tenant = store
                .create_tenant(
                    &name,
                    TenantSettings {
                        leaderboard_privacy,
                        ..TenantSettings::new(&timezone)
                    },
                )
                .await?;
            let key = create_admin_key(&store, tenant.id).await?;
            store.shutdown().await;
            println!("created tenant '{name}' (timezone {timezone}); its admin API key, shown once:\n{key}");
            Ok(())
        }
        Command::Key {
            command:
                KeyCommand::Create {
                    tenant,
                    scopes,
                    agent,
                    team,
                    common,
                },
        } => {
            let scopes = scopes
                .iter()
                .map(|s| {
                    Scope::parse(s.trim())
                        .ok_or_else(|| anyhow::anyhow!("--scopes: unknown scope '{s}'; known: ingest, read, admin"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let store = crate::open_store(&common.settings(None)?.database)?;
            let t = store
                .tenant_by_name(&tenant)
                .await?
                .ok_or_else(|| anyhow::anyhow!("--tenant: no tenant named '{tenant}'"))?;
            let key = create_key(&store, t.id, scopes, agent, team).await?;
            store.shutdown().await;
            println!("API key for tenant '{tenant}', shown once:\n{key}");
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Add {
                    tenant,
                    email,
                    role,
                    agent,
                    team,
                    common,
                },
        } => {
            let password = password_from_stdin()?;
            let store = crate::open_store(&common.settings(None)?.database)?;
            let outcome = add_user(&store, &tenant, email, password, role, agent, team).await;
            store.shutdown().await;
            let user = outcome?;
            println!("added {} ({}) to tenant '{tenant}'", user.email, user.role.as_str());
            Ok(())
        }
        Command::User {
            command: UserCommand::Password { tenant, email, common },
        } => {
            let password = password_from_stdin()?;
            let store = crate::open_store(&common.settings(None)?.database)?;
            let outcome = set_password(&store, &tenant, &email, password).await;
            store.shutdown().await;
            outcome?;
            println!("set the password of {email} in tenant '{tenant}'; their sessions ended");
            Ok(())
        }
        Command::Import {
            tenant,
            spec,
            file,
            rejects,
            common,
        } => {
            let store = crate::open_store(&common.settings(None)?.database)?;
            let outcome = crate::import::run(&store, &tenant, &spec.spec(), &file, rejects.as_deref()).await;
            store.shutdown().await;
            outcome
        }
    }
}

/// Creates an API key (audited as done by the command line) and returns its secret.
pub async fn create_key(
    store: &Arc<dyn Store>,
    tenant_id: i64,
    scopes: Vec<Scope>,
    agent_id: Option<String>,
    team_id: Option<String>,
) -> anyhow::Result<String> {
    let key = ApiKey {
        tenant_id,
        scopes,
        agent_id,
        team_id,
        ..ApiKey::default()
    };
    Ok(crate::access::create_key(store, key, "cli").await?.0)
}

async fn add_user(
    store: &Arc<dyn Store>,
    tenant: &str,
    email: String,
    password: String,
    role: String,
    agent_id: Option<String>,
    teams: Vec<String>,
) -> anyhow::Result<User> {
    let t = store
        .tenant_by_name(tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("--tenant: no tenant named '{tenant}'"))?;
    let new = NewUser {
        email,
        password,
        role,
        agent_id,
        teams,
    };
    match crate::access::create_user(store, t.id, new, "cli").await? {
        Ok(user) => Ok(user),
        Err(fields) => {
            let flag = |f: &str| match f {
                "password" => "the password (stdin)".to_string(),
                "agent_id" => "--agent".into(),
                "teams" => "--team".into(),
                other => format!("--{other}"),
            };
            let lines: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", flag(&f.field), f.message))
                .collect();
            anyhow::bail!("{}", lines.join("; "))
        }
    }
}

async fn set_password(store: &Arc<dyn Store>, tenant: &str, email: &str, password: String) -> anyhow::Result<()> {
    let t = store
        .tenant_by_name(tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("--tenant: no tenant named '{tenant}'"))?;
    let (user, _) = store
        .user_by_email(t.id, &email.trim().to_lowercase())
        .await?
        .ok_or_else(|| anyhow::anyhow!("--email: no user '{email}' in tenant '{tenant}'"))?;
    let set = crate::access::set_user_password(store, &user, password, "password", None, ("cli", "password_reset"));
    match set.await? {
        Ok(()) => Ok(()),
        Err(fields) => anyhow::bail!("the password (stdin): {}", fields[0].message),
    }
}

/// A key with every scope, bound to no agent or team.
pub async fn create_admin_key(store: &Arc<dyn Store>, tenant_id: i64) -> anyhow::Result<String> {
    create_key(
        store,
        tenant_id,
        vec![Scope::Ingest, Scope::Read, Scope::Admin],
        None,
        None,
    )
    .await
}

/// Serves with the default deployment (the demo): see [`serve_with`].
pub async fn serve(store: Arc<dyn Store>, listen: &str, announce: impl FnOnce(&str)) -> anyhow::Result<()> {
    serve_with(
        store,
        listen,
        Security::default(),
        Limits::default(),
        None,
        None,
        &[],
        announce,
    )
    .await
}

/// Serves until Ctrl-C or SIGTERM, then lets in-flight requests (and their commits) finish
/// and folds pending deltas before returning.
// The deployment's parts, each from its own flags; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub async fn serve_with(
    store: Arc<dyn Store>,
    listen: &str,
    security: Security,
    limits: Limits,
    sql_listen: Option<(String, crate::sql::SqlConfig)>,
    mailer: Option<crate::mail::Mailer>,
    sources: &[crate::sources::SourceConfig],
    announce: impl FnOnce(&str),
) -> anyhow::Result<()> {
    let listener = crate::serve::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("--listen {listen}: {e}"))?;
    let url = format!("http://{}", listener.local_addr()?);
    tracing::info!(%url, max_connections = limits.max_connections, "listening");
    let sql_listener = match sql_listen {
        Some((addr, config)) => Some((
            tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|e| anyhow::anyhow!("--sql-listen {addr}: {e}"))?,
            config,
        )),
        None => None,
    };
    let mut state = AppState::configured(
        store.clone(),
        crate::live::QUEUE_CAPACITY,
        security,
        crate::api::wall_clock(),
    );
    Arc::get_mut(&mut state).expect("the state is not shared yet").mailer = mailer;
    if let Some((sql, config)) = sql_listener {
        let address = sql.local_addr()?;
        tracing::info!(%address, "serving the PostgreSQL protocol (SPEC §13)");
        println!("SQL endpoint for BI tools: postgres://{address}");
        let sql = crate::sql::serve(state.clone(), sql, config, std::future::pending());
        tokio::spawn(async move {
            if let Err(e) = sql.await {
                tracing::error!(error = %e, "sql endpoint");
            }
        });
    }
    announce(&url);
    let (stop_jobs, stop) = tokio::sync::watch::channel(false);
    let consumers = crate::sources::spawn_all(store.clone(), sources, &state.metrics.sources, stop.clone());
    let policy = crate::webhooks::AddressPolicy {
        allow_private: state.security.webhook_allow_private,
    };
    let worker = crate::jobs::Worker::for_server(store.clone())
        .handle(crate::webhooks::JOB_KIND, crate::webhooks::job_handler(policy))
        .handle(crate::schedules::JOB_KIND, crate::schedules::job_handler(state.clone()))
        .handle(
            crate::retention::JOB_KIND,
            crate::retention::job_handler(state.mailer.clone()),
        );
    let scheduler = crate::schedules::spawn_ticker(store.clone(), crate::schedules::TICK, stop.clone());
    let purges = crate::retention::spawn(store.clone(), stop.clone());
    let jobs = Arc::new(worker).spawn(stop);
    crate::serve::run(listener, app(state), limits, shutdown_signal()).await?;
    // A job cut short here is claimed again once its lease expires (on this node or another).
    let _ = stop_jobs.send(true);
    jobs.abort();
    purges.abort();
    scheduler.abort();
    // A consumer stops between batches; one cut short leaves its batch unacknowledged, and
    // JetStream delivers it again.
    for consumer in consumers {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), consumer).await;
    }
    tracing::info!("shutting down: finishing commits");
    store.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
