//! The snapshotters a run knows by name: the configuration's profiles plus
//! any the program registered (`snaptastic::main(extra)`). A name is taken
//! once; an unknown name is answered with the known ones.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use crate::config::{Config, ConfigError};
use crate::snapshotter::Snapshotter;

#[derive(Debug, Error)]
pub(crate) enum RegistryError {
    #[error("two snapshotters are named '{name}' ({first} and {second}); rename one")]
    Duplicate {
        name: String,
        first: &'static str,
        second: &'static str,
    },

    #[error("{}", unknown(.name, .config.as_ref(), .profiles, .builtin))]
    Unknown {
        name: String,
        config: Option<PathBuf>,
        profiles: Vec<String>,
        builtin: Vec<String>,
    },
}

fn unknown(
    name: &str,
    config: Option<&PathBuf>,
    profiles: &[String],
    builtin: &[String],
) -> String {
    let mut out = match config {
        Some(path) => ConfigError::UnknownProfile {
            name: name.to_string(),
            path: path.clone(),
            defined: profiles.to_vec(),
        }
        .to_string(),
        None => format!("no snapshotter '{name}' (no configuration file was read)"),
    };
    if !builtin.is_empty() {
        out.push_str(&format!(
            "; built into this program: {}",
            builtin.join(", ")
        ));
    }
    out
}

/// Where a snapshotter came from, for messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Profile,
    Program,
}

impl Origin {
    fn label(self) -> &'static str {
        match self {
            Origin::Profile => "a profile of the configuration",
            Origin::Program => "one built into this program",
        }
    }
}

/// Snapshotters by name.
#[derive(Default)]
pub(crate) struct Registry {
    by_name: BTreeMap<String, (Origin, Arc<dyn Snapshotter>)>,
    config: Option<PathBuf>,
}

impl Registry {
    /// The configuration's profiles (if a file was read) and the
    /// program's own snapshotters; a name used twice is an error.
    pub(crate) fn new(
        config: Option<&Config>,
        extra: &[Arc<dyn Snapshotter>],
    ) -> Result<Self, RegistryError> {
        let mut r = Registry {
            // Without a file (`Config::empty`) there is no path to name.
            config: config
                .filter(|c| !c.profiles.is_empty())
                .map(|c| c.path.clone()),
            ..Default::default()
        };
        let profiles = config.into_iter().flat_map(|c| c.profiles.values());
        for p in profiles {
            r.add(Origin::Profile, Arc::new(p.clone()))?;
        }
        for s in extra {
            r.add(Origin::Program, s.clone())?;
        }
        Ok(r)
    }

    fn add(&mut self, origin: Origin, s: Arc<dyn Snapshotter>) -> Result<(), RegistryError> {
        let name = s.name().to_string();
        if let Some((first, _)) = self.by_name.get(&name) {
            return Err(RegistryError::Duplicate {
                name,
                first: first.label(),
                second: origin.label(),
            });
        }
        self.by_name.insert(name, (origin, s));
        Ok(())
    }

    /// The snapshotter called `name`.
    pub(crate) fn get(&self, name: &str) -> Result<Arc<dyn Snapshotter>, RegistryError> {
        match self.by_name.get(name) {
            Some((_, s)) => Ok(s.clone()),
            None => Err(RegistryError::Unknown {
                name: name.to_string(),
                config: self.config.clone(),
                profiles: self.names(Origin::Profile),
                builtin: self.names(Origin::Program),
            }),
        }
    }

    fn names(&self, origin: Origin) -> Vec<String> {
        self.by_name
            .iter()
            .filter(|(_, (o, _))| *o == origin)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Every snapshotter, by name.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<dyn Snapshotter>> {
        self.by_name.values().map(|(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Volume;
    use crate::snapshotter::{HostFacts, SnapshotterError};

    struct Named(&'static str);

    impl Snapshotter for Named {
        fn name(&self) -> &str {
            self.0
        }
        fn volumes(&self, _: &HostFacts) -> Result<Vec<Volume>, SnapshotterError> {
            Ok(Vec::new())
        }
        fn filter_tags(&self, _: &HostFacts) -> Result<Vec<(String, String)>, SnapshotterError> {
            Ok(vec![("role".into(), "x".into())])
        }
        fn description(&self, _: &Volume, _: &HostFacts) -> Result<String, SnapshotterError> {
            Ok(String::new())
        }
    }

    fn config() -> Config {
        crate::config::parse(
            "[profiles.solr]\n[[profiles.solr.volumes]]\ndevice = \"/dev/sdf\"\nmount_point = \"/mnt/solr\"\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap()
    }

    #[test]
    fn profiles_and_program_snapshotters_share_one_namespace() {
        let extra: Vec<Arc<dyn Snapshotter>> = vec![Arc::new(Named("pg"))];
        let r = Registry::new(Some(&config()), &extra).unwrap();
        assert_eq!(r.get("pg").unwrap().name(), "pg");
        assert_eq!(r.get("solr").unwrap().name(), "solr");
        assert_eq!(
            r.get("solar").err().unwrap().to_string(),
            "no profile 'solar' in t.toml; defined profiles: solr; built into this program: pg"
        );
    }

    #[test]
    fn a_name_is_taken_once() {
        let extra: Vec<Arc<dyn Snapshotter>> = vec![Arc::new(Named("solr"))];
        let e = Registry::new(Some(&config()), &extra).err().unwrap();
        assert_eq!(
            e.to_string(),
            "two snapshotters are named 'solr' (a profile of the configuration and one built into this program); rename one"
        );
        let twice: Vec<Arc<dyn Snapshotter>> = vec![Arc::new(Named("a")), Arc::new(Named("a"))];
        assert!(Registry::new(None, &twice).is_err());
    }

    #[test]
    fn without_a_configuration_the_program_names_are_listed() {
        let extra: Vec<Arc<dyn Snapshotter>> = vec![Arc::new(Named("pg"))];
        let r = Registry::new(None, &extra).unwrap();
        assert_eq!(
            r.get("x").err().unwrap().to_string(),
            "no snapshotter 'x' (no configuration file was read); built into this program: pg"
        );
    }
}
