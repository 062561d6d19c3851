//! Resolve once, after parsing: the configuration, the snapshotter, who
//! this host is, its volumes and filter values, and the EC2 client. Each
//! command then runs with what it needs and nothing re-reads the command
//! line (the ripgrep "parse, then resolve" shape).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};

use crate::cloud::{self, AwsConfig, CallLimits, Ec2};
use crate::config::{self, Config, ConfigError, Userdata, Volume};
use crate::instance::{Identity, Metadata};
use crate::registry::Registry;
use crate::snapshotter::{HostFacts, Snapshotter};

/// The global settings of a run, as plain data.
#[derive(Debug, Clone, Default)]
pub(crate) struct Globals {
    /// `--userdata`: replaces the instance's userdata entirely.
    pub userdata: Option<String>,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--call-attempts`, `--call-timeout`.
    pub calls: CallLimits,
    /// `--region`: over the configuration's and the environment's.
    pub region: Option<String>,
}

/// What every command starts from: the global settings and the
/// snapshotters the program brought.
pub(crate) struct Context {
    pub globals: Globals,
    pub extra: Vec<Arc<dyn Snapshotter>>,
}

/// What a volume command needs of the host and its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    /// The instance's identity is required (mount, make, unmount).
    Instance,
    /// Metadata may be missing if `--userdata` stands in (list, clean,
    /// check-backups off the host).
    Userdata,
}

impl Context {
    /// The configuration file. A program with its own snapshotters runs
    /// without one (default settings); otherwise a missing file is an error.
    pub(crate) fn config(&self) -> Result<Config, ConfigError> {
        match config::load(self.globals.config.as_deref()) {
            Err(ConfigError::NotFound { .. }) if !self.extra.is_empty() => Ok(Config::empty()),
            other => other,
        }
    }

    /// The snapshotters known by name.
    pub(crate) fn registry(&self, config: Option<&Config>) -> Result<Registry> {
        Ok(Registry::new(config, &self.extra)?)
    }

    /// `--userdata`, parsed; a malformed value fails before anything else.
    pub(crate) fn userdata_override(&self) -> Result<Option<Userdata>> {
        self.globals
            .userdata
            .as_deref()
            .map(|text| Userdata::parse(text, "--userdata"))
            .transpose()
            .map_err(Into::into)
    }

    /// Identity and userdata from instance metadata (`--userdata` replaces
    /// the userdata). With `Needs::Userdata` a command may go on without
    /// metadata if `--userdata` was given.
    pub(crate) async fn host(&self, needs: Needs) -> Result<HostFacts> {
        let given = self.userdata_override()?;
        let metadata = async {
            let mut md = Metadata::from_env()?;
            let identity = md.identity().await?;
            let userdata = if given.is_some() {
                None
            } else {
                Some(md.userdata().await?)
            };
            Ok::<_, crate::instance::MetadataError>((identity, userdata))
        }
        .await;
        match (metadata, given) {
            (Ok((identity, text)), given) => {
                tracing::debug!(instance_id = %identity.instance_id, zone = %identity.availability_zone, "instance metadata");
                let userdata = match given {
                    Some(u) => u,
                    None => Userdata::parse(text.as_deref().unwrap_or(""), "instance userdata")?,
                };
                Ok(HostFacts::new(Some(identity), userdata))
            }
            (Err(e), Some(userdata)) if needs == Needs::Userdata => {
                tracing::warn!("{e}; going on with --userdata and no instance");
                Ok(HostFacts::new(None, userdata))
            }
            (Err(e), _) => Err(e.into()),
        }
    }

    /// The region: `--region`, else the config file's, else the SDK's
    /// environment chain, else the instance's; with where it came from.
    pub(crate) async fn region(
        &self,
        config: Option<&Config>,
        host: &HostFacts,
    ) -> Result<(String, &'static str)> {
        if let Some(r) = &self.globals.region {
            return Ok((r.clone(), "--region"));
        }
        if let Some(r) = config.and_then(|c| c.region.clone()) {
            return Ok((r, "configuration"));
        }
        if let Some(r) = cloud::region_from_environment().await {
            return Ok((r, "environment"));
        }
        if let Some(id) = &host.identity {
            return Ok((id.region.clone(), "instance metadata"));
        }
        bail!("no AWS region: set region in the configuration or AWS_REGION")
    }

    /// An EC2 client for the region.
    pub(crate) async fn ec2(&self, config: Option<&Config>, host: &HostFacts) -> Result<Ec2> {
        let (region, _) = self.region(config, host).await?;
        Ok(Ec2::new(
            &AwsConfig::load(&region, self.globals.calls).await,
        ))
    }

    /// Everything a volume command works with, for the snapshotter `name`.
    /// `with_volumes == false` skips resolving the volume list (clean
    /// needs only the filter tags, and may run off the host).
    pub(crate) async fn volumes(
        &self,
        name: &str,
        needs: Needs,
        with_volumes: bool,
    ) -> Result<VolumeContext> {
        let config = self.config()?;
        let snapshotter = self.registry(Some(&config))?.get(name)?;
        let host = self.host(needs).await?;
        if needs == Needs::Instance && host.identity.is_none() {
            bail!("{name}: the instance's identity is needed");
        }
        let volumes = if with_volumes {
            snapshotter
                .volumes(&host)
                .map_err(|e| anyhow::anyhow!("{e}"))?
        } else {
            Vec::new()
        };
        let filters = snapshotter
            .filter_tags(&host)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if filters.is_empty() {
            bail!("snapshotter '{name}' gave no filter tags: its snapshots could not be told from any other's");
        }
        let owners = snapshotter.snapshot_owners();
        if owners.is_empty() {
            bail!("snapshotter '{name}' gave no snapshot owners: say \"self\" for this account's");
        }
        let (region, _) = self.region(Some(&config), &host).await?;
        let ec2 = Ec2::new(&AwsConfig::load(&region, self.globals.calls).await);
        Ok(VolumeContext {
            snapshotter,
            host,
            volumes,
            filters,
            owners,
            ec2,
            region,
            calls: self.globals.calls,
            device_root: config.device_root.clone(),
        })
    }
}

/// A volume command's resolved world.
pub(crate) struct VolumeContext {
    pub snapshotter: Arc<dyn Snapshotter>,
    pub host: HostFacts,
    /// What `Snapshotter::volumes` returned (empty when not asked for).
    pub volumes: Vec<Volume>,
    /// What `Snapshotter::filter_tags` returned; never empty.
    pub filters: Vec<(String, String)>,
    /// What `Snapshotter::snapshot_owners` returned (`self` and/or account
    /// ids); never empty. Every tag-filtered snapshot lookup uses it.
    pub owners: Vec<String>,
    pub ec2: Ec2,
    pub region: String,
    /// How hard each EC2 call tries.
    pub calls: CallLimits,
    /// Where block devices appear (`/dev`, or the lab's folder).
    pub device_root: PathBuf,
}

impl VolumeContext {
    /// The instance's identity; `Context::volumes` with `Needs::Instance`
    /// made sure it is there.
    pub(crate) fn identity(&self) -> Result<&Identity> {
        self.host
            .identity
            .as_ref()
            .context("the instance's identity is needed")
    }

    /// Another EC2 client for the same region that tries each call at most
    /// `attempts` times (inside a freeze every retry lengthens it).
    pub(crate) async fn ec2_with_attempts(&self, attempts: u32) -> Ec2 {
        let limits = CallLimits {
            attempts,
            ..self.calls
        };
        Ec2::new(&AwsConfig::load(&self.region, limits).await)
    }
}
