//! `snaptastic test`: can this host run the tool? Checks the configuration,
//! instance metadata, userdata, region, credentials and, with EC2 DryRun,
//! the IAM permission of every action the tool uses. One line per check on
//! stdout; exit 1 if any failed. Nothing is created or changed.

use std::fmt;
use std::process::ExitCode;

use anyhow::Result;

use crate::cloud::{self, AwsConfig, DryRunAction, DryRunOutcome, Ec2};
use crate::context::{Context, Needs};
use crate::registry::Registry;
use crate::snapshotter::HostFacts;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "OK  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        })
    }
}

#[derive(Default)]
struct Report {
    failed: usize,
}

impl Report {
    fn line(&mut self, status: Status, check: &str, detail: impl fmt::Display, hint: Option<&str>) {
        if status == Status::Fail {
            self.failed += 1;
        }
        println!("{status} {check}: {detail}");
        if let Some(h) = hint.filter(|_| status != Status::Ok) {
            println!("     hint: {h}");
        }
    }
}

pub(crate) async fn run(ctx: &Context) -> Result<ExitCode> {
    let mut report = Report::default();

    let config = match ctx.config() {
        Ok(c) => {
            let names: Vec<&str> = c.profiles.keys().map(String::as_str).collect();
            report.line(
                Status::Ok,
                "config",
                format!(
                    "{}: {} profile(s): {}",
                    c.path.display(),
                    names.len(),
                    names.join(", ")
                ),
                None,
            );
            Some(c)
        }
        Err(e) => {
            report.line(
                Status::Fail,
                "config",
                format!("{e:#}").replace('\n', "; "),
                Some("see snaptastic.example.toml for the format"),
            );
            None
        }
    };

    let host = match ctx.host(Needs::Userdata).await {
        Ok(h) => {
            match &h.identity {
                Some(id) => report.line(
                    Status::Ok,
                    "metadata",
                    format!(
                        "instance {} in {} (region {})",
                        id.instance_id, id.availability_zone, id.region
                    ),
                    None,
                ),
                None => report.line(
                    Status::Warn,
                    "metadata",
                    "unreachable; using --userdata (mount-snapshots and make-snapshots need it)",
                    Some(crate::instance::OFF_EC2_HINT),
                ),
            }
            Some(h)
        }
        Err(e) => {
            report.line(
                Status::Fail,
                "metadata",
                format!("{e:#}"),
                Some("on EC2, check the instance's metadata options (HttpEndpoint enabled, hop limit)"),
            );
            None
        }
    };

    if let (Some(config), Some(host)) = (&config, &host) {
        match ctx.registry(Some(config)) {
            Ok(registry) => check_profiles(&mut report, &registry, host),
            Err(e) => report.line(Status::Fail, "snapshotters", format!("{e:#}"), None),
        }
    }

    let empty = HostFacts::default();
    let host_ref = host.as_ref().unwrap_or(&empty);
    match ctx.region(config.as_ref(), host_ref).await {
        Ok((region, source)) => {
            report.line(
                Status::Ok,
                "region",
                format!("{region} (from {source})"),
                None,
            );
            let aws = AwsConfig::load(&region, cloud::PROBE_ATTEMPTS).await;
            match aws.check_credentials().await {
                Ok(what) => {
                    report.line(Status::Ok, "credentials", what, None);
                    check_permissions(&mut report, &Ec2::new(&aws), host_ref).await;
                }
                Err(e) => report.line(
                    Status::Fail,
                    "credentials",
                    e,
                    Some("attach an instance role, or set AWS_PROFILE / AWS_ACCESS_KEY_ID; keys do not belong in the config file"),
                ),
            }
        }
        Err(e) => report.line(
            Status::Fail,
            "region",
            format!("{e:#}"),
            Some("set region = \"...\" in the configuration, or AWS_REGION"),
        ),
    }

    if report.failed > 0 {
        println!("{} check(s) failed", report.failed);
        Ok(ExitCode::FAILURE)
    } else {
        println!("all checks passed");
        Ok(ExitCode::SUCCESS)
    }
}

/// Every snapshotter (profile) can resolve its volumes and filter tags.
fn check_profiles(report: &mut Report, registry: &Registry, host: &HostFacts) {
    for s in registry.iter() {
        let check = format!("profile {}", s.name());
        let volumes = s.volumes(host);
        let filters = s.filter_tags(host);
        match (volumes, filters) {
            (Ok(v), Ok(f)) => {
                let f: Vec<String> = f.iter().map(|(k, v)| format!("{k}={v}")).collect();
                report.line(
                    Status::Ok,
                    &check,
                    format!("{} volume(s); snapshots tagged {}", v.len(), f.join(" ")),
                    None,
                )
            }
            (Err(e), _) | (_, Err(e)) => report.line(
                Status::Fail,
                &check,
                e.to_string().replace('\n', "; "),
                Some("fix the instance userdata or pass --userdata"),
            ),
        }
    }
}

async fn check_permissions(report: &mut Report, ec2: &Ec2, host: &HostFacts) {
    let (instance, zone) = match &host.identity {
        Some(id) => (id.instance_id.as_str(), id.availability_zone.as_str()),
        // Off EC2: placeholders still tell allowed from denied.
        None => ("i-0ffffffffffffffff", "us-east-1a"),
    };
    // Probing against a real volume of this host (its root volume) checks
    // resource-level permissions too; DryRun changes nothing.
    let volume = match &host.identity {
        Some(id) => ec2
            .volumes_attached_to(&id.instance_id)
            .await
            .ok()
            .and_then(|v| v.into_iter().next())
            .map(|v| v.id),
        None => None,
    };
    // The probes are independent round trips: run them concurrently.
    let probes = DryRunAction::ALL.map(|action| {
        let (ec2, instance, zone, volume) = (
            ec2.clone(),
            instance.to_string(),
            zone.to_string(),
            volume.clone(),
        );
        async move {
            ec2.dry_run(action, &instance, &zone, volume.as_deref())
                .await
        }
    });
    let outcomes = crate::tasks::join_in_order(probes).await;
    for (action, outcome) in DryRunAction::ALL.into_iter().zip(outcomes) {
        let check = format!("ec2:{}", action.name());
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                report.line(Status::Fail, &check, e.to_string(), None);
                continue;
            }
        };
        match outcome {
            DryRunOutcome::Allowed => report.line(Status::Ok, &check, "allowed", None),
            DryRunOutcome::Denied(msg) => report.line(
                Status::Fail,
                &check,
                msg,
                Some(&format!(
                    "allow ec2:{} in the instance role's IAM policy",
                    action.name()
                )),
            ),
            DryRunOutcome::Unknown(e) if e.code().is_none() => report.line(
                Status::Fail,
                &check,
                e,
                Some("EC2 did not answer: check network access to the EC2 endpoint"),
            ),
            DryRunOutcome::Unknown(e) => report.line(
                Status::Warn,
                &check,
                format!("could not tell: {e}"),
                Some("the dry run was rejected for another reason than permissions"),
            ),
        }
    }
}
