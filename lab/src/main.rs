//! snaptastic-lab: a believable EC2 on one machine, for tests, the demo and
//! benchmarks.
//!
//! It starts moto (or adopts a running one), creates an instance in it, and
//! stands in front of it as an HTTP proxy that hot-plugs attached volumes as
//! loop devices under a device root, copies images on snapshot and restore,
//! serves instance metadata, slows life cycles down and injects faults. It
//! also plays S3 where moto differs in ways a client can trip on: part
//! checksums are checked, and an SSE-KMS object's ETag is not its MD5. On
//! SIGINT/SIGTERM (or when its parent dies, with `--exit-with-parent`) it
//! unmounts, releases and deletes everything it made.

mod checksums;
mod control;
mod copies;
mod devices;
mod effects;
mod faults;
mod imds;
mod locks;
mod moto;
mod proxy;
mod replies;
mod restore_speed;
mod rules;
mod s3_names;
mod state;
mod xml;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Parser;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use devices::{Devices, Mode};
use rules::Rules;
use state::Lab;

/// A local EC2 lab for snaptastic: moto behind a proxy that makes attached
/// volumes real loop devices.
///
/// Prints `READY <env file>` when serving; `source` the env file to point
/// snaptastic (or the AWS CLI) at the lab.
#[derive(Debug, Parser)]
#[command(
    name = "snaptastic-lab",
    after_help = "Example:\n  sudo snaptastic-lab --dir /tmp/lab --devices nvme &\n  . /tmp/lab/lab.env\n  snaptastic list-volumes solr\n\nControl (on the proxy port):\n  curl $SNAPTASTIC_LAB_CONTROL/state\n  curl -X PUT --data-binary @rules.toml $SNAPTASTIC_LAB_CONTROL/rules\n  curl -X PUT --data '{\"role\": \"solr\"}' $SNAPTASTIC_LAB_CONTROL/userdata"
)]
struct Args {
    /// Working directory: images, device root (DIR/dev), env file, logs.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Use this moto instead of starting one.
    #[arg(long, value_name = "URL")]
    moto_url: Option<String>,
    /// Send S3 requests to this S3 server (s3s-fs, MinIO) instead of
    /// moto, their Host header as the client sent it (SigV4 signs it);
    /// EC2 calls still go to moto. Faults and counts apply as for moto.
    #[arg(long, value_name = "URL")]
    s3_url: Option<String>,
    /// How attached volumes appear.
    #[arg(long, value_enum, default_value = "xen")]
    devices: Mode,
    /// Device root (default DIR/dev).
    #[arg(long, value_name = "PATH")]
    device_root: Option<PathBuf>,
    /// Allow the device root to be the machine's real /dev.
    #[arg(long)]
    allow_real_dev: bool,
    /// Rules file (faults, life cycles); see rules.rs.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// Delay before an attached volume's device appears (overrides rules).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    device_delay: Option<std::time::Duration>,
    /// Instance userdata (settable later with PUT /_lab/userdata).
    #[arg(long, value_name = "TEXT")]
    userdata: Option<String>,
    /// The Region the lab's instance is in (its metadata's placement);
    /// calls signed for another Region reach that Region's moto backend.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Keep volume and snapshot images here instead of DIR/images: a
    /// second lab (another Region, a DR host) given the first one's
    /// images directory restores the first one's snapshot copies. A lab
    /// with --images never deletes that directory nor loop devices it did
    /// not plug; its owner (the lab whose DIR/images it is) does, so stop
    /// the guests first.
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// Proxy port (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Metadata port (0: any free port).
    #[arg(long, default_value_t = 0)]
    imds_port: u16,
    /// Refuse IMDSv1 (requests without a token).
    #[arg(long)]
    imds_v2_only: bool,
    /// Stop (and clean up) when the process that started the lab exits.
    #[arg(long)]
    exit_with_parent: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lab: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The emulator script of this repository.
fn emulator_script() -> PathBuf {
    std::env::var_os("SNAPTASTIC_EMULATOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/emulator.sh"))
}

