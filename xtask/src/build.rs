//! `cargo xtask build`: the kernel ELF, with its symbol table written in place, and the
//! image that boots: the same ELF without debug information or ELF symbol tables (the
//! kernel symbolizes crashes from its own section, [`rexo_symtab::SECTION`], which
//! stays). The debug information (11 MB of the 14) is never loaded into the guest; left
//! in, it made the image on an ISO or USB stick 14 MB and QEMU read and sort the ELF's
//! symbols at every boot. gdb gets the full ELF ([`debug_elf`]).

use crate::Result;
use crate::args::Args;
use crate::deps;
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use rexo_symtab::Symbol;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kernel ELF, relative to the workspace root.
pub const KERNEL_ELF: &str = "target/x86_64-unknown-none/release/rexo";
/// The image that boots: [`KERNEL_ELF`] stripped, relative to the workspace root.
pub const BOOT_ELF: &str = "target/x86_64-unknown-none/release/rexo-boot.elf";

/// The full kernel ELF, with debug information and symbols: for gdb.
pub fn debug_elf() -> PathBuf {
    crate::root().join(KERNEL_ELF)
}

/// `cargo xtask build`: no flags.
pub fn command(words: Vec<String>) -> Result<()> {
    let mut args = Args::new("build", &[], words);
    if let Some(word) = args.next_word() {
        return Err(args.unknown(&word));
    }
    let elf = kernel()?;
    println!("{}", elf.display());
    Ok(())
}

/// Checks the app rules (`appcheck`), ensures the Rust target, builds the kernel in
/// release mode, writes its symbol table and strips a copy to boot; returns the path of
/// that copy ([`BOOT_ELF`]).
pub fn kernel() -> Result<PathBuf> {
    let root = crate::root();
    crate::appcheck::check(&root)?;
    deps::ensure(&[deps::Need::CTools])?;
    let _one_build_at_a_time = build_lock(&root)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "rexo-kernel",
            "--target",
            "x86_64-unknown-none",
        ])
        .current_dir(&root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building the kernel failed ({status})"));
    }
    let elf = root.join(KERNEL_ELF);
    let count = write_symtab(&elf)?;
    eprintln!("xtask: wrote {count} symbols into {}", rexo_symtab::SECTION);
    let boot = root.join(BOOT_ELF);
    replace_file(&boot, |temp| {
        crate::baremetal::run(
            Command::new("objcopy")
                .arg("--strip-all")
                .arg(&elf)
                .arg(temp),
        )
    })?;
    Ok(boot)
}

