//! Configuration: flags > `DIALBOARD_*` environment > TOML file > defaults. Flags and
//! environment are merged by clap (`Option`s that are `None` when neither is given); this
//! module fills the rest from the file and the defaults.

use crate::api::guard::Security;
use crate::serve::Limits;
use serde::Deserialize;
use std::path::Path;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE: &str = "sqlite://dialboard.db";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub database: Option<String>,
    pub public_url: Option<String>,
    pub metrics_token: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub max_connections: Option<usize>,
    pub sql_listen: Option<String>,
    pub webhook_allow_private: Option<bool>,
    pub sql_tls_cert: Option<std::path::PathBuf>,
    pub sql_tls_key: Option<std::path::PathBuf>,
    pub sql_allow_cleartext: Option<bool>,
    pub smtp_url: Option<String>,
    pub smtp_from: Option<String>,
    /// Brokers to consume events from (SPEC §11).
    pub sources: Option<Vec<crate::sources::SourceConfig>>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?;
        let config: FileConfig =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?;
        for source in config.sources.iter().flatten() {
            source
                .check()
                .map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?;
        }
        Ok(config)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub listen: String,
    pub database: String,
    /// The `serve` options as the file gives them (flags override them in [`ServeKeys::or`]).
    pub serve: ServeKeys,
    /// `[[sources]]`: brokers `serve` consumes.
    pub sources: Vec<crate::sources::SourceConfig>,
}

impl Settings {
    pub fn resolve(listen: Option<String>, database: Option<String>, file: FileConfig) -> Settings {
        Settings {
            listen: listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into()),
            database: database.or(file.database).unwrap_or_else(|| DEFAULT_DATABASE.into()),
            serve: ServeKeys {
                public_url: file.public_url,
                metrics_token: file.metrics_token,
                trusted_proxies: file.trusted_proxies.unwrap_or_default(),
                max_connections: file.max_connections,
                sql_listen: file.sql_listen,
                webhook_allow_private: file.webhook_allow_private.unwrap_or(false),
                sql_tls_cert: file.sql_tls_cert,
                sql_tls_key: file.sql_tls_key,
                sql_allow_cleartext: file.sql_allow_cleartext,
                smtp_url: file.smtp_url,
                smtp_from: file.smtp_from,
            },
            sources: file.sources.unwrap_or_default(),
        }
    }
}

/// What `serve` is told about its deployment: its public URL (`https` makes the session
/// cookie `__Host-` and `Secure`), the reverse proxies whose `X-Forwarded-For` it believes, the
/// token `/metrics` asks for, and how many connections it holds at most.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServeKeys {
    pub public_url: Option<String>,
    pub metrics_token: Option<String>,
    pub trusted_proxies: Vec<String>,
    pub max_connections: Option<usize>,
    /// Where the PostgreSQL-protocol endpoint listens (SPEC §13), if anywhere.
    pub sql_listen: Option<String>,
    /// Webhooks may target private and loopback addresses.
    pub webhook_allow_private: bool,
    /// The SQL endpoint's TLS certificate chain and private key (PEM).
    pub sql_tls_cert: Option<std::path::PathBuf>,
    pub sql_tls_key: Option<std::path::PathBuf>,
    /// Lets SQL clients send a key in clear text without TLS.
    pub sql_allow_cleartext: Option<bool>,
    /// The SMTP server e-mail goes through (`smtp://…`, `smtps://…`; see `mail.rs`).
    pub smtp_url: Option<String>,
    /// The sender of that e-mail.
    pub smtp_from: Option<String>,
}

impl ServeKeys {
    /// These (flags and environment), each falling back to `file`'s.
    pub fn or(self, file: ServeKeys) -> ServeKeys {
        ServeKeys {
            public_url: self.public_url.or(file.public_url),
            metrics_token: self.metrics_token.or(file.metrics_token),
            trusted_proxies: if self.trusted_proxies.is_empty() {
                file.trusted_proxies
            } else {
                self.trusted_proxies
            },
            max_connections: self.max_connections.or(file.max_connections),
            sql_listen: self.sql_listen.or(file.sql_listen),
            webhook_allow_private: self.webhook_allow_private || file.webhook_allow_private,
            sql_tls_cert: self.sql_tls_cert.or(file.sql_tls_cert),
            sql_tls_key: self.sql_tls_key.or(file.sql_tls_key),
            sql_allow_cleartext: self.sql_allow_cleartext.or(file.sql_allow_cleartext),
            smtp_url: self.smtp_url.or(file.smtp_url),
            smtp_from: self.smtp_from.or(file.smtp_from),
        }
    }

    /// The mailer `--smtp-url` and `--smtp-from` configure, if any (both or neither).
    pub fn mailer(&self) -> anyhow::Result<Option<crate::mail::Mailer>> {
        match (&self.smtp_url, &self.smtp_from) {
            (None, None) => Ok(None),
            (Some(_), None) => anyhow::bail!("--smtp-from: required with --smtp-url (the sender's address)"),
            (None, Some(_)) => anyhow::bail!("--smtp-url: required with --smtp-from"),
            (Some(url), Some(from)) => Ok(Some(crate::mail::Mailer::new(url, from)?)),
        }
    }

