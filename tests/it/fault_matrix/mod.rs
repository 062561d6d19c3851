//! The fault matrix (issue 27): every AWS action a command calls, under
//! every kind of failure, and a kill -9 at every step, with nothing lost.
//!
//! The actions are not listed here: each test runs its command once clean
//! through the lab and reads the lab's call counts, so a call the code
//! gains joins the matrix by itself. Then, per action and fault, a fresh
//! world sees the command run with that fault on every call of that
//! action (and nothing else), and the case checks:
//! - exit 0 means the job is done: the end state is the clean run's;
//! - otherwise the last line names the action and a resource (an id, a
//!   path, a key, the profile);
//! - the scenario's invariants hold (no filesystem frozen, no volume
//!   attached without the state tag a re-run adopts, no index listing an
//!   object a restore would refuse);
//! - the same command re-run without the fault exits 0 and reaches the
//!   clean run's end state (which leaves no room for a duplicate volume,
//!   snapshot or object).
//!
//! The kill dimension does the same with the run killed (SIGKILL) before,
//! and after, each call of each mutating action: the lab holds that call
//! (`hang`: it never happens) or carries it out and holds its reply
//! (`late`), and the test kills the command once the lab reports it.
//!
//! Each case appends its outcome to `$SNAPTASTIC_FAULT_MATRIX_LOG` (when
//! set; `scripts/test.sh` sets it and prints the totals).

mod files;
mod volumes;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use crate::support::{run_within, Ended, Lab, OwnMoto, Run};

/// The faults, as lab rules (`lab/src/rules.rs`). A hang outlasts the
/// command's call timeout (QUICK) and every retry of it.
pub(crate) const FAULTS: [(&str, &str); 6] = [
    ("throttle", "reply = \"throttle\""),
    ("500", "reply = \"500\""),
    ("hang", "reply = \"hang\"\nlatency = \"30s\""),
    ("reset", "reply = \"reset\""),
    ("lost", "reply = \"lost\""),
    ("denied", "reply = \"denied\""),
];

/// Flags that keep a case to seconds: two tries per call, each bounded.
pub(crate) const QUICK: [&str; 2] = ["--call-attempts=2", "--call-timeout=5s"];

/// The longest any one run may take before the case calls it stuck.
pub(crate) const BOUND: Duration = Duration::from_secs(90);

/// One command in its world.
pub(crate) trait Scenario {
    type World;
    /// The command line, for the report.
    fn name(&self) -> String;
    /// A fresh world in the state the command starts from.
    fn prepare(&self, moto: &str) -> Self::World;
    fn lab<'a>(&self, w: &'a Self::World) -> &'a Lab;
    /// The command, ready to run in `w`.
    fn command(&self, w: &Self::World) -> Run;
    /// What a clean run leaves, described without ids or times, sorted.
    fn end_state(&self, w: &Self::World) -> Vec<String>;
    /// What a failure's last line may name: ids, paths, keys, the profile.
    fn resources(&self, w: &Self::World) -> Vec<String>;
    /// What must hold at any moment, even after a kill; each string is a
    /// violation. Repairs what it finds (thaws), so the case can go on.
    fn invariants(&self, w: &Self::World) -> Vec<String>;
    /// A command that changes nothing: one world serves every case.
    fn read_only(&self) -> bool {
        false
    }
}

/// `$SNAPTASTIC_FAULT_MATRIX_ONLY`: run only the cases of this action
/// (to look at one closely).
fn wanted(action: &str) -> bool {
    std::env::var("SNAPTASTIC_FAULT_MATRIX_ONLY").map_or(true, |only| only == action)
}

/// Mutating actions, for the kill points: their names say so.
fn mutates(action: &str) -> bool {
    [
        "Create", "Delete", "Attach", "Detach", "Put", "Upload", "Complete", "Copy", "Modify",
        "Abort",
    ]
    .iter()
    .any(|p| action.starts_with(p))
}

/// Set the lab's fault rules (and start its call counts again).
fn set_rules(lab: &Lab, rules: &str) {
    let reply = lab.control("rules", rules);
    assert!(reply.starts_with("rules set"), "{reply}");
}

/// The lab's count per action of `what` ("calls" or "held").
fn counts(lab: &Lab, what: &str) -> BTreeMap<String, u64> {
    lab.state()[what]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// The clean run: its end state and the calls it made.
struct Reference {
    state: Vec<String>,
    calls: BTreeMap<String, u64>,
}

/// A step's time, on stderr (shown for a failing test, or --no-capture).
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    eprintln!("fault-matrix: {what} took {:.1?}", t.elapsed());
    out
}

