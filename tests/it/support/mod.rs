//! Test support: the real binary, the moto emulator, and a small instance
//! metadata server (until the lab serves metadata).

mod frozen;
mod setup;

pub(crate) use frozen::{thaw_if_frozen, writable_within};
pub(crate) use setup::{mounted_at, mounted_lab, mounted_volume, Setup};

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

/// Where `scripts/test.sh` tells tests the emulator listens.
pub(crate) const MOTO_ENV: &str = "SNAPTASTIC_TEST_MOTO_URL";
pub(crate) const REGION: &str = "us-east-1";

/// The emulator's URL, or `None` (after printing why) when it is not
/// running. In CI (`CI` set) a missing emulator fails the test instead.
pub(crate) fn moto() -> Option<String> {
    match std::env::var(MOTO_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{MOTO_ENV} is not set in CI: run the tests through scripts/test.sh")
        }
        _ => {
            eprintln!("SKIPPED: needs the moto emulator; run scripts/test.sh (or set {MOTO_ENV})");
            None
        }
    }
}

/// A name unique to this test run, for tags that keep tests apart on the
/// shared emulator.
pub(crate) fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The binary under test: this build's, or `SNAPTASTIC_TEST_BIN` (CI runs
/// the attack tests again against the release binary it packages).
pub(crate) fn snaptastic_bin() -> PathBuf {
    std::env::var_os("SNAPTASTIC_TEST_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_snaptastic")),
        PathBuf::from,
    )
}

/// A run of the real binary with a hermetic environment: no AWS profile
/// files from the machine, dummy credentials, metadata pointed at a closed
/// port unless the test sets it.
pub(crate) struct Run {
    cmd: Command,
}

impl Run {
    pub(crate) fn new(args: &[&str]) -> Self {
        Self::program(&snaptastic_bin(), args)
    }

    /// Another binary built on the library (an example's).
    pub(crate) fn program(program: &Path, args: &[&str]) -> Self {
        let mut cmd = Command::new(program);
        cmd.args(args);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.starts_with("AWS_") || k.starts_with("SNAPTASTIC_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            )
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1")
            .env("SNAPTASTIC_CONFIG", "/nonexistent/snaptastic.toml")
            // tablesnap's digest records stay out of /var/lib (each key
            // space has its own file; a test can point elsewhere).
            .env(
                "SNAPTASTIC_STATE_DIR",
                std::env::temp_dir().join("snaptastic-test-state"),
            );
        Self { cmd }
    }

    pub(crate) fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub(crate) fn env_remove(mut self, k: &str) -> Self {
        self.cmd.env_remove(k);
        self
    }

    pub(crate) fn config(self, path: &Path) -> Self {
        self.env("SNAPTASTIC_CONFIG", path)
    }

    /// Point at the emulator and a metadata server.
    pub(crate) fn aws(self, moto: &str, imds: &Imds) -> Self {
        self.env("AWS_ENDPOINT_URL", moto)
            .env("AWS_REGION", REGION)
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url())
    }

    /// Start without waiting (stdout and stderr piped).
    pub(crate) fn spawn(mut self) -> std::process::Child {
        self.cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start snaptastic")
    }

    /// Start without waiting, stderr appended to `log` (to be read while
    /// it runs), stdout piped.
    pub(crate) fn spawn_logging_to(mut self, log: &Path) -> std::process::Child {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the log file");
        self.cmd
            .stdout(std::process::Stdio::piped())
            .stderr(file)
            .spawn()
            .expect("start snaptastic")
    }

    pub(crate) fn run(mut self) -> Done {
        let out = self.cmd.output().expect("run snaptastic");
        Done(out)
    }
}

pub(crate) struct Done(pub Output);

/// How a run bounded in time ended (`run_within`).
pub(crate) struct Ended {
    pub elapsed: std::time::Duration,
    /// The exit code; -1 when killed at the bound (or by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ended {
    /// Its stdout, then its stderr.
    pub(crate) fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// The last non-empty line of stderr (where a failure says why).
    pub(crate) fn last_line(&self) -> &str {
        self.stderr
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("")
    }
}

