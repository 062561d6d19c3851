//! `snaptastic generate`: man pages and shell completions rendered from
//! the clap tree itself (as ripgrep does), so a packager (scripts/package.sh)
//! and a `cargo install` user get the same pages, and they cannot drift
//! from the flags. The tablesnap, tableslurp and tablechop names get their
//! own page and completion, as they are installed as their own commands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, GenerateArgs, Generated};

/// The commands that get a page and a completion: the binary, then the
/// names it answers to through symlinks.
fn commands() -> Vec<clap::Command> {
    let mut root = Cli::command();
    root.build();
    let mut out = vec![root.clone()];
    for name in crate::cli::MULTI_CALL {
        if let Some(sub) = root.find_subcommand(name) {
            // The symlinked name is a program of its own: its usage line,
            // version and page name say so.
            out.push(
                sub.clone()
                    .name(name)
                    .display_name(name)
                    .bin_name(name)
                    .version(env!("CARGO_PKG_VERSION")),
            );
        }
    }
    out
}

pub(crate) fn run(args: &GenerateArgs) -> Result<ExitCode> {
    let commands = match &args.dir {
        Some(_) => commands(),
        None => commands().into_iter().take(1).collect(),
    };
    for cmd in commands {
        let (name, bytes) = render(args.what, cmd)?;
        match &args.dir {
            Some(dir) => write(dir, &name, &bytes)?,
            None => std::io::stdout().write_all(&bytes)?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One command's file name and contents.
fn render(what: Generated, mut cmd: clap::Command) -> Result<(String, Vec<u8>)> {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    let shell = match what {
        Generated::Man => {
            man_page(cmd, &mut out)?;
            return Ok((format!("{name}.1"), out));
        }
        Generated::CompleteBash => Shell::Bash,
        Generated::CompleteZsh => Shell::Zsh,
        Generated::CompleteFish => Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, name.clone(), &mut out);
    let file = match shell {
        Shell::Zsh => format!("_{name}"),
        Shell::Fish => format!("{name}.fish"),
        _ => name,
    };
    Ok((file, out))
}

/// A command's page; snaptastic's also holds, after its own, each
/// visible command's synopsis, description and options (one page for the
/// whole tool, as an operator reads it), and those of their own
/// subcommands (`fast-restore enable`).
fn man_page(cmd: clap::Command, out: &mut Vec<u8>) -> Result<()> {
    let subs = visible_subcommands(&cmd);
    clap_mangen::Man::new(cmd).render(out)?;
    for sub in subs {
        command_section(sub, out)?;
    }
    Ok(())
}

fn visible_subcommands(cmd: &clap::Command) -> Vec<clap::Command> {
    cmd.get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .cloned()
        .collect()
}

/// One command's section, then its subcommands' (their bin names are
/// whole: `snaptastic fast-restore enable`).
fn command_section(cmd: clap::Command, out: &mut Vec<u8>) -> Result<()> {
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string();
    let subs = visible_subcommands(&cmd);
    out.extend_from_slice(format!(".SH \"COMMAND: {name}\"\n").as_bytes());
    let man = clap_mangen::Man::new(cmd);
    man.render_description_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_options_section(out)?;
    for sub in subs {
        command_section(sub, out)?;
    }
    Ok(())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}