fn reference<S: Scenario>(s: &S, moto: &str) -> Reference {
    let w = timed("prepare", || s.prepare(moto));
    let lab = s.lab(&w);
    set_rules(lab, "");
    let done = timed("clean run", || run_within(s.command(&w), BOUND));
    assert_eq!(
        done.code,
        0,
        "{}: the clean run failed:\n{}",
        s.name(),
        done.text()
    );
    let calls = counts(lab, "calls");
    let state = timed("end state", || s.end_state(&w));
    let broken = timed("invariants", || s.invariants(&w));
    assert!(broken.is_empty(), "{}: clean run: {broken:?}", s.name());
    timed("dropping the world", || drop(w));
    Reference { state, calls }
}

/// What differs between two end states, as lines.
fn diff(want: &[String], got: &[String]) -> String {
    let mut out = String::new();
    for l in want.iter().filter(|l| !got.contains(l)) {
        out.push_str(&format!("\n    - {l}"));
    }
    for l in got.iter().filter(|l| !want.contains(l)) {
        out.push_str(&format!("\n    + {l}"));
    }
    if out.is_empty() {
        // Same lines, other counts: a duplicate.
        out = format!("\n    want {want:?}\n    got  {got:?}");
    }
    out
}

/// One case's checks after the faulted (or killed) run `ended` (`None`
/// for a kill), then the re-run without faults.
fn check_case<S: Scenario>(
    s: &S,
    w: &S::World,
    reference: &Reference,
    case: &str,
    action: &str,
    ended: Option<&Ended>,
    killed_log: &str,
) -> Vec<String> {
    let mut v = Vec::new();
    match ended {
        Some(e) if e.code == -1 => v.push(format!(
            "{case}: did not finish within {BOUND:?}:\n{}",
            e.text()
        )),
        Some(e) if e.code == 0 => {
            let got = s.end_state(w);
            if got != reference.state {
                v.push(format!(
                    "{case}: exit 0 but the job is not done:{}",
                    diff(&reference.state, &got)
                ));
            }
        }
        Some(e) => {
            let last = e.last_line();
            let names_resource = s.resources(w).iter().any(|r| last.contains(r.as_str()));
            if !last.contains(action) || !names_resource {
                let tail: Vec<&str> = e.stderr.lines().rev().take(6).collect();
                v.push(format!(
                    "{case}: the last line does not name {action} and a resource: {last:?}\n    stderr ends:\n      {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n      ")
                ));
            }
        }
        None => {}
    }
    v.extend(s.invariants(w).into_iter().map(|x| format!("{case}: {x}")));
    set_rules(s.lab(w), "");
    // A run cut off after its last step may have done the whole job: a
    // re-run may then refuse to do it twice (mount-snapshots does), as
    // long as it changes nothing.
    let done_before = s.end_state(w) == reference.state;
    let again = run_within(s.command(w), BOUND);
    let got = s.end_state(w);
    if again.code != 0 && !(done_before && got == reference.state) {
        v.push(format!(
            "{case}: the re-run failed ({}): {}",
            again.code,
            again.last_line()
        ));
    } else if got != reference.state {
        v.push(format!(
            "{case}: the re-run did not converge:{}",
            diff(&reference.state, &got)
        ));
    }
    v.extend(
        s.invariants(w)
            .into_iter()
            .map(|x| format!("{case}, re-run: {x}")),
    );
    if !v.is_empty() && !killed_log.is_empty() {
        v.push(format!("{case}: the killed run had said:\n{killed_log}"));
    }
    v
}

