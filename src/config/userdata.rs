//! Instance userdata: a JSON object whose values fill filter tags and
//! description placeholders, and may list volumes. `--userdata` replaces it
//! entirely, as in snaptastic 0.2.12.

use serde_json::{Map, Value};

use super::{ConfigError, FileSystem};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Userdata(Map<String, Value>);

impl Userdata {
    /// Parse userdata text; `source` names where it came from in errors
    /// ("--userdata" or "instance userdata"). Empty text is an empty object
    /// (an instance launched without userdata).
    pub fn parse(text: &str, source: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(other) => Err(ConfigError::Userdata(format!(
                "{source} must be a JSON object like '{{\"role\": \"db\"}}', got {}",
                kind(&other)
            ))),
            Err(e) => Err(ConfigError::Userdata(format!(
                "{source} is not valid JSON: {e}"
            ))),
        }
    }

    /// A value as tag text: strings as they are, numbers and booleans
    /// printed; objects, arrays and null count as absent.
    pub fn get_str(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The list under `key` as a TOML document `volumes = [...]`, so the
    /// file's volume validation can read it, after reading each field as
    /// 0.2.12's `EBSVolume` keywords were written (see `as_0_2_12_wrote`).
    /// Any other key is left for the validation to refuse by name.
    pub(super) fn volumes_as_toml(&self, key: &str, profile: &str) -> Result<String, ConfigError> {
        let value = self.0.get(key).ok_or_else(|| {
            ConfigError::Userdata(format!(
                "userdata has no '{key}' list (volumes_from_userdata of profile '{profile}')"
            ))
        })?;
        let Value::Array(items) = value else {
            return Err(ConfigError::Userdata(format!(
                "userdata '{key}' must be a list of volume objects, got {}",
                kind(value)
            )));
        };
        let mut table = toml::Table::new();
        let mut list = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Value::Object(obj) = item else {
                return Err(ConfigError::Userdata(format!(
                    "userdata '{key}' item {} must be an object, got {}",
                    i + 1,
                    kind(item)
                )));
            };
            let mut t = toml::Table::new();
            for (k, v) in obj {
                let at = |e: &dyn std::fmt::Display| {
                    ConfigError::Userdata(format!(
                        "userdata '{key}' item {} field '{k}': {e}",
                        i + 1
                    ))
                };
                let Some(v) = as_0_2_12_wrote(k, v).map_err(|e| at(&e))? else {
                    continue;
                };
                let tv: toml::Value = serde_json::from_value(v).map_err(|e| at(&e))?;
                t.insert(k.clone(), tv);
            }
            list.push(toml::Value::Table(t));
        }
        table.insert("volumes".into(), toml::Value::Array(list));
        toml::to_string(&table).map_err(|e| ConfigError::Userdata(format!("userdata '{key}': {e}")))
    }
}

/// A userdata volume field as 0.2.12 took it (`EBSVolume(**volume)`), in
/// the form the file's validation reads, or `None` to leave it out. The
/// relaxations are for userdata only: it is baked into launch templates
/// and AMIs written for 0.2.12, where the file is written for this tool.
///
/// - `null` anywhere, `iops: false` and `iops: 0`: 0.2.12's defaults
///   written out ("no provisioned IOPS"; Python's falsy values).
/// - `check_support`: 0.2.12 ran `which mkfs...` when it was true;
///   mount-snapshots checks for mkfs before changing anything anyway, so
///   the key is accepted and ignored.
/// - `file_system`: the names of 0.2.12's `FILESYSTEMS` table in any case,
///   also as `FILESYSTEMS.XFS` (the Python spelling); ones this tool cannot
///   make (jfs, ext3, reiserfs) are left for the validation to name.
///
/// `size`, `mount_options`, `delete_on_termination` and
/// `device_name_offset` mean what they meant and pass as they are.
fn as_0_2_12_wrote(field: &str, value: &Value) -> Result<Option<Value>, String> {
    match (field, value) {
        (_, Value::Null) => Ok(None),
        ("check_support", v) => {
            tracing::debug!("userdata volume: check_support = {v} is 0.2.12's; ignored");
            Ok(None)
        }
        ("iops", Value::Bool(false)) => Ok(None),
        ("iops", Value::Number(n)) if n.as_i64() == Some(0) => Ok(None),
        ("iops", Value::Bool(true)) => {
            Err("true is not a number of IOPS; write a number like 3000, or false for none".into())
        }
        ("file_system", Value::String(name)) => {
            let plain = name.strip_prefix("FILESYSTEMS.").unwrap_or(name);
            match FileSystem::parse(&plain.to_ascii_lowercase()) {
                Some(fs) => Ok(Some(Value::String(fs.as_str().to_string()))),
                None => Ok(Some(value.clone())),
            }
        }
        _ => Ok(Some(value.clone())),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[path = "../proptests/userdata.rs"]
mod proptests;