/// Run a one-shot command to its end, or kill it (SIGKILL) at `bound`.
pub(crate) fn run_within(run: Run, bound: std::time::Duration) -> Ended {
    let t = std::time::Instant::now();
    let child = run.spawn();
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(bound) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status();
            rx.recv().unwrap().unwrap()
        }
    };
    Ended {
        elapsed: t.elapsed(),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Done {
    pub(crate) fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    #[track_caller]
    pub(crate) fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    /// The lines of stderr that are not log lines.
    pub(crate) fn error_lines(&self) -> Vec<String> {
        self.stderr()
            .lines()
            .filter(|l| l.starts_with("error:"))
            .map(str::to_string)
            .collect()
    }
}

/// A moto of its own (`scripts/emulator.sh`, installed and cached as for
/// the suite), stopped when dropped: for a test that makes thousands of
/// calls, away from the shared emulator, whose describes slow down as
/// every test's volumes and snapshots pile up in it.
pub(crate) struct OwnMoto {
    state: tempfile::NamedTempFile,
    pub url: String,
}

impl OwnMoto {
    pub(crate) fn start() -> OwnMoto {
        let state = tempfile::NamedTempFile::new().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/emulator.sh");
        let out = Command::new(&script)
            .arg("start")
            .arg(state.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "starting an emulator: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        OwnMoto { state, url }
    }
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/emulator.sh");
        let _ = Command::new(&script)
            .arg("stop")
            .arg(self.state.path())
            .status();
    }
}

/// A config file in a temp dir.
pub(crate) fn write_config(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let p = dir.path().join("snaptastic.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Instance metadata as EC2 serves it: IMDSv2 tokens with a TTL header
/// (or, in v1-only mode, a refused token call), identity and userdata.
pub(crate) struct Imds {
    port: u16,
    stop: Arc<AtomicBool>,
    /// Paths requested, with whether they carried a token.
    pub requests: Arc<Mutex<Vec<(String, bool)>>>,
}

#[derive(Clone)]
pub(crate) struct ImdsData {
    pub instance_id: String,
    pub zone: String,
    pub userdata: Option<String>,
    /// Refuse token requests (403), as a v1-only service would.
    pub v1_only: bool,
}

impl Imds {
    pub(crate) fn start(data: ImdsData) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop2, req2) = (stop.clone(), requests.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(conn) = conn {
                    serve(conn, &data, &req2);
                }
            }
        });
        Self {
            port,
            stop,
            requests,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Imds {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

const TOKEN: &str = "fixture-token";

fn serve(conn: TcpStream, data: &ImdsData, log: &Mutex<Vec<(String, bool)>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let mut parts = first.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let has_token = headers.get("x-aws-ec2-metadata-token").map(String::as_str) == Some(TOKEN);
    log.lock().unwrap().push((path.to_string(), has_token));

    let (status, extra, body): (u16, String, String) = match (method, path) {
        ("PUT", "/latest/api/token") if data.v1_only => (403, String::new(), String::new()),
        ("PUT", "/latest/api/token") => {
            let ttl = headers
                .get("x-aws-ec2-metadata-token-ttl-seconds")
                .cloned()
                .unwrap_or_default();
            if ttl.is_empty() {
                (400, String::new(), String::new())
            } else {
                (
                    200,
                    format!("X-aws-ec2-metadata-token-ttl-seconds: {ttl}\r\n"),
                    TOKEN.into(),
                )
            }
        }
        ("GET", _) if !data.v1_only && !has_token => (401, String::new(), String::new()),
        ("GET", "/latest/meta-data/instance-id") => (200, String::new(), data.instance_id.clone()),
        ("GET", "/latest/meta-data/placement/availability-zone") => {
            (200, String::new(), data.zone.clone())
        }
        ("GET", "/latest/meta-data/placement/region") => (
            200,
            String::new(),
            data.zone[..data.zone.len() - 1].to_string(),
        ),
        ("GET", "/latest/user-data") => match &data.userdata {
            Some(u) => (200, String::new(), u.clone()),
            None => (404, String::new(), String::new()),
        },
        _ => (404, String::new(), String::new()),
    };
    let reply = format!(
        "HTTP/1.1 {status} X\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut conn = conn;
    let _ = conn.write_all(reply.as_bytes());
}

/// Direct EC2 access to seed and inspect the emulator.
pub(crate) struct Ec2 {
    pub rt: tokio::runtime::Runtime,
    pub client: aws_sdk_ec2::Client,
}

impl Ec2 {
    pub(crate) fn new(moto: &str) -> Self {
        Self::with_attempts(moto, 3)
    }

    pub(crate) fn with_attempts(endpoint: &str, attempts: u32) -> Self {
        Self::in_region(endpoint, REGION, attempts)
    }

    /// A client for `region` (the Region its calls are signed for, which
    /// picks moto's backend): a copy's destination, a DR host's Region.
    pub(crate) fn in_region(endpoint: &str, region: &str, attempts: u32) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let conf = aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .retry_config(
                aws_sdk_ec2::config::retry::RetryConfig::standard().with_max_attempts(attempts),
            )
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build();
        Self {
            rt,
            client: aws_sdk_ec2::Client::from_conf(conf),
        }
    }

    /// A running instance: (instance id, availability zone).
    pub(crate) fn instance(&self) -> (String, String) {
        let zone = format!("{REGION}a");
        let resp = self
            .rt
            .block_on(
                self.client
                    .run_instances()
                    .image_id("ami-12345678")
                    .min_count(1)
                    .max_count(1)
                    .placement(
                        aws_sdk_ec2::types::Placement::builder()
                            .availability_zone(&zone)
                            .build(),
                    )
                    .send(),
            )
            .unwrap();
        (resp.instances()[0].instance_id().unwrap().to_string(), zone)
    }

    pub(crate) fn volume(&self, zone: &str, size: i32, tags: &[(&str, &str)]) -> String {
        let mut req = self
            .client
            .create_volume()
            .availability_zone(zone)
            .size(size);
        if !tags.is_empty() {
            req = req.tag_specifications(spec(ResourceType::Volume, tags));
        }
        self.rt
            .block_on(req.send())
            .unwrap()
            .volume_id()
            .unwrap()
            .to_string()
    }

    /// Every snapshot matching one DescribeSnapshots filter (`volume-id`,
    /// `tag:mount_point`, ...), with its tags, by id.
    pub(crate) fn snapshots_where(
        &self,
        filter: &str,
        value: &str,
    ) -> BTreeMap<String, BTreeMap<String, String>> {
        let r = self
            .rt
            .block_on(
                self.client
                    .describe_snapshots()
                    .filters(
                        aws_sdk_ec2::types::Filter::builder()
                            .name(filter)
                            .values(value)
                            .build(),
                    )
                    .send(),
            )
            .unwrap();
        r.snapshots()
            .iter()
            .map(|snap| {
                let tags = snap
                    .tags()
                    .iter()
                    .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
                    .collect();
                (snap.snapshot_id().unwrap().to_string(), tags)
            })
            .collect()
    }

    /// The tags of one snapshot.
    pub(crate) fn snapshot_tags(&self, id: &str) -> BTreeMap<String, String> {
        self.snapshots_where("snapshot-id", id)
            .remove(id)
            .unwrap_or_else(|| panic!("no snapshot {id}"))
    }

    pub(crate) fn attach(&self, volume: &str, instance: &str, device: &str) {
        self.rt
            .block_on(
                self.client
                    .attach_volume()
                    .volume_id(volume)
                    .instance_id(instance)
                    .device(device)
                    .send(),
            )
            .unwrap();
    }

    /// A snapshot tagged the way snaptastic 0.2.12 tagged them: created
    /// bare, then one CreateTags call per tag.
    pub(crate) fn legacy_snapshot(
        &self,
        volume: &str,
        description: &str,
        tags: &[(&str, &str)],
    ) -> String {
        let id = self
            .rt
            .block_on(
                self.client
                    .create_snapshot()
                    .volume_id(volume)
                    .description(description)
                    .send(),
            )
            .unwrap()
            .snapshot_id()
            .unwrap()
            .to_string();
        for (k, v) in tags {
            self.rt
                .block_on(
                    self.client
                        .create_tags()
                        .resources(&id)
                        .tags(Tag::builder().key(*k).value(*v).build())
                        .send(),
                )
                .unwrap();
        }
        id
    }
}

fn spec(kind: ResourceType, tags: &[(&str, &str)]) -> TagSpecification {
    let mut b = TagSpecification::builder().resource_type(kind);
    for (k, v) in tags {
        b = b.tags(Tag::builder().key(*k).value(*v).build());
    }
    b.build()
}

/// Run `cmd`, which must succeed: its output (else the test fails with
/// the command and what it said).
pub(crate) fn succeed(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    out
}

/// Whether this process may use loop devices and mount(2).
pub(crate) fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The lab and the emulator, or `None` (after printing why) when either is
/// missing. In CI a missing piece fails the test instead.
pub(crate) fn lab_prerequisites() -> Option<String> {
    let moto = moto()?;
    if !is_root() {
        if std::env::var_os("CI").is_some() {
            panic!("the lab tests need root in CI");
        }
        eprintln!("SKIPPED: the lab needs root (loop devices, mount)");
        return None;
    }
    Some(moto)
}

/// The lab binary: `$SNAPTASTIC_LAB_BIN`, else beside the test binary's
/// directory (cargo puts workspace binaries in target/<profile>/).
pub(crate) fn lab_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SNAPTASTIC_LAB_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("snaptastic-lab");
    assert!(
        p.exists(),
        "{} missing: build it with cargo build -p snaptastic-lab (scripts/test.sh does)",
        p.display()
    );
    p
}

/// An example binary (`cargo build --examples`, which scripts/test.sh
/// runs), beside the test binary's directory.
pub(crate) fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        p.exists(),
        "{} missing: build it with cargo build --examples (scripts/test.sh does)",
        p.display()
    );
    p
}

