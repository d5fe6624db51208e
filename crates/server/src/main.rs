fn main() -> std::process::ExitCode {
    dialboard::cli::main()
}
