//! The `kest` binary. See the `kest_cli` library for the commands.

fn main() -> std::process::ExitCode {
    kest_cli::main_with_args()
}