/// Options for a lab run.
#[derive(Default, Clone)]
pub(crate) struct LabOpts {
    pub nvme: bool,
    pub userdata: Option<String>,
    pub rules: Option<String>,
    pub dir: Option<PathBuf>,
    /// The lab's Region (`--region`; default us-east-1): its instance,
    /// metadata and `AWS_REGION` are there.
    pub region: Option<String>,
    /// Another lab's images directory (`--images`, that lab's
    /// `SNAPTASTIC_LAB_IMAGES`): this lab restores that one's snapshots
    /// and copies. Stop this lab before the owner.
    pub images: Option<PathBuf>,
}

/// A running lab; stopping it (on drop, also while a test panics) unmounts
/// and releases everything it made.
pub(crate) struct Lab {
    child: Option<std::process::Child>,
    _tmp: Option<tempfile::TempDir>,
    pub dir: PathBuf,
    pub env: BTreeMap<String, String>,
}

impl Lab {
    pub(crate) fn start(moto: &str, opts: LabOpts) -> Lab {
        let (tmp, dir) = match &opts.dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("snaptastic-lab-")
                    .tempdir()
                    .unwrap();
                let d = t.path().to_path_buf();
                (Some(t), d)
            }
        };
        let mut cmd = Command::new(lab_bin());
        cmd.arg("--dir")
            .arg(&dir)
            .args(["--moto-url", moto, "--exit-with-parent"])
            .args(["--devices", if opts.nvme { "nvme" } else { "xen" }])
            .stdout(std::process::Stdio::piped());
        if let Some(u) = &opts.userdata {
            cmd.args(["--userdata", u]);
        }
        if let Some(r) = &opts.region {
            cmd.args(["--region", r]);
        }
        if let Some(i) = &opts.images {
            cmd.arg("--images").arg(i);
        }
        if let Some(r) = &opts.rules {
            let p = dir.join("rules.toml");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&p, r).unwrap();
            cmd.arg("--rules").arg(p);
        }
        let mut child = cmd.spawn().expect("start snaptastic-lab");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let env_file = line.strip_prefix("READY ").unwrap_or_else(|| {
            let _ = child.kill();
            panic!("lab did not start (said {line:?})")
        });
        let env = std::fs::read_to_string(env_file.trim())
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Lab {
            child: Some(child),
            _tmp: tmp,
            dir,
            env,
        }
    }

    pub(crate) fn var(&self, k: &str) -> &str {
        &self.env[k]
    }

    pub(crate) fn instance(&self) -> &str {
        self.var("SNAPTASTIC_LAB_INSTANCE")
    }

    pub(crate) fn device_root(&self) -> PathBuf {
        PathBuf::from(self.var("SNAPTASTIC_DEVICE_ROOT"))
    }

    /// An EC2 client through the lab's proxy (SDK retries off, so faults
    /// show as they are).
    pub(crate) fn ec2(&self) -> Ec2 {
        self.ec2_in(self.var("AWS_REGION"))
    }

    /// An EC2 client through the lab's proxy for another Region (SDK
    /// retries off): a copy's destination, as a host copying its
    /// snapshots calls it.
    pub(crate) fn ec2_in(&self, region: &str) -> Ec2 {
        Ec2::in_region(self.var("AWS_ENDPOINT_URL"), region, 1)
    }

    /// The directory of the lab's volume and snapshot images, for a
    /// second lab to share (`LabOpts::images`).
    pub(crate) fn images(&self) -> PathBuf {
        PathBuf::from(self.var("SNAPTASTIC_LAB_IMAGES"))
    }

    /// An EC2 client straight to the emulator, past the lab's faults: what
    /// a test reads to judge an outcome.
    pub(crate) fn moto_ec2(&self) -> Ec2 {
        Ec2::with_attempts(self.var("SNAPTASTIC_LAB_MOTO"), 3)
    }

    /// snaptastic with the lab's environment.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        self.run_program(&snaptastic_bin(), args)
    }

    /// Another binary built on the library, with the lab's environment.
    pub(crate) fn run_program(&self, program: &Path, args: &[&str]) -> Run {
        // Its own state directory (make-snapshots' host lock): labs of
        // tests running at once are different hosts.
        let mut r = Run::program(program, args).env("SNAPTASTIC_STATE_DIR", self.dir.join("state"));
        for (k, v) in &self.env {
            r = r.env(k, v);
        }
        r
    }

    /// PUT to the control endpoint; returns the reply body.
    pub(crate) fn control(&self, path: &str, body: &str) -> String {
        let out = Command::new("curl")
            .args(["-sS", "-X", "PUT", "--data-binary", body])
            .arg(format!("{}/{path}", self.var("SNAPTASTIC_LAB_CONTROL")))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn state(&self) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-sS"])
            .arg(format!("{}/state", self.var("SNAPTASTIC_LAB_CONTROL")))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Stop the lab and wait for its cleanup.
    pub(crate) fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("lab already stopped");
        let _ = terminate(child.id());
        child.wait().unwrap()
    }
}

