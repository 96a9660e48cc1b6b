//! `hooks.toml` in the data directory: per hook its secret (inline, or a
//! file holding it), the repositories or projects and branches it covers,
//! which outcomes notify at which priority, and who is who (a login or a
//! commit e-mail → a user id). Read again whenever the file changes; a file
//! that does not parse leaves the previous one in force (and says why in
//! the log). Inline secrets are refused in a file others may read.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The file's name in the data directory.
pub(crate) const FILE: &str = "hooks.toml";

/// What an outcome does: notify at a priority, or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Level(pub Option<u8>);

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Level, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Priority(u8),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Priority(p @ 1..=5) => Ok(Level(Some(p))),
            Raw::Priority(0) => Ok(Level(None)),
            Raw::Word(w) if w == "off" => Ok(Level(None)),
            _ => Err(serde::de::Error::custom("a priority 1 to 5, or \"off\"")),
        }
    }
}

/// Which outcomes notify, and how loudly.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Levels {
    /// A build or deployment that succeeded (default 2).
    #[serde(default = "success")]
    pub success: Level,
    /// One that failed (default 4).
    #[serde(default = "failure")]
    pub failure: Level,
    /// One that was cancelled (default off).
    #[serde(default = "off")]
    pub cancelled: Level,
    /// A deployment that was asked for (default 3).
    #[serde(default = "deployment")]
    pub deployment: Level,
}

fn success() -> Level {
    Level(Some(2))
}
fn failure() -> Level {
    Level(Some(4))
}
fn off() -> Level {
    Level(None)
}
fn deployment() -> Level {
    Level(Some(3))
}

impl Default for Levels {
    fn default() -> Levels {
        Levels { success: success(), failure: failure(), cancelled: off(), deployment: deployment() }
    }
}

/// A GitHub or GitLab hook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForgeHook {
    /// The shared secret (GitHub's "Secret", GitLab's "Secret token").
    #[serde(default, alias = "token")]
    secret: Option<String>,
    /// A file holding it (relative paths: in the data directory).
    #[serde(default, alias = "token_file")]
    secret_file: Option<PathBuf>,
    /// `owner/name` (GitHub) or `group/project` (GitLab); default all.
    #[serde(default, alias = "projects")]
    pub repositories: Vec<String>,
    /// Branch names, `release/*` style; default all.
    #[serde(default)]
    pub branches: Vec<String>,
    /// Which outcomes notify.
    #[serde(default)]
    pub notify: Levels,
    /// Who is who, for this hook only (before the file's `[users]`).
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// Read from `secret` or `secret_file`.
    #[serde(skip)]
    pub key: Vec<u8>,
}

/// A generic hook (Jenkins, Buildkite, scripts).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenericHook {
    /// The shared secret.
    #[serde(default)]
    secret: Option<String>,
    /// A file holding it.
    #[serde(default)]
    secret_file: Option<PathBuf>,
    /// The only users it may notify (default: any).
    #[serde(default)]
    pub users: Vec<String>,
    /// Read from `secret` or `secret_file`.
    #[serde(skip)]
    pub key: Vec<u8>,
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HooksConfig {
    /// Who is who for every hook: login or e-mail → user id.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// The GitHub hook (`POST /hooks/github`).
    #[serde(default)]
    pub github: Option<ForgeHook>,
    /// The GitLab hook (`POST /hooks/gitlab`).
    #[serde(default)]
    pub gitlab: Option<ForgeHook>,
    /// Generic hooks by name (`POST /hooks/generic/{name}`).
    #[serde(default)]
    pub generic: BTreeMap<String, GenericHook>,
}

/// Why the file was not taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// It could not be read.
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// It is not valid.
    #[error("{0}: {1}")]
    Invalid(PathBuf, String),
}

/// Reads a secret: inline or from its file, at least 16 bytes.
fn secret(dir: &Path, what: &str, inline: &Option<String>, file: &Option<PathBuf>) -> Result<Vec<u8>, String> {
    let text = match (inline, file) {
        (Some(s), None) => s.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{what}: secret_file {}: {e}", f.display()))?
        }
        _ => return Err(format!("{what}: give exactly one of secret and secret_file")),
    };
    let text = text.trim();
    if text.len() < 16 {
        return Err(format!("{what}: the secret must be at least 16 characters"));
    }
    Ok(text.as_bytes().to_vec())
}

impl HooksConfig {
    /// Parses the file's text; secret files are read relative to `dir`.
    /// `private` says whether only the owner may read the file.
    pub(crate) fn parse(text: &str, dir: &Path, private: bool) -> Result<HooksConfig, String> {
        let mut config: HooksConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let inline = config.github.iter().chain(&config.gitlab).any(|h| h.secret.is_some())
            || config.generic.values().any(|h| h.secret.is_some());
        if inline && !private {
            return Err("holds secrets but others may read it: chmod 600, or use secret_file".into());
        }
        for (what, hook) in [("github", &mut config.github), ("gitlab", &mut config.gitlab)] {
            if let Some(hook) = hook {
                hook.key = secret(dir, what, &hook.secret, &hook.secret_file)?;
            }
        }
        for (name, hook) in &mut config.generic {
            let ok =
                (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            if !ok {
                return Err(format!("generic.{name}: names are 1 to 64 letters, digits, '-' or '_'"));
            }
            hook.key = secret(dir, &format!("generic.{name}"), &hook.secret, &hook.secret_file)?;
        }
        Ok(config)
    }

    /// The user id `who` (a login or e-mail, any case) maps to: the hook's
    /// own table first, then the file's.
    pub(crate) fn user_of<'a>(&'a self, own: &'a BTreeMap<String, String>, who: &str) -> Option<&'a str> {
        let find = |table: &'a BTreeMap<String, String>| {
            table.iter().find(|(k, _)| k.eq_ignore_ascii_case(who)).map(|(_, v)| v.as_str())
        };
        find(own).or_else(|| find(&self.users))
    }
}

