//! Helpers shared by the host tests of the library crates (a dev-dependency only).
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;

/// xorshift64*: a small, deterministic pseudo-random generator for fuzz-style tests, so
/// that a failing case reproduces from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits. The seed must not be zero.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The `no_run` example of a crate's docs as the reader sees it: `lib_rs` is the text of
/// the crate's `lib.rs`, whose first ```` ```no_run ```` block of `//!` lines is taken,
/// each line without its `//! ` and ending in a line break, the hidden `# ` lines left
/// out. Panics when the docs hold no such block (a test's helper: the test then fails).
pub fn crate_docs_example(lib_rs: &str) -> String {
    let block = lib_rs
        .split("//! ```no_run\n")
        .nth(1)
        .expect("the crate docs hold a ```no_run example");
    let block = block
        .split("//! ```\n")
        .next()
        .expect("split yields at least one part");
    block
        .lines()
        .map(|line| {
            line.strip_prefix("//!")
                .expect("the example's lines are crate docs (//!)")
                .strip_prefix(' ')
                .unwrap_or("")
        })
        .filter(|line| !line.starts_with("# "))
        .fold(String::new(), |mut example, line| {
            example.push_str(line);
            example.push('\n');
            example
        })
}

/// Panics unless the guide `page` (named `page_name` in the message) quotes `app`, a
/// crate's docs example ([`crate_docs_example`]), whole as a ```` ```rust ```` block: the
/// doctests build the example, so the guide's code builds too.
pub fn assert_guide_quotes(page_name: &str, page: &str, app: &str) {
    assert!(
        page.contains(&alloc::format!("```rust\n{app}```\n")),
        "{page_name} does not quote the example app:\n{app}"
    );
}

#[cfg(test)]
mod tests {
    use super::{Rng, assert_guide_quotes, crate_docs_example};

    #[test]
    #[should_panic(expected = "guide.md does not quote the example app")]
    fn a_guide_without_the_example_whole_fails() {
        assert_guide_quotes("guide.md", "```rust\nfn main() {}\n```\n", "fn main() {}\n");
        assert_guide_quotes("guide.md", "```rust\nfn main() {\n```\n", "fn main() {}\n");
    }

    #[test]
    fn the_example_is_the_no_run_block_without_its_hidden_lines() {
        let lib_rs = "//! A crate.\n//!\n//! ```\n//! other();\n//! ```\n//!\n//! ```no_run\n//! # use hidden::Thing;\n//! fn main() {\n//!\n//!     seen();\n//! }\n//! ```\n//! After.\n";
        assert_eq!(
            crate_docs_example(lib_rs),
            "fn main() {\n\n    seen();\n}\n"
        );
    }

    #[test]
    fn is_deterministic_and_moves() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        let first = a.next_u64();
        assert_eq!(first, b.next_u64());
        assert_ne!(first, a.next_u64());
    }
}
