//! The `topdog` executable: parses the command line and hands over to `cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    topdog::cli::main()
}