fn terminate(pid: u32) -> std::io::Result<std::process::ExitStatus> {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

/// Loop devices whose backing file is under `dir`, and mounts under it.
pub(crate) fn leftovers(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let list = Command::new("losetup")
        .args(["--list", "--noheadings", "--output", "NAME,BACK-FILE"])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        if line.contains(dir.to_str().unwrap()) {
            out.push(format!("loop: {line}"));
        }
    }
    for line in std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
    {
        if line.contains(dir.to_str().unwrap()) {
            out.push(format!("mount: {line}"));
        }
    }
    out
}

/// Direct S3 access to the emulator, for the file commands' tests.
pub(crate) struct S3 {
    pub rt: tokio::runtime::Runtime,
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
}

/// `len` bytes that do not repeat in any short period (a multiplicative
/// hash of the offset, shifted by `shift`: other shifts, other bytes).
pub(crate) fn varied_bytes(len: u32, shift: u32) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> shift) as u8)
        .collect()
}

/// Put `data` at `path` as Cassandra does (written beside, renamed in),
/// with none of it in the page cache, like a file written long ago:
/// written in a staging directory next to `path`'s, synced and dropped
/// from the cache before the rename, so a watcher never sees it warm.
/// (A file just written is still cached, and tablesnap hashes such a file
/// from memory before its upload.)
pub(crate) fn place_cold(path: &Path, data: &[u8]) {
    use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
    use std::os::fd::AsRawFd;
    let dir = path.parent().unwrap();
    let staging = tempfile::tempdir_in(dir.parent().unwrap()).unwrap();
    let tmp = staging.path().join("cold");
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
    posix_fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
    let mut byte = [0u8; 1];
    let iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: `iov` describes `byte`, writable for one byte during the
    // call; the descriptor is `f`'s, open for the whole call.
    let n = unsafe { libc::preadv2(f.as_raw_fd(), &iov, 1, 0, libc::RWF_NOWAIT) };
    assert!(
        n < 0,
        "{} kept the file in the page cache (tmpfs?): run the tests with TMPDIR on a disk filesystem",
        dir.display()
    );
    drop(f);
    std::fs::rename(&tmp, path).unwrap();
}

