//! `paravox check-config FILE`: the validation `serve --config` does (the plugins it names
//! included), without opening a device, a socket or a thread, so a changed file can be checked before `systemctl reload`.

use anyhow::Result;

use crate::cli::CheckConfigArgs;
use crate::config::{Config, Source};
use crate::serve;

pub fn run(args: CheckConfigArgs) -> Result<()> {
    let state_dir = serve::state_dir(args.state_dir);
    let config = Config::load(&args.file, &state_dir)?;
    let source = Source {
        name: args.file.display().to_string(),
        text: "",
    };
    let cards = config.virtio_cards(&source, config.default_budget(&source)?)?;
    // Compiled without the on-disk cache: checking writes nothing.
    let library = paravox_control::plugins::PluginLibrary::without_cache(&state_dir);
    let plugins =
        paravox_control::dsp::check(&config.dsp, &library).map_err(crate::control_error)?;
    println!(
        "{}: valid ({} output endpoint(s), {} input endpoint(s), {} virtio card(s), \
         {} plugin entr{}; ${{state_dir}} = {})",
        args.file.display(),
        config.output.len(),
        config.input.len(),
        cards.len(),
        plugins,
        if plugins == 1 { "y" } else { "ies" },
        state_dir.display()
    );
    Ok(())
}
