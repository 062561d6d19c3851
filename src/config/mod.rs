//! TOML profiles: find the file, parse it, validate it, and resolve the
//! parts that depend on userdata (filter tag values, volumes listed in
//! userdata).
//!
//! ```toml
//! [profiles.solr]
//! filter_tags = ["role", "cluster", "environment"]
//!
//! [[profiles.solr.volumes]]
//! device = "/dev/sdf"
//! mount_point = "/mnt/solr"
//! size = 50
//! file_system = "ext4"
//! ```

mod device_name;
pub(crate) mod mount_point;
mod problem;
mod profile;
mod raw;
mod userdata;
mod validate;
mod validate_copies;
mod validate_volume;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub(crate) use device_name::kernel_device_name;
pub(crate) use problem::Origin;
#[cfg(test)]
pub(crate) use profile::Template;
#[cfg(test)]
pub(crate) use profile::DEFAULT_DESCRIPTION;
pub(crate) use profile::{Config, Profile, Tablesnap, VolumeSource, DEFAULT_RETENTION};
pub use profile::{CopyTarget, FileSystem, HookPoint, Prewarm, Volume, VolumeType};
pub use userdata::Userdata;

/// Environment variable naming the configuration file.
/// EC2's range of `VolumeInitializationRate`, MiB/s.
pub(crate) const INIT_RATES: std::ops::RangeInclusive<i64> = 100..=300;

pub(crate) const CONFIG_ENV: &str = "SNAPTASTIC_CONFIG";
/// Environment variable overriding `device_root`.
pub(crate) const DEVICE_ROOT_ENV: &str = "SNAPTASTIC_DEVICE_ROOT";
/// Where the configuration is looked for when neither `--config` nor
/// `$SNAPTASTIC_CONFIG` names it.
pub(crate) const DEFAULT_PATHS: [&str; 2] =
    ["/etc/snaptastic/snaptastic.toml", "/etc/snaptastic.toml"];

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("no configuration file found (looked at {}); pass --config PATH or set {CONFIG_ENV}", .searched.join(", "))]
    NotFound { searched: Vec<String> },

    #[error("cannot read configuration file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// TOML syntax or type errors (one at a time; serde stops at the first).
    #[error("{place}: {message}")]
    Parse { place: String, message: String },

    /// Every validation problem, one per line.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),

    #[error("no profile '{name}' in {path}; defined profiles: {}", .defined.join(", "))]
    UnknownProfile {
        name: String,
        path: PathBuf,
        defined: Vec<String>,
    },

    #[error("{0}")]
    Userdata(String),
}

/// Which file to read: `--config`, then `$SNAPTASTIC_CONFIG`, then the
/// first of `DEFAULT_PATHS` that exists. An explicitly named file must
/// exist (a typo should not silently fall back to another file).
pub(crate) fn locate(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    DEFAULT_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| ConfigError::NotFound {
            searched: DEFAULT_PATHS.iter().map(|s| s.to_string()).collect(),
        })
}

/// Find, read and validate the configuration.
pub(crate) fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
    let path = locate(explicit)?;
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let mut config = parse(&text, &path)?;
    if let Some(root) = std::env::var_os(DEVICE_ROOT_ENV).filter(|r| !r.is_empty()) {
        config.device_root = PathBuf::from(root);
    }
    Ok(config)
}

/// Parse and validate configuration text; `path` is only used in messages.
pub(crate) fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let origin = Origin::File { path, text };
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| parse_error(&origin, &e))?;
    validate::validate_config(raw, path).map_err(|problems| {
        ConfigError::Invalid(problems.iter().map(|p| origin.render(p)).collect())
    })
}

fn parse_error(origin: &Origin<'_>, e: &toml::de::Error) -> ConfigError {
    ConfigError::Parse {
        place: origin.place(e.span().as_ref()),
        message: e.message().trim().replace('\n', " "),
    }
}

impl Config {
    /// No file: no profiles, no `[tablesnap]`, the region from the
    /// environment or the instance, devices under `/dev` (or
    /// `$SNAPTASTIC_DEVICE_ROOT`). For programs that bring their own
    /// snapshotters.
    pub(crate) fn empty() -> Config {
        Config {
            path: PathBuf::from("(no configuration file)"),
            region: None,
            device_root: std::env::var_os(DEVICE_ROOT_ENV)
                .filter(|r| !r.is_empty())
                .map_or_else(|| PathBuf::from("/dev"), PathBuf::from),
            profiles: Default::default(),
            tablesnap: None,
        }
    }

