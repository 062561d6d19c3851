//! `snaptastic test`: can this host run the tool? Checks the configuration,
//! instance metadata, userdata, region, credentials and, with EC2 DryRun,
//! the IAM permission of every action the tool uses. One line per check on
//! stdout; exit 1 if any failed. Nothing is created or changed.

use std::fmt;
use std::process::ExitCode;

use anyhow::Result;

use crate::cloud::{self, AwsConfig, DryRunAction, DryRunOutcome, Ec2, ProbeTargets};
use crate::config::Config;
use crate::context::{Context, Needs};
use crate::registry::Registry;
use crate::snapshotter::HostFacts;
use crate::volumes::tags::{STATE_MOUNTED, TAG_PROFILE, TAG_STATE};

/// A profile's name and filter tags: what the probes tag their create
/// requests with, as the commands do.
type ProbeProfile = (String, Vec<(String, String)>);

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
    /// The first failed check, `check: detail`, for the run's last line.
    first_failure: Option<String>,
}

impl Report {
    fn line(&mut self, status: Status, check: &str, detail: impl fmt::Display, hint: Option<&str>) {
        if status == Status::Fail {
            self.failed += 1;
            self.first_failure
                .get_or_insert_with(|| format!("{check}: {detail}"));
        }
        println!("{status} {check}: {detail}");
        if let Some(h) = hint.filter(|_| status != Status::Ok) {
            println!("     hint: {h}");
        }
    }
}

pub(crate) async fn run(ctx: &Context) -> Result<ExitCode> {
    let mut report = Report::default();
    let config = check_config(ctx, &mut report);
    let host = check_host(ctx, &mut report).await;
    let mut probe_profile = None;
    if let (Some(config), Some(host)) = (&config, &host) {
        match ctx.registry(Some(config)) {
            Ok(registry) => probe_profile = check_profiles(&mut report, &registry, host),
            Err(e) => report.line(Status::Fail, "snapshotters", format!("{e:#}"), None),
        }
    }
    let empty = HostFacts::default();
    let host_ref = host.as_ref().unwrap_or(&empty);
    check_aws(
        ctx,
        &mut report,
        config.as_ref(),
        host_ref,
        probe_profile.as_ref(),
    )
    .await;
    if report.failed > 0 {
        println!("{} check(s) failed", report.failed);
        // The last line names the first failure and where it was checked
        // (on stderr, with the exit code, for a log read from the end).
        let on = host_ref
            .identity
            .as_ref()
            .map(|i| format!(" (instance {}, {})", i.instance_id, i.region))
            .unwrap_or_default();
        anyhow::bail!(
            "{} check(s) failed, the first: {}{on}",
            report.failed,
            report.first_failure.unwrap_or_default()
        )
    } else {
        println!("all checks passed");
        Ok(ExitCode::SUCCESS)
    }
}

/// The configuration file: found, parsed, its profiles named.
fn check_config(ctx: &Context, report: &mut Report) -> Option<Config> {
    match ctx.config() {
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
    }
}

/// Instance metadata and userdata.
async fn check_host(ctx: &Context, report: &mut Report) -> Option<HostFacts> {
    match ctx.host(Needs::Userdata).await {
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
    }
}

