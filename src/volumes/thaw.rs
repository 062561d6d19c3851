//! `thaw NAME`: thaw the profile's filesystems if they are frozen. The
//! operator's way out after a run was killed while frozen and the
//! watchdog could not help (both killed at once with SIGKILL). Works
//! without EC2: only the volume list is needed, and off EC2 (metadata
//! unreachable) the userdata-free view of the profile.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, Result};

use crate::context::{Context, Needs};
use crate::host::freeze::thaw_mount_point;
use crate::snapshotter::HostFacts;

pub(crate) async fn run(ctx: &Context, name: &str) -> Result<ExitCode> {
    let config = ctx.config()?;
    let snapshotter = ctx.registry(Some(&config))?.get(name)?;
    let host = match ctx.host(Needs::Userdata).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!("{e:#}; thawing the volumes the profile lists without userdata");
            HostFacts::default()
        }
    };
    let volumes = snapshotter.volumes(&host).map_err(|e| anyhow!("{e}"))?;
    let mut failures = crate::tasks::Failures::default();
    for v in &volumes {
        let mp = Path::new(&v.mount_point);
        match tokio::task::spawn_blocking({
            let mp = mp.to_path_buf();
            move || thaw_mount_point(&mp)
        })
        .await?
        {
            Ok(true) => println!("thawed     {}", v.mount_point),
            Ok(false) => println!("not frozen {}", v.mount_point),
            Err(e) => {
                println!("FAILED     {}: {e}", v.mount_point);
                failures.add(&v.mount_point, e);
            }
        }
    }
    failures.finish()
}