    /// A profile by name; an unknown name lists the defined ones. (At run
    /// time the registry answers names; tests reach profiles this way.)
    #[cfg(test)]
    pub(crate) fn profile(&self, name: &str) -> Result<&Profile, ConfigError> {
        self.profiles
            .get(name)
            .ok_or_else(|| ConfigError::UnknownProfile {
                name: name.to_string(),
                path: self.path.clone(),
                defined: self.profiles.keys().cloned().collect(),
            })
    }
}

impl Profile {
    /// The profile's volumes, reading and validating them from userdata
    /// when the profile says so.
    pub(crate) fn resolve_volumes(&self, userdata: &Userdata) -> Result<Vec<Volume>, ConfigError> {
        match &self.volumes {
            VolumeSource::Listed(v) => Ok(v.clone()),
            VolumeSource::FromUserdata(key) => {
                let text = userdata.volumes_as_toml(key, &self.name)?;
                let list = volumes_from_toml(
                    &text,
                    &Origin::Userdata { key },
                    &format!("profile '{}'", self.name),
                )?;
                if list.is_empty() {
                    return Err(ConfigError::Userdata(format!(
                        "userdata '{key}' lists no volumes for profile '{}'",
                        self.name
                    )));
                }
                Ok(list)
            }
        }
    }

    /// `(tag key, value)` pairs that select this host's snapshots, values
    /// taken from userdata.
    pub(crate) fn filter_values(
        &self,
        userdata: &Userdata,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        let mut missing = Vec::new();
        let mut out = Vec::new();
        for key in &self.filter_tags {
            match userdata.get_str(key) {
                Some(v) => out.push((key.clone(), v)),
                None => missing.push(key.as_str()),
            }
        }
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(ConfigError::Userdata(format!(
                "userdata has no value for {} (filter_tags of profile '{}'); set it in the instance userdata or pass --userdata '{{\"{}\": \"...\"}}'",
                missing.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", "),
                self.name,
                missing[0]
            )))
        }
    }
}

/// Volumes from a TOML text `volumes = [{...}, ...]`, validated as the
/// configuration file's are; `ctx` says whose they are in messages.
fn volumes_from_toml(
    text: &str,
    origin: &Origin<'_>,
    ctx: &str,
) -> Result<Vec<Volume>, ConfigError> {
    let list: raw::RawVolumeList = toml::from_str(text).map_err(|e| {
        ConfigError::Userdata(format!(
            "{} (volumes of {ctx}): {}",
            origin.place(None),
            e.message().trim()
        ))
    })?;
    let mut problems = problem::Problems::default();
    validate_volume::validate_volumes(list.volumes, ctx, &mut problems).ok_or_else(|| {
        ConfigError::Invalid(problems.list.iter().map(|p| origin.render(p)).collect())
    })
}

impl Volume {
    /// A volume with the defaults of a configuration file's bare
    /// `device` + `mount_point` + `size` (xfs, gp3, `defaults` mount
    /// options), checked as the file's volumes are: a device name EC2
    /// accepts, an absolute mount point, a size the type allows.
    pub fn new(device: &str, mount_point: &str, size_gib: u32) -> Result<Volume, ConfigError> {
        let mut t = toml::Table::new();
        t.insert("device".into(), device.into());
        t.insert("mount_point".into(), mount_point.into());
        t.insert("size".into(), i64::from(size_gib).into());
        Self::from_table(t)
    }

    /// The same volume with another file system (made on a new, empty
    /// volume; a restored one keeps the snapshot's).
    pub fn with_file_system(mut self, file_system: FileSystem) -> Volume {
        self.file_system = file_system;
        self
    }

    /// A volume from the keys of a configuration file's volume table
    /// (`device`, `mount_point`, `size`, `file_system`, `volume_type`,
    /// `iops`, ...), validated the same way; for volumes listed elsewhere,
    /// such as a provisioning file.
    pub fn from_toml(text: &str) -> Result<Volume, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            place: "volume".into(),
            message: e.message().trim().replace('\n', " "),
        })?;
        Self::from_table(table)
    }

    fn from_table(table: toml::Table) -> Result<Volume, ConfigError> {
        let mut doc = toml::Table::new();
        doc.insert(
            "volumes".into(),
            toml::Value::Array(vec![toml::Value::Table(table)]),
        );
        let text = toml::to_string(&doc).map_err(|e| ConfigError::Userdata(e.to_string()))?;
        let mut list = volumes_from_toml(&text, &Origin::Code, "volume")?;
        list.pop()
            .ok_or_else(|| ConfigError::Userdata("no volume".into()))
    }
}

#[cfg(test)]
#[path = "../proptests/config.rs"]
mod proptests;
#[cfg(test)]
mod tests;
