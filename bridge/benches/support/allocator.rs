//! The allocator `bridge` ships with (see `src/main.rs`): a benchmark
//! binary is its own program, and without this it would measure the host
//! on glibc malloc, which showed as about a tenth of the machine's CPU in
//! the saga's profile.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