/// MD5 in hex, as tablesnap's `md5sum` metadata holds it.
pub(crate) fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl S3 {
    /// PUT `key` with user metadata.
    pub(crate) fn put(&self, key: &str, body: &[u8], meta: &[(&str, String)]) {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.to_vec().into());
        for (k, v) in meta {
            req = req.metadata(*k, v);
        }
        self.rt.block_on(req.send()).unwrap();
    }

    /// A fresh bucket on `endpoint`.
    pub(crate) fn new(endpoint: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(REGION))
            .endpoint_url(endpoint)
            .force_path_style(true)
            // As the tools read: an object's bytes are checked against its
            // md5sum, not the SDK's response checksum (moto 5.2.5 copies
            // a multipart object's composite CRC32 without its type and
            // then serves it as the whole object's).
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            )
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build();
        let client = aws_sdk_s3::Client::from_conf(conf);
        let bucket = unique("bucket").to_lowercase();
        rt.block_on(client.create_bucket().bucket(&bucket).send())
            .unwrap();
        Self { rt, client, bucket }
    }

    pub(crate) fn keys(&self) -> Vec<String> {
        let r = self
            .rt
            .block_on(self.client.list_objects_v2().bucket(&self.bucket).send())
            .unwrap();
        let mut k: Vec<String> = r
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        k.sort();
        k
    }

    pub(crate) fn get(&self, key: &str) -> Vec<u8> {
        let r = self
            .rt
            .block_on(
                self.client
                    .get_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .send(),
            )
            .unwrap();
        self.rt
            .block_on(r.body.collect())
            .unwrap()
            .into_bytes()
            .to_vec()
    }

    pub(crate) fn metadata(&self, key: &str) -> std::collections::HashMap<String, String> {
        let r = self
            .rt
            .block_on(
                self.client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .send(),
            )
            .unwrap();
        r.metadata().cloned().unwrap_or_default()
    }

    /// Wait (bounded) until `key` is there with its `md5sum` (a file over
    /// 8 MiB gets it by a copy just after its upload); returns it.
    pub(crate) fn wait_md5sum(&self, key: &str) -> String {
        let k = key.to_string();
        self.wait_keys(key, |keys| keys.contains(&k));
        let t = std::time::Instant::now();
        loop {
            if let Some(m) = self.metadata(key).remove("md5sum") {
                return m;
            }
            assert!(
                t.elapsed() < std::time::Duration::from_secs(20),
                "{key} has no md5sum after 20 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Wait (bounded) until `pred` holds for the key list.
    pub(crate) fn wait_keys(&self, what: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
        let t = std::time::Instant::now();
        loop {
            let k = self.keys();
            if pred(&k) {
                return k;
            }
            assert!(
                t.elapsed() < std::time::Duration::from_secs(20),
                "timed out waiting for {what}; keys: {k:#?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
