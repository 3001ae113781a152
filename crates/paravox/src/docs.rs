//! `paravox generate-docs DIR` (hidden, for packagers): man pages and shell completions
//! made from the same clap definitions that parse the command line, so they cannot drift:
//! `DIR/man/man1/*.1`, `DIR/completions/{paravox.bash,_paravox,paravox.fish}`.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

pub fn generate(dir: &Path) -> Result<()> {
    let mut command = Cli::command();
    command.build();
    // `man/man1/`: a tree `MANPATH` can point at.
    let man = dir.join("man/man1");
    std::fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    write_man_pages(&command, &man)?;
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)
        .with_context(|| format!("creating {}", completions.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut command, "paravox", &completions)
            .with_context(|| format!("writing the {shell} completion"))?;
        println!("{}", path.display());
    }
    Ok(())
}

/// `paravox.1` and one page per visible subcommand (`paravox-serve.1`, …), as git does;
/// clap's own `help` subcommands get none.
fn write_man_pages(command: &clap::Command, dir: &Path) -> Result<()> {
    let documented = command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help");
    for sub in documented {
        write_man_pages(sub, dir)?;
    }
    let name = command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
        .to_owned();
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(name.to_uppercase())
        .render(&mut page)
        .with_context(|| format!("rendering {name}.1"))?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}