async fn run(args: Args) -> Result<()> {
    if args.exit_with_parent {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
            .context("asking to be told when the parent exits")?;
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("the lab needs root (loop devices)");
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    let root = args.device_root.clone().unwrap_or_else(|| dir.join("dev"));
    std::fs::create_dir_all(&root)?;
    if root.canonicalize()? == Path::new("/dev") && !args.allow_real_dev {
        bail!(
            "refusing to use the real /dev as device root (pass --allow-real-dev if you mean it)"
        );
    }

    let mut rules = match &args.rules {
        Some(p) => Rules::parse(&std::fs::read_to_string(p)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => Rules::default(),
    };
    if args.device_delay.is_some() {
        rules.device_delay = args.device_delay;
    }

    // moto: adopt or start.
    let moto_state = dir.join("moto.state");
    let (moto_url, own_moto) = match &args.moto_url {
        Some(u) => (u.clone(), false),
        None => {
            let out = Command::new(emulator_script())
                .arg("start")
                .arg(&moto_state)
                .output()
                .context("starting moto with scripts/emulator.sh")?;
            if !out.status.success() {
                bail!("starting moto: {}", String::from_utf8_lossy(&out.stderr));
            }
            (
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
                true,
            )
        }
    };
    let zone = format!("{}a", args.region);
    let mut moto = moto::Moto::new(&moto_url, &args.region);
    if let Some(s3) = &args.s3_url {
        moto = moto.with_s3(s3);
    }
    let result = serve(&args, &dir, root, rules, moto, zone).await;
    if own_moto {
        let _ = Command::new(emulator_script())
            .arg("stop")
            .arg(&moto_state)
            .status();
    }
    result
}

async fn serve(
    args: &Args,
    dir: &Path,
    root: PathBuf,
    rules: Rules,
    moto: moto::Moto,
    zone: String,
) -> Result<()> {
    let instance_id = moto
        .run_instance(&zone)
        .await
        .context("creating the lab's instance in moto")?;
    let (images, shared) = match &args.images {
        Some(d) => (d.clone(), true),
        None => (dir.join("images"), false),
    };
    let devices = Devices::new(root.clone(), images.clone(), args.devices, shared)?;
    let lab = Arc::new(Lab::new(
        moto.clone(),
        instance_id.clone(),
        zone,
        args.region.clone(),
        devices,
        rules,
        args.userdata.clone(),
    ));

    let proxy = TcpListener::bind(("127.0.0.1", args.port)).await?;
    let imds = TcpListener::bind(("127.0.0.1", args.imds_port)).await?;
    let proxy_addr = proxy.local_addr()?;
    let imds_addr = imds.local_addr()?;

    let l1 = lab.clone();
    let proxy_task = tokio::spawn(accept(proxy, move |req| proxy::handle(l1.clone(), req)));
    let (l2, v2_only) = (lab.clone(), args.imds_v2_only);
    let imds_task = tokio::spawn(accept(imds, move |req| {
        imds::handle(l2.clone(), v2_only, req)
    }));

    let env_file = dir.join("lab.env");
    write_env(
        &env_file,
        &Env {
            proxy: proxy_addr,
            imds: imds_addr,
            region: &args.region,
            root: &root,
            images: &images,
            instance: &instance_id,
            moto: &moto.url,
        },
    )?;
    println!("READY {}", env_file.display());
    std::io::stdout().flush()?;
    eprintln!(
        "lab: instance {instance_id}, EC2 at http://{proxy_addr}, metadata at http://{imds_addr}, devices under {} ({:?})",
        root.display(),
        args.devices
    );

    wait_for_stop().await;
    eprintln!("lab: stopping; cleaning up");
    proxy_task.abort();
    imds_task.abort();
    let problems =
        tokio::task::spawn_blocking(move || lab.devices.lock().expect("devices lock").cleanup())
            .await?;
    let _ = std::fs::remove_file(&env_file);
    for p in &problems {
        eprintln!("lab: cleanup: {p}");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{} cleanup problem(s)", problems.len())
    }
}

async fn wait_for_stop() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the lab could never clean up: stop now.
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Serve each connection with `handler`; a handler's error closes its
/// connection without a reply (the lab's `reset` and `lost` faults). Each
/// request runs in a task of its own, to its end even when the client
/// hangs up: as in EC2, a call that arrived is carried out whether or not
/// anyone waits for the reply (a client killed mid-call still leaves its
/// volume, with its bytes).
async fn accept<F, Fut, B, E>(listener: TcpListener, handler: F)
where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<hyper::Response<B>, E>> + Send + 'static,
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: std::error::Error + Send + Sync + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let h = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let call = tokio::spawn(h(req));
                async move {
                    match call.await {
                        Ok(Ok(resp)) => Ok(resp),
                        Ok(Err(e)) => Err(Unanswered(e.to_string())),
                        Err(e) => Err(Unanswered(e.to_string())),
                    }
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A request the lab answers by closing its connection.
#[derive(Debug)]
struct Unanswered(String);

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unanswered {}

/// What the env file tells a shell (or a test) about the lab.
struct Env<'a> {
    proxy: SocketAddr,
    imds: SocketAddr,
    region: &'a str,
    root: &'a Path,
    images: &'a Path,
    instance: &'a str,
    moto: &'a str,
}

fn write_env(path: &Path, env: &Env) -> Result<()> {
    let Env {
        proxy,
        imds,
        region,
        root,
        images,
        instance,
        moto,
    } = env;
    let text = format!(
        "# written by snaptastic-lab; source it to use the lab\n\
         export AWS_ENDPOINT_URL=http://{proxy}\n\
         export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://{imds}\n\
         export AWS_REGION={region}\n\
         export AWS_ACCESS_KEY_ID=testing\n\
         export AWS_SECRET_ACCESS_KEY=testing\n\
         export SNAPTASTIC_DEVICE_ROOT={}\n\
         export SNAPTASTIC_LAB_INSTANCE={instance}\n\
         export SNAPTASTIC_LAB_CONTROL=http://{proxy}/_lab\n\
         export SNAPTASTIC_LAB_MOTO={moto}\n\
         export SNAPTASTIC_LAB_IMAGES={}\n",
        root.display(),
        images.display()
    );
    std::fs::write(path, text)?;
    Ok(())
}