/// Write one line to the matrix log, if there is one.
fn log(line: &str) {
    if let Some(path) = std::env::var_os("SNAPTASTIC_FAULT_MATRIX_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Fail with every violation, after saying how many cases ran.
fn report(what: &str, cases: usize, violations: &[String], took: Duration) {
    let line = format!(
        "fault-matrix {what}: {cases} cases, {} violations, {:.0?}",
        violations.len(),
        took
    );
    eprintln!("{line}");
    log(&line);
    assert!(violations.is_empty(), "{line}:\n{}", violations.join("\n"));
}

/// Every action `s` calls under the fault `fault` (a name in FAULTS).
pub(crate) fn faults<S: Scenario>(s: &S, fault: &str) {
    let t = Instant::now();
    let own = OwnMoto::start();
    let moto = own.url.as_str();
    let rule = FAULTS
        .iter()
        .find(|(name, _)| *name == fault)
        .map(|(_, rule)| *rule)
        .unwrap_or_else(|| panic!("no fault {fault}"));
    let reference = reference(s, moto);
    let shared = s.read_only().then(|| s.prepare(moto));
    let mut violations = Vec::new();
    for action in reference.calls.keys().filter(|a| wanted(a)) {
        let fresh;
        let w = match &shared {
            Some(w) => w,
            None => {
                fresh = s.prepare(moto);
                &fresh
            }
        };
        let case = format!("{} | {fault} on {action}", s.name());
        set_rules(
            s.lab(w),
            &format!("[[faults]]\naction = \"{action}\"\n{rule}\n"),
        );
        let ended = run_within(s.command(w), BOUND);
        violations.extend(check_case(
            s,
            w,
            &reference,
            &case,
            action,
            Some(&ended),
            "",
        ));
    }
    report(
        &format!("{} × {fault}", s.name()),
        reference.calls.len(),
        &violations,
        t.elapsed(),
    );
}

/// A kill -9 before and after each call of each mutating action `s` makes.
pub(crate) fn kills<S: Scenario>(s: &S) {
    let t = Instant::now();
    let own = OwnMoto::start();
    let moto = own.url.as_str();
    let reference = reference(s, moto);
    let mut violations = Vec::new();
    let mut cases = 0;
    for (action, n) in reference
        .calls
        .iter()
        .filter(|(a, _)| mutates(a) && wanted(a))
    {
        for call in 1..=*n {
            for after in [false, true] {
                cases += 1;
                let when = if after { "after" } else { "before" };
                let case = format!("{} | kill {when} {action} #{call}", s.name());
                violations.extend(kill_case(s, moto, &reference, &case, action, call, after));
            }
        }
    }
    report(
        &format!("{} × kill -9", s.name()),
        cases,
        &violations,
        t.elapsed(),
    );
}

fn kill_case<S: Scenario>(
    s: &S,
    moto: &str,
    reference: &Reference,
    case: &str,
    action: &str,
    call: u64,
    after: bool,
) -> Vec<String> {
    let w = s.prepare(moto);
    let lab = s.lab(&w);
    // Before: the call is held and never made (the lab counts it as it
    // arrives). After: it is made and its reply held (the lab counts the
    // held reply; only call `call` is held).
    let (reply, seen, count) = if after {
        ("late", "held", 1)
    } else {
        ("hang", "calls", call)
    };
    set_rules(
        lab,
        &format!(
            "[[faults]]\naction = \"{action}\"\ncalls = [{call}]\nreply = \"{reply}\"\nlatency = \"60s\"\n"
        ),
    );
    let mut child = s.command(&w).spawn();
    let start = Instant::now();
    let reached = loop {
        if counts(lab, seen).get(action).copied().unwrap_or(0) >= count {
            break true;
        }
        if child.try_wait().unwrap().is_some() || start.elapsed() > BOUND {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    if !reached {
        return vec![format!(
            "{case}: the run never reached the call ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )];
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = said.lines().rev().take(8).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    check_case(s, &w, reference, case, action, None, &tail.join("\n"))
}

/// One test per command and fault, and one for its kill points.
macro_rules! matrix {
    ($module:ident, $scenario:expr) => {
        mod $module {
            use super::super::{faults, kills};
            use crate::support::lab_prerequisites;

            /// Each test has an emulator of its own (the shared one only
            /// says the emulator is there).
            fn fault(name: &str) {
                if lab_prerequisites().is_some() {
                    faults(&$scenario, name);
                }
            }

            #[test]
            #[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
            fn throttle() {
                fault("throttle");
            }

            #[test]
            #[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
            fn internal_error() {
                fault("500");
            }

            #[test]
            #[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
            fn hang() {
                fault("hang");
            }

            #[test]
            #[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
            fn reset() {
                fault("reset");
            }

            #[test]
            #[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
            fn lost_reply() {
                fault("lost");
            }

            #[test]
            #[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
            fn access_denied() {
                fault("denied");
            }

            #[test]
            #[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
            fn kill_at_each_step() {
                if lab_prerequisites().is_some() {
                    kills(&$scenario);
                }
            }
        }
    };
}
pub(crate) use matrix;
