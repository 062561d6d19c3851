//! Whether a restored volume is at full speed: EC2's initialization of
//! its blocks from the snapshot (DescribeVolumeStatus), and the warm-up
//! that reads them all. list-volumes shows it; `--check-ready` turns it
//! into an exit code for health checks.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cloud::{Ec2, Initialization, VolumeInfo};
use crate::prewarm::WarmProgress;

/// One attached volume's speed, as far as it is known.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Readiness {
    /// EC2's initialization (none for a volume created empty, or when
    /// DescribeVolumeStatus could not be asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initialization: Option<Initialization>,
    /// Fully initialized at creation by fast snapshot restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fast_restored: Option<bool>,
    /// The provisioned initialization rate it was created with, MiB/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_rate: Option<u32>,
    /// The warm-up's own progress (`snaptastic prewarm`), from its
    /// checkpoint on this host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup: Option<WarmProgress>,
}

impl Readiness {
    pub(crate) fn of(v: &VolumeInfo, init: Option<&Initialization>) -> Self {
        Readiness {
            initialization: init.cloned(),
            fast_restored: v.fast_restored,
            init_rate: v.init_rate,
            warmup: crate::prewarm::progress(&v.id),
        }
    }

    /// Still loading blocks from the snapshot: what a health check waits
    /// for. EC2's word wins (initialized means full speed, whatever the
    /// warm-up); without it, an unfinished warm-up counts. Nothing known
    /// counts as ready (nothing to wait for).
    pub(crate) fn initializing(&self) -> Option<String> {
        if self.fast_restored == Some(true) {
            return None;
        }
        let loading = match (&self.initialization, &self.warmup) {
            (Some(i), _) => !i.done(),
            (None, Some(w)) => !w.finished,
            (None, None) => false,
        };
        loading.then(|| self.text())
    }

    /// The SPEED column: EC2's initialization, then the warm-up's.
    pub(crate) fn text(&self) -> String {
        let ec2 = self.ec2_text();
        match &self.warmup {
            None => ec2,
            Some(w) => {
                let warm = if w.finished {
                    "warmed".to_string()
                } else if let Some(e) = &w.error {
                    format!("warm-up failed at {:.0}%: {e}", w.percent())
                } else {
                    format!(
                        "warming {:.0}%{}",
                        w.percent(),
                        if w.running { "" } else { " (stopped)" }
                    )
                };
                if ec2 == "-" {
                    warm
                } else {
                    format!("{ec2}; {warm}")
                }
            }
        }
    }

    fn ec2_text(&self) -> String {
        if self.fast_restored == Some(true) {
            return "full (fast restored)".into();
        }
        match &self.initialization {
            None => "-".into(),
            Some(i) if i.done() => "full".into(),
            Some(i) => {
                let mut t = format!("initializing {}% ({}", i.progress.unwrap_or(0), i.kind);
                if let Some(r) = self.init_rate {
                    t.push_str(&format!(" {r} MiB/s"));
                }
                if let Some(s) = i.eta_seconds {
                    let eta = humantime::format_duration(std::time::Duration::from_secs(s));
                    t.push_str(&format!(", {eta} left"));
                }
                t.push(')');
                t
            }
        }
    }
}

/// Each attached volume's initialization, or why EC2 could not say (the
/// listing goes on without it; `--check-ready` cannot).
pub(crate) async fn initialization(
    ec2: &Ec2,
    volumes: &[&VolumeInfo],
) -> Result<BTreeMap<String, Initialization>, String> {
    let ids: Vec<String> = volumes.iter().map(|v| v.id.clone()).collect();
    ec2.initialization(&ids).await.map_err(|e| {
        format!(
            "could not learn how far {} initialized: {e}",
            ids.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(kind: &str, progress: u8, eta: Option<u64>) -> Option<Initialization> {
        Some(Initialization {
            kind: kind.into(),
            progress: Some(progress),
            eta_seconds: eta,
        })
    }

    #[test]
    fn texts_and_readiness() {
        let r = Readiness {
            initialization: init("provisioned-rate", 42, Some(70)),
            fast_restored: Some(false),
            init_rate: Some(300),
            warmup: None,
        };
        assert_eq!(
            r.text(),
            "initializing 42% (provisioned-rate 300 MiB/s, 1m 10s left)"
        );
        assert!(r.initializing().is_some());
        let done = Readiness {
            initialization: init("default", 100, None),
            ..Default::default()
        };
        assert_eq!((done.text().as_str(), done.initializing()), ("full", None));
        let fsr = Readiness {
            initialization: init("default", 3, None),
            fast_restored: Some(true),
            init_rate: None,
            warmup: None,
        };
        assert_eq!(fsr.text(), "full (fast restored)");
        assert_eq!(fsr.initializing(), None);
        assert_eq!(Readiness::default().text(), "-");
        assert_eq!(Readiness::default().initializing(), None);
    }
}
