//! Configuration: flags > `DIALBOARD_*` environment > TOML file > defaults. Flags and
//! environment are merged by clap (`Option`s that are `None` when neither is given); this
//! module fills the rest from the file and the defaults.

use serde::Deserialize;
use std::path::Path;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE: &str = "sqlite://dialboard.db";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub database: Option<String>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub listen: String,
    pub database: String,
}

impl Settings {
    pub fn resolve(listen: Option<String>, database: Option<String>, file: FileConfig) -> Settings {
        Settings {
            listen: listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into()),
            database: database.or(file.database).unwrap_or_else(|| DEFAULT_DATABASE.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_environment_beat_the_file_which_beats_defaults() {
        let file = || FileConfig {
            listen: Some("0.0.0.0:9000".into()),
            database: None,
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
}