/// Whether `name` is covered by `patterns` (empty: everything; a pattern
/// ending in `*` covers what starts with the rest).
pub(crate) fn covers(patterns: &[String], name: &str) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => p == name,
        })
}

/// The file, read again when it changes.
#[derive(Clone)]
pub(crate) struct HooksFile {
    path: PathBuf,
    dir: PathBuf,
    loaded: Arc<Mutex<Loaded>>,
}

#[derive(Default)]
struct Loaded {
    /// What the file looked like when it was read (modified time, size,
    /// inode): a change of any re-reads it.
    stamp: Option<(std::time::SystemTime, u64, u64)>,
    config: Arc<HooksConfig>,
}

impl HooksFile {
    /// The `hooks.toml` in `dir` (which may not exist yet).
    pub(crate) fn new(dir: &Path) -> HooksFile {
        HooksFile { path: dir.join(FILE), dir: dir.to_owned(), loaded: Arc::default() }
    }

    /// The hooks in force: the file as it is now, or as it last parsed.
    pub(crate) fn current(&self) -> Arc<HooksConfig> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let meta = std::fs::metadata(&self.path).ok();
        let stamp = meta.as_ref().and_then(|m| Some((m.modified().ok()?, m.len(), m.ino())));
        if stamp != loaded.stamp {
            loaded.stamp = stamp;
            match self.read(meta.as_ref()) {
                Ok(config) => {
                    tracing::info!(path = %self.path.display(), "hooks loaded");
                    loaded.config = Arc::new(config);
                }
                Err(e) => tracing::error!(error = %e, "hooks.toml not taken; the previous hooks stay in force"),
            }
        }
        loaded.config.clone()
    }

    fn read(&self, meta: Option<&std::fs::Metadata>) -> Result<HooksConfig, ConfigError> {
        let Some(meta) = meta else { return Ok(HooksConfig::default()) };
        let text = std::fs::read_to_string(&self.path).map_err(|e| ConfigError::Read(self.path.clone(), e))?;
        let private = meta.mode() & 0o077 == 0;
        HooksConfig::parse(&text, &self.dir, private).map_err(|e| ConfigError::Invalid(self.path.clone(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[users]
octocat = "alice"
"Bob@Example.com" = "bob"

[github]
secret = "a-github-secret-of-some-length"
repositories = ["octo-org/octo-repo"]
branches = ["main", "release/*"]
notify = { failure = 5, success = "off" }

[gitlab]
token_file = "gitlab.secret"
users = { root = "carol" }

[generic.jenkins]
secret = "a-jenkins-secret-of-some-length"
users = ["alice"]
"#;

    #[test]
    fn the_sample_parses_with_defaults_and_mappings() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("gitlab.secret"), "a-gitlab-token-of-some-length\n").unwrap();
        let config = HooksConfig::parse(SAMPLE, tmp.path(), true).unwrap();
        let github = config.github.as_ref().unwrap();
        assert_eq!(github.notify.failure, Level(Some(5)));
        assert_eq!(github.notify.success, Level(None));
        assert_eq!(github.notify.deployment, Level(Some(3)));
        assert!(covers(&github.branches, "release/1.4") && !covers(&github.branches, "feature/x"));
        let gitlab = config.gitlab.as_ref().unwrap();
        assert_eq!(gitlab.key, b"a-gitlab-token-of-some-length");
        assert_eq!(config.user_of(&gitlab.users, "ROOT"), Some("carol"));
        assert_eq!(config.user_of(&gitlab.users, "bob@example.com"), Some("bob"));
        assert_eq!(config.user_of(&gitlab.users, "mallory"), None);
        assert!(HooksConfig::parse(SAMPLE, tmp.path(), false).unwrap_err().contains("chmod 600"));
    }

    #[test]
    fn bad_files_say_why() {
        let dir = Path::new("/nonexistent");
        let short = "[github]\nsecret = \"short\"\n";
        assert!(HooksConfig::parse(short, dir, true).unwrap_err().contains("16"));
        let both = "[github]\nsecret = \"0123456789abcdef\"\nsecret_file = \"x\"\n";
        assert!(HooksConfig::parse(both, dir, true).unwrap_err().contains("exactly one"));
        let level = "[github]\nsecret = \"0123456789abcdef\"\nnotify = { failure = 9 }\n";
        assert!(HooksConfig::parse(level, dir, true).is_err());
        assert!(HooksConfig::parse("[github]\nsecrets = 1\n", dir, true).is_err());
    }

    #[test]
    fn the_file_is_read_again_when_it_changes_and_a_bad_one_keeps_the_last() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let file = HooksFile::new(tmp.path());
        assert!(file.current().github.is_none(), "no file: no hooks");
        let path = tmp.path().join(FILE);
        std::fs::write(&path, "[generic.ci]\nsecret = \"0123456789abcdef\"\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(file.current().generic.contains_key("ci"));
        std::fs::write(&path, "[generic.ci2]\nsecret = \"0123456789abcdef\"\n# longer\n").unwrap();
        assert!(file.current().generic.contains_key("ci2"));
        std::fs::write(&path, "not toml at all [[[").unwrap();
        assert!(file.current().generic.contains_key("ci2"), "a broken file keeps the last good one");
    }
}