    /// The SQL endpoint's configuration: TLS loaded from the certificate and key files.
    pub fn sql(&self) -> anyhow::Result<crate::sql::SqlConfig> {
        let tls = match (&self.sql_tls_cert, &self.sql_tls_key) {
            (Some(cert), Some(key)) => Some(crate::sql::tls_acceptor(cert, key)?),
            (None, None) => None,
            (Some(_), None) => anyhow::bail!("--sql-tls-key: required with --sql-tls-cert"),
            (None, Some(_)) => anyhow::bail!("--sql-tls-cert: required with --sql-tls-key"),
        };
        Ok(crate::sql::SqlConfig {
            tls,
            allow_cleartext: self.sql_allow_cleartext.unwrap_or(false),
            ..Default::default()
        })
    }

    /// Checks the values; errors name the flag.
    pub fn resolve(self) -> anyhow::Result<(Security, Limits)> {
        let public_origin = self
            .public_url
            .as_deref()
            .map(Security::origin_of)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--public-url: {e}"))?;
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|p| {
                p.trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--trusted-proxy: '{p}' is not an IP address"))
            })
            .collect::<anyhow::Result<_>>()?;
        if self.metrics_token.as_ref().is_some_and(|t| t.trim().len() < 16) {
            anyhow::bail!("--metrics-token: use at least 16 characters");
        }
        let mut limits = Limits::default();
        if let Some(n) = self.max_connections {
            anyhow::ensure!(n >= 16, "--max-connections: must be at least 16");
            limits.max_connections = n;
        }
        let security = Security {
            public_origin,
            trusted_proxies,
            metrics_token: self.metrics_token.map(|t| t.trim().to_string()),
            webhook_allow_private: self.webhook_allow_private,
        };
        Ok((security, limits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_environment_beat_the_file_which_beats_defaults() {
        let file = || FileConfig {
            listen: Some("0.0.0.0:9000".into()),
            ..FileConfig::default()
        };
        let s = Settings::resolve(None, None, file());
        assert_eq!(s.listen, "0.0.0.0:9000");
        assert_eq!(s.database, DEFAULT_DATABASE);
        let s = Settings::resolve(Some("127.0.0.1:1".into()), Some("sqlite://x.db".into()), file());
        assert_eq!(
            (s.listen.as_str(), s.database.as_str()),
            ("127.0.0.1:1", "sqlite://x.db")
        );
    }

    #[test]
    fn serve_options_come_from_flags_then_the_file_and_are_checked() {
        let file: FileConfig = toml::from_str(
            "public_url = \"https://board.example.com/\"\ntrusted_proxies = [\"10.0.0.1\"]\nmax_connections = 100\nsql_listen = \"127.0.0.1:5433\"\nwebhook_allow_private = true\nsmtp_url = \"smtp://mail.example.com\"\nsmtp_from = \"board@example.com\"",
        )
        .unwrap();
        let keys = Settings::resolve(None, None, file).serve;
        let flags = ServeKeys {
            max_connections: Some(50),
            ..ServeKeys::default()
        };
        let keys = flags.or(keys);
        assert_eq!(keys.sql_listen.as_deref(), Some("127.0.0.1:5433"));
        let flags = ServeKeys {
            smtp_from: Some("ops@example.com".into()),
            ..ServeKeys::default()
        };
        let mailer = flags.or(keys.clone()).mailer().unwrap().unwrap();
        assert_eq!(mailer.from_address(), "ops@example.com");
        let no_sender = ServeKeys {
            smtp_url: Some("smtp://x".into()),
            ..ServeKeys::default()
        };
        assert!(no_sender.mailer().unwrap_err().to_string().starts_with("--smtp-from"));
        let (security, limits) = keys.resolve().unwrap();
        assert_eq!(security.public_origin.as_deref(), Some("https://board.example.com"));
        assert!(security.secure_cookies());
        assert_eq!(
            security.trusted_proxies,
            vec!["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(limits.max_connections, 50);
        assert!(security.webhook_allow_private, "the file's webhook_allow_private");
        let bad = ServeKeys {
            trusted_proxies: vec!["proxy.local".into()],
            ..ServeKeys::default()
        };
        assert!(bad.resolve().unwrap_err().to_string().starts_with("--trusted-proxy"));
    }

    #[test]
    fn the_sql_tls_files_come_in_pairs_and_are_read() {
        let file: FileConfig =
            toml::from_str("sql_tls_cert = \"/nonexistent/c.pem\"\nsql_allow_cleartext = true").unwrap();
        let keys = Settings::resolve(None, None, file).serve;
        assert_eq!(keys.sql_allow_cleartext, Some(true));
        let error = keys.sql().err().unwrap().to_string();
        assert!(error.starts_with("--sql-tls-key: required"), "{error}");
        let keys = ServeKeys {
            sql_tls_key: Some("/nonexistent/k.pem".into()),
            ..keys
        };
        let error = keys.sql().err().unwrap().to_string();
        assert!(error.starts_with("--sql-tls-cert /nonexistent/c.pem"), "{error}");
    }
}
