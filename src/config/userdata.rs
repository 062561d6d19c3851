//! Instance userdata: a JSON object whose values fill filter tags and
//! description placeholders, and may list volumes. `--userdata` replaces it
//! entirely, as in snaptastic 0.2.12.

use serde_json::{Map, Value};

use super::ConfigError;

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
    /// file's volume validation can read it. Nulls are dropped (absent).
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
                if v.is_null() {
                    continue;
                }
                let tv: toml::Value = serde_json::from_value(v.clone()).map_err(|e| {
                    ConfigError::Userdata(format!(
                        "userdata '{key}' item {} field '{k}': {e}",
                        i + 1
                    ))
                })?;
                t.insert(k.clone(), tv);
            }
            list.push(toml::Value::Table(t));
        }
        table.insert("volumes".into(), toml::Value::Array(list));
        toml::to_string(&table).map_err(|e| ConfigError::Userdata(format!("userdata '{key}': {e}")))
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