/// Waits for, then holds until it is dropped, the lock that lets one xtask process at a
/// time build the kernel, write its symbols and strip its boot copy: cargo links the
/// kernel ELF again from its own copy (without the symbol table) on every build, even one
/// with nothing to do, so another process's strip could find the file missing or without
/// its symbols (`selftest::` runs `cargo xtask run` beside the harness and beside each
/// other). A `flock` on `target/kernel-build.lock`, released when its file is closed.
fn build_lock(root: &Path) -> Result<File> {
    let path = root.join("target/kernel-build.lock");
    std::fs::create_dir_all(root.join("target"))
        .map_err(|e| format!("cannot create {}: {e}", root.join("target").display()))?;
    let file = File::create(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
    Ok(file)
}

/// Replaces the file at `path` with what `write` puts at a path of this process's own
/// beside it, renamed over `path` at the end: other xtask processes building at the same
/// time (`selftest::` runs `cargo xtask run` beside the harness) and QEMU reading the
/// kernel meanwhile see the old file or the new one, never one half written.
fn replace_file(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    let temp = path.with_file_name(name);
    let written = write(&temp).and_then(|()| {
        std::fs::rename(&temp, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Writes the function symbols of the ELF at `path` into its symbol-table section;
/// returns how many symbols the ELF had.
pub fn write_symtab(path: &Path) -> Result<usize> {
    let mut data =
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let count = fill_symtab(&mut data).map_err(|e| format!("{}: {e}", path.display()))?;
    replace_file(path, |temp| {
        std::fs::write(temp, &data).map_err(|e| format!("cannot write {}: {e}", temp.display()))
    })?;
    Ok(count)
}

/// Encodes the function symbols of the ELF image `data` into its
/// [`rexo_symtab::SECTION`] section, zeroing the rest; returns the symbol count.
pub fn fill_symtab(data: &mut [u8]) -> Result<usize> {
    let (symbols, offset, size) = {
        let file =
            object::File::parse(&*data).map_err(|e| format!("not a readable ELF file: {e}"))?;
        let section = file.section_by_name(rexo_symtab::SECTION).ok_or_else(|| {
            format!(
                "the kernel has no section {}; it must reserve {} bytes there (see docs/kernel-interface.md)",
                rexo_symtab::SECTION,
                rexo_symtab::RESERVED_BYTES
            )
        })?;
        let (offset, size) = section.file_range().ok_or_else(|| {
            format!(
                "section {} has no bytes in the file (is it NOBITS?); it must be filled with zeros",
                rexo_symtab::SECTION
            )
        })?;
        (function_symbols(&file), offset, size)
    };
    let size = usize::try_from(size).map_err(|_| "section size overflows usize".to_string())?;
    if size < rexo_symtab::RESERVED_BYTES {
        return Err(format!(
            "section {} has {size} bytes, fewer than the {} the format reserves",
            rexo_symtab::SECTION,
            rexo_symtab::RESERVED_BYTES
        ));
    }
    let table = rexo_symtab::encode(&symbols, rexo_symtab::RESERVED_BYTES)
        .map_err(|e| format!("cannot encode the symbol table: {e}"))?;
    let start = usize::try_from(offset).map_err(|_| "section offset overflows".to_string())?;
    let area = start
        .checked_add(size)
        .and_then(|end| data.get_mut(start..end))
        .ok_or_else(|| format!("section {} lies outside the file", rexo_symtab::SECTION))?;
    area.fill(0);
    area[..table.len()].copy_from_slice(&table);
    Ok(symbols.len())
}

/// The defined function symbols of `file`, demangled without hashes.
fn function_symbols(file: &object::File<'_>) -> Vec<Symbol> {
    file.symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.is_definition())
        .filter_map(|s| {
            let name = s.name().ok()?;
            Some(Symbol {
                addr: s.address(),
                size: s.size(),
                name: format!("{:#}", rustc_demangle::demangle(name)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::write::{Object as WriteObject, Symbol as WriteSymbol, SymbolSection};
    use object::{Architecture, BinaryFormat, Endianness, SectionKind, SymbolFlags, SymbolScope};

    /// An ELF object with a `.text` holding two functions and, if `reserve` is set,
    /// a symbol-table section of that many bytes filled with 0xAA.
    fn elf(reserve: Option<usize>) -> Vec<u8> {
        let mut obj = WriteObject::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let text = obj.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text);
        let at = obj.append_section_data(text, &[0xc3; 64], 16);
        for (name, value, size) in [
            ("_ZN4rexo4boot5start17h0123456789abcdefE", at, 16),
            ("plain_function", at + 16, 32),
        ] {
            obj.add_symbol(WriteSymbol {
                name: name.as_bytes().to_vec(),
                value,
                size,
                kind: SymbolKind::Text,
                scope: SymbolScope::Linkage,
                weak: false,
                section: SymbolSection::Section(text),
                flags: SymbolFlags::None,
            });
        }
        if let Some(bytes) = reserve {
            let section = obj.add_section(
                Vec::new(),
                rexo_symtab::SECTION.as_bytes().to_vec(),
                SectionKind::ReadOnlyData,
            );
            obj.append_section_data(section, &vec![0xaa; bytes], 8);
        }
        obj.write().expect("object writes")
    }

    fn section_bytes(data: &[u8]) -> Vec<u8> {
        let file = object::File::parse(data).unwrap();
        let section = file.section_by_name(rexo_symtab::SECTION).unwrap();
        section.data().unwrap().to_vec()
    }

    #[test]
    fn writes_a_table_that_parses_and_names_functions() {
        let mut data = elf(Some(rexo_symtab::RESERVED_BYTES + 100));
        assert_eq!(fill_symtab(&mut data), Ok(2));
        let bytes = section_bytes(&data);
        let table = rexo_symtab::SymbolTable::parse(&bytes).expect("table parses");
        let (name, _) = table.lookup(5).expect("address inside the first function");
        assert_eq!(name, "rexo::boot::start");
        let (name, _) = table
            .lookup(20)
            .expect("address inside the second function");
        assert_eq!(name, "plain_function");
        // Everything after the table is zero (the 0xAA filler is gone).
        assert!(bytes.iter().rev().take(100).all(|&b| b == 0));
    }

    /// One kernel build at a time: while one holds the lock another taker waits, and
    /// takes it once the first is dropped.
    #[test]
    fn the_build_lock_holds_off_another_build_until_it_is_dropped() {
        let root = std::env::temp_dir().join(format!("rexo-buildlock-{}", std::process::id()));
        let held = build_lock(&root).unwrap();
        let other = File::open(root.join("target/kernel-build.lock")).unwrap();
        let try_lock =
            || rustix::fs::flock(&other, rustix::fs::FlockOperation::NonBlockingLockExclusive);
        assert_eq!(try_lock(), Err(rustix::io::Errno::WOULDBLOCK), "held");
        drop(held);
        assert_eq!(try_lock(), Ok(()), "free once dropped");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Writers at the same time, as `selftest::` runs `cargo xtask run` beside the
    /// harness: a reader never finds the file half written (a plain `fs::write`
    /// truncates it first).
    #[test]
    fn the_symbol_table_is_written_whole_while_others_read_and_write() {
        let dir = std::env::temp_dir().join(format!("rexo-symtab-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rexo");
        std::fs::write(&path, elf(Some(rexo_symtab::RESERVED_BYTES + 100))).unwrap();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..50 {
                        let data = std::fs::read(&path).unwrap();
                        object::File::parse(&*data).expect("a whole ELF file");
                    }
                });
            }
            // One process's writes, back to back, against the readers above.
            for _ in 0..50 {
                assert_eq!(write_symtab(&path), Ok(2));
            }
        });
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_section_is_a_clear_error() {
        let mut data = elf(None);
        let err = fill_symtab(&mut data).unwrap_err();
        assert!(err.contains(rexo_symtab::SECTION), "{err}");
    }

    #[test]
    fn small_section_is_refused() {
        let mut data = elf(Some(64));
        let err = fill_symtab(&mut data).unwrap_err();
        assert!(err.contains("64 bytes"), "{err}");
    }

    #[test]
    fn garbage_is_not_an_elf() {
        let mut data = b"definitely not an ELF file".to_vec();
        assert!(fill_symtab(&mut data).unwrap_err().contains("ELF"));
    }
}
