//! Integration tests: the real binary, against the moto emulator where AWS
//! is involved (run them through `scripts/test.sh`, which starts it).

mod attacks;
mod clean_scope;
mod cli;
mod emulator;
mod fleet;
mod foreign_freeze;
mod freeze_safety;
mod freshness;
mod json_results;
mod lab;
mod layout;
mod mount;
mod policy;
mod porting;
mod progress;
mod restore_explain;
mod restore_order;
mod restore_safety;
mod retention;
mod s3_stalls;
mod slow_freeze;
mod slurp_safety;
mod snapshot;
mod snapshot_set;
mod snapshotters;
mod support;
mod tablesnap;
mod tablesnap_restart;
mod tablesnap_safety;
mod tablesnap_stop;
mod timezones;
mod units;