/// The region, the credentials, and every EC2 permission (DryRun).
async fn check_aws(
    ctx: &Context,
    report: &mut Report,
    config: Option<&Config>,
    host_ref: &HostFacts,
    probe_profile: Option<&ProbeProfile>,
) {
    match ctx.region(config, host_ref).await {
        Ok((region, source)) => {
            report.line(
                Status::Ok,
                "region",
                format!("{region} (from {source})"),
                None,
            );
            // Probes report an unreachable endpoint quickly rather than
            // ride out an outage: at most PROBE_ATTEMPTS tries each.
            let limits = cloud::CallLimits {
                attempts: ctx.globals.calls.attempts.min(cloud::PROBE_ATTEMPTS),
                ..ctx.globals.calls
            };
            let aws = AwsConfig::load(&region, limits).await;
            match aws.check_credentials().await {
                Ok(what) => {
                    report.line(Status::Ok, "credentials", what, None);
                    let ec2 = Ec2::new(&aws);
                    check_permissions(report, &ec2, host_ref, probe_profile).await;
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
}

/// Every snapshotter (profile) can resolve its volumes and filter tags.
/// Returns the first that can, for the probes.
fn check_profiles(
    report: &mut Report,
    registry: &Registry,
    host: &HostFacts,
) -> Option<ProbeProfile> {
    let mut first = None;
    for s in registry.iter() {
        let check = format!("profile {}", s.name());
        let volumes = s.volumes(host);
        let filters = s.filter_tags(host);
        match (volumes, filters) {
            (Ok(v), Ok(f)) => {
                if first.is_none() && !f.is_empty() {
                    first = Some((s.name().to_string(), f.clone()));
                }
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
    first
}

/// Why a denied probe may say nothing of the tool's own use: the policy of
/// `iam-policy volumes` allows the action only from the instance itself,
/// or only on the tool's volumes and snapshots, and the probe could not
/// use such a target.
fn probe_out_of_scope(action: DryRunAction, probe: &Probe) -> Option<String> {
    use DryRunAction::*;
    if !probe.on_instance
        && matches!(
            action,
            AttachVolume | DetachVolume | CreateSnapshots | ModifyInstanceAttribute
        )
    {
        return Some("probed off EC2: the policy allows it only from the instance itself (its instance role)".into());
    }
    if !probe.volume_is_ours
        && matches!(
            action,
            AttachVolume | CreateSnapshot | CreateTags | DeleteVolume | DetachVolume
        )
    {
        return Some(format!(
            "probed on {}, which the tool did not make: the policy allows it only on volumes tagged {TAG_PROFILE} (or 0.2.12's); run this again once mount-snapshots has attached one",
            probe.targets.volume.as_deref().unwrap_or("a placeholder volume")
        ));
    }
    if action == DeleteSnapshot && probe.targets.snapshot.is_none() {
        return Some(format!(
            "probed on a placeholder snapshot: the policy allows it only on snapshots tagged {TAG_PROFILE} (or 0.2.12's); run this again once make-snapshots has made one"
        ));
    }
    None
}

/// The attached volume to probe with: the profile's, else one the tool
/// made for any profile, else any (the root volume).
fn probe_volume<'a>(
    attached: &'a [cloud::VolumeInfo],
    profile: Option<&str>,
) -> Option<&'a cloud::VolumeInfo> {
    let made_by = |v: &&cloud::VolumeInfo, profile: Option<&str>| {
        v.tags
            .get(TAG_PROFILE)
            .is_some_and(|p| profile.is_none_or(|n| p == n))
    };
    attached
        .iter()
        .find(|v| profile.is_some() && made_by(v, profile))
        .or_else(|| attached.iter().find(|v| made_by(v, None)))
        .or(attached.first())
}

/// The probes' targets, and whether they are what the tool acts on.
struct Probe {
    targets: ProbeTargets,
    on_instance: bool,
    volume_is_ours: bool,
}

async fn probe_targets(ec2: &Ec2, host: &HostFacts, profile: Option<&ProbeProfile>) -> Probe {
    let (instance, zone) = match &host.identity {
        Some(id) => (id.instance_id.as_str(), id.availability_zone.as_str()),
        // Off EC2: placeholders still tell allowed from denied.
        None => ("i-0ffffffffffffffff", "us-east-1a"),
    };
    let name = profile.map(|(n, _)| n.as_str());
    // Probing against a real volume of this host checks resource-level
    // permissions too (DryRun changes nothing): the tool's (this profile's
    // first) when one is attached, else any (the root volume).
    let attached = match &host.identity {
        Some(id) => ec2
            .volumes_attached_to(&id.instance_id)
            .await
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let volume = probe_volume(&attached, name);
    let mut create_tags = vec![(TAG_PROFILE.to_string(), name.unwrap_or("probe").to_string())];
    create_tags.extend(profile.iter().flat_map(|(_, f)| f.iter().cloned()));
    let snapshot = match profile {
        Some(_) => ec2.any_snapshot_tagged(&create_tags).await.ok().flatten(),
        None => None,
    };
    let retag = (
        TAG_STATE.to_string(),
        volume
            .and_then(|v| v.tags.get(TAG_STATE).cloned())
            .unwrap_or_else(|| STATE_MOUNTED.to_string()),
    );
    Probe {
        on_instance: host.identity.is_some(),
        volume_is_ours: volume.is_some_and(|v| v.tags.contains_key(TAG_PROFILE)),
        targets: ProbeTargets {
            instance_id: instance.to_string(),
            zone: zone.to_string(),
            volume: volume.map(|v| v.id.clone()),
            snapshot,
            create_tags,
            retag,
        },
    }
}

async fn check_permissions(
    report: &mut Report,
    ec2: &Ec2,
    host: &HostFacts,
    profile: Option<&ProbeProfile>,
) {
    let probe = probe_targets(ec2, host, profile).await;
    // The probes are independent round trips: run them concurrently.
    let probes = DryRunAction::ALL.map(|action| {
        let (ec2, targets) = (ec2.clone(), probe.targets.clone());
        async move { ec2.dry_run(action, &targets).await }
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
            DryRunOutcome::Denied(msg) => match probe_out_of_scope(action, &probe) {
                Some(why) => report.line(
                    Status::Warn,
                    &check,
                    format!("could not tell: denied, but {why}"),
                    None,
                ),
                None => report.line(
                    Status::Fail,
                    &check,
                    msg,
                    Some(&format!(
                        "allow ec2:{} in the instance role's IAM policy (snaptastic iam-policy volumes)",
                        action.name()
                    )),
                ),
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(id: &str, profile: Option<&str>) -> cloud::VolumeInfo {
        cloud::VolumeInfo {
            id: id.into(),
            state: "in-use".into(),
            size_gib: None,
            volume_type: None,
            iops: None,
            availability_zone: None,
            attachments: Vec::new(),
            tags: profile
                .map(|p| (TAG_PROFILE.to_string(), p.to_string()))
                .into_iter()
                .collect(),
            fast_restored: None,
            init_rate: None,
        }
    }

    #[test]
    fn probes_use_the_tools_own_volume_when_one_is_attached() {
        let attached = [
            vol("root", None),
            vol("pg", Some("pg")),
            vol("solr", Some("solr")),
        ];
        let id = |v: Option<&cloud::VolumeInfo>| v.map(|v| v.id.clone());
        assert_eq!(
            id(probe_volume(&attached, Some("solr"))),
            Some("solr".into())
        );
        assert_eq!(id(probe_volume(&attached, Some("db"))), Some("pg".into()));
        assert_eq!(id(probe_volume(&attached, None)), Some("pg".into()));
        assert_eq!(
            id(probe_volume(&attached[..1], Some("solr"))),
            Some("root".into())
        );
        assert_eq!(id(probe_volume(&[], None)), None);
    }

    #[test]
    fn a_denial_on_a_target_outside_the_policy_says_so() {
        let probe = |on_instance, volume_is_ours, snapshot: Option<&str>| Probe {
            targets: ProbeTargets {
                volume: Some("vol-root".into()),
                snapshot: snapshot.map(str::to_string),
                ..Default::default()
            },
            on_instance,
            volume_is_ours,
        };
        let on_ours = probe(true, true, Some("snap-1"));
        for a in DryRunAction::ALL {
            assert_eq!(probe_out_of_scope(a, &on_ours), None, "{a:?}");
        }
        let root = probe(true, false, Some("snap-1"));
        let why = probe_out_of_scope(DryRunAction::DeleteVolume, &root).unwrap();
        assert!(
            why.contains("probed on vol-root, which the tool did not make"),
            "{why}"
        );
        assert_eq!(probe_out_of_scope(DryRunAction::CreateVolume, &root), None);
        assert_eq!(
            probe_out_of_scope(DryRunAction::DeleteSnapshot, &root),
            None
        );
        let no_snapshot = probe(true, true, None);
        assert!(probe_out_of_scope(DryRunAction::DeleteSnapshot, &no_snapshot).is_some());
        let off_ec2 = probe(false, true, Some("snap-1"));
        assert!(
            probe_out_of_scope(DryRunAction::ModifyInstanceAttribute, &off_ec2)
                .unwrap()
                .contains("only from the instance itself")
        );
    }
}
