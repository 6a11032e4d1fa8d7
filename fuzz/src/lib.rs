//! Fuzzing of every decoder fed by the outside world, on the stable toolchain.
//!
//! A [`Target`] runs one input through a decoder and the checks behind it and says
//! whether the decoder took it ([`Verdict`]) or that a property broke (`Err`). The runner
//! ([`run`]) mutates a seed corpus for a fixed time (bit flips, byte sets, inserts,
//! deletes, copies, splices between inputs, tweaks of 1/2/4/8-byte and varint length
//! fields: [`Mutator`]), executes each input with a panic caught ([`execute`]), checks the
//! bytes one execution allocates ([`ALLOC_BYTES_MAX`], with [`CountingAlloc`] installed),
//! and keeps inputs the decoder accepted as further parents. The `cairn-fuzz` binary adds
//! a watchdog for hangs ([`EXEC_MS_MAX`]) and saves the input of a fatal signal
//! ([`guard`]).
//!
//! Why not cargo-fuzz or proptest: cargo-fuzz (libFuzzer) needs nightly; proptest
//! generates values from strategies and shrinks them, but our decoders take bytes, and
//! mutating valid encodings reaches far deeper than generating random structures. Inputs
//! found failing are minimised ([`minimize`]) and kept under `fuzz/regressions/<target>/`,
//! which `cargo test -p fuzz` replays ([`replay_dir`]). See `docs/fuzzing.md`.
#![deny(missing_docs)]

mod alloc;
mod bundle;
pub mod guard;
mod mutate;
mod runner;
pub mod targets;

pub use alloc::{CountingAlloc, ALLOC_BYTES_MAX};
pub use bundle::Bundle;
pub use mutate::Mutator;
pub use runner::{
    execute, minimize, replay_dir, run, Finding, Report, RunOptions, EXEC_MS_MAX, INPUT_BYTES_MAX,
};
pub use targets::{target, TARGETS};

/// What a decoder made of an input that broke no property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Decoded (and, where the target goes on, served or recovered): the input is kept as
    /// a parent for further mutations.
    Accepted,
    /// Refused with a clear error, as bad input must be.
    Rejected,
}

/// One fuzz target: a decoder fed by the outside world and the properties it must keep.
pub trait Target {
    /// The target's name on the command line and under `fuzz/regressions/`.
    fn name(&self) -> &'static str;

    /// Valid inputs to start from (encodings produced by the code under test).
    fn seeds(&mut self) -> Vec<Vec<u8>>;

    /// Mutates `input` in place; the default applies [`Mutator::mutate`] to the bytes.
    /// `corpus` offers other inputs for splicing.
    fn mutate(&mut self, input: &mut Vec<u8>, corpus: &[Vec<u8>], mutator: &mut Mutator) {
        mutator.mutate(input, corpus);
    }

    /// Runs one input. `Err(reason)` when a property broke (a finding); a panic is a
    /// finding too. Must do bounded work for any input.
    fn execute(&mut self, input: &[u8]) -> Result<Verdict, String>;
}
