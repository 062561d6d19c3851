//! Dispatch a parsed command line, and the pieces every command shares:
//! the configuration, who this host is, which region, an EC2 client.

use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::cli::{Cli, Command, GlobalArgs};
use crate::cloud::{self, Ec2};
use crate::config::{self, Config, Userdata};
use crate::instance::{Identity, Metadata};
use crate::{checks, volumes};

/// Run one command; `Err` is printed by `main` and exits 1.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let ctx = Context { global: cli.global };
    match cli.command {
        Command::Test => checks::run(&ctx).await,
        Command::ListVolumes(args) => volumes::list::run(&ctx, &args).await,
        Command::MountSnapshots(args) => volumes::mount::run(&ctx, &args).await,
        Command::MakeSnapshots(args) => volumes::snapshot::run(&ctx, &args).await,
        Command::UnmountSnapshots(args) => volumes::unmount::run(&ctx, &args).await,
        Command::Clean(args) => volumes::clean::run(&ctx, &args).await,
        Command::CheckBackups(args) => volumes::check::run(&ctx, &args).await,
        Command::Tablesnap(args) => crate::files::snap::run(&ctx, &args).await,
        Command::Tableslurp(args) => crate::files::slurp::run(&ctx, &args).await,
        Command::Tablechop(args) => crate::files::chop::run(&ctx, &args).await,
    }
}

/// What a command knows about the host it runs on.
pub struct Host {
    /// `None` when metadata is unreachable and the command can do without
    /// (off EC2 with `--userdata` and a configured region).
    pub identity: Option<Identity>,
    pub userdata: Userdata,
}

/// Shared state of one run.
pub struct Context {
    pub global: GlobalArgs,
}

impl Context {
    pub fn config(&self) -> Result<Config> {
        Ok(config::load(self.global.config.as_deref())?)
    }

    /// `--userdata`, parsed; a malformed value fails before anything else.
    pub fn userdata_override(&self) -> Result<Option<Userdata>> {
        self.global
            .userdata
            .as_deref()
            .map(|text| Userdata::parse(text, "--userdata"))
            .transpose()
            .map_err(Into::into)
    }

    /// Identity and userdata from instance metadata (`--userdata` replaces
    /// the userdata). With `need_instance == false` a command may go on
    /// without metadata if `--userdata` was given.
    pub async fn host(&self, need_instance: bool) -> Result<Host> {
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
                Ok(Host {
                    identity: Some(identity),
                    userdata,
                })
            }
            (Err(e), Some(userdata)) if !need_instance => {
                tracing::warn!("{e}; going on with --userdata and no instance");
                Ok(Host {
                    identity: None,
                    userdata,
                })
            }
            (Err(e), _) => Err(e.into()),
        }
    }

    /// The region: the config file's, else the SDK's environment chain,
    /// else the instance's.
    pub async fn region(
        &self,
        config: Option<&Config>,
        host: &Host,
    ) -> Result<(String, &'static str)> {
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
    pub async fn ec2(&self, config: Option<&Config>, host: &Host) -> Result<Ec2> {
        self.ec2_with_attempts(config, host, cloud::MAX_ATTEMPTS)
            .await
    }

    /// An EC2 client that tries each call at most `attempts` times.
    pub async fn ec2_with_attempts(
        &self,
        config: Option<&Config>,
        host: &Host,
        attempts: u32,
    ) -> Result<Ec2> {
        let (region, _) = self.region(config, host).await?;
        Ok(Ec2::new(&cloud::sdk_config(&region, attempts).await))
    }
}

/// Ask as the original did; `y`, `yes` and `yeay` proceed.
pub fn confirm(question: &str) -> Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("{question} needs an answer, and there is no terminal to ask on: pass --yes when running unattended");
    }
    print!("{question} [y/N]: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "yeay"))
}

/// Run tasks concurrently and return their results in the order given. A
/// task that panicked yields `Err` with the panic, and the others still
/// run to the end. Dropping the returned future aborts them all.
pub async fn join_in_order<T, F>(futures: impl IntoIterator<Item = F>) -> Vec<Result<T, String>>
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut index = std::collections::HashMap::new();
    for (i, f) in futures.into_iter().enumerate() {
        index.insert(set.spawn(f).id(), i);
    }
    let mut out: Vec<Option<Result<T, String>>> = (0..index.len()).map(|_| None).collect();
    while let Some(joined) = set.join_next_with_id().await {
        match joined {
            Ok((id, r)) => out[index[&id]] = Some(Ok(r)),
            Err(e) => out[index[&e.id()]] = Some(Err(format!("internal error: {e}"))),
        }
    }
    out.into_iter().flatten().collect()
}
