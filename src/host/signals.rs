//! Giving SIGTERM, SIGINT and SIGHUP their default action back once the
//! frozen window is over: the async runtime keeps its handlers installed
//! for the life of the process, and a signal after the window (during
//! `post_snapshot` hooks, say) must stop the run as the operator meant.

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// Default actions for the termination signals, from now on.
pub(crate) fn restore_default() {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: installing SIG_DFL runs no code of ours in signal
        // context; the runtime's handler is simply no longer called.
        let _ = unsafe { sigaction(s, &default) };
    }
}
