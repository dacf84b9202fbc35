fn main() -> std::process::ExitCode {
    mgw::cli::main()
}
