//! A trivial PVH kernel written byte by byte: QEMU's floor for boot benchmarks and
//! the probe that checks whether KVM runs at full speed.
//!
//! The ELF64 has one `PT_LOAD` (the whole file, at 1 MiB) and one `PT_NOTE` with the
//! Xen PVH entry note (owner "Xen", type 18, a 4-byte 32-bit entry address). The code
//! runs in 32-bit protected mode: an optional count-down loop, then [`LINE`] to COM1
//! (port 0x3f8, a byte at a time: QEMU's UART sends what is written without being set
//! up), then `0x10` to the `isa-debug-exit` port 0xf4, so QEMU exits with status 33.
//! `bench boot` times the floor to that line, as it times Rexo to its ready line.

use crate::Result;
use std::path::{Path, PathBuf};

/// Where the file is loaded (physical).
const LOAD_ADDR: u32 = 0x10_0000;
/// ELF header size.
const EHDR_LEN: usize = 64;
/// Program header size.
const PHDR_LEN: usize = 56;
/// `XEN_ELFNOTE_PHYS32_ENTRY`.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// The value written to the debug-exit port (QEMU exits with 2*0x10+1 = 33).
pub const EXIT_VALUE: u8 = 0x10;
/// Offset of the note in the file.
const NOTE_OFFSET: usize = EHDR_LEN + 2 * PHDR_LEN;
/// Note: namesz, descsz, type, "Xen\0", entry.
const NOTE_LEN: usize = 20;
/// Offset of the code in the file.
const CODE_OFFSET: usize = NOTE_OFFSET + NOTE_LEN;
/// The line the code writes to COM1 before it exits (with a `\n`).
pub const LINE: &str = "pvh: exiting";
/// COM1's transmit register.
const COM1: u16 = 0x3f8;

/// The 32-bit code: `spin` iterations of `dec ecx; jnz` (none if 0), [`LINE`] to COM1,
/// then exit.
fn code(spin: u32) -> Vec<u8> {
    let mut code = Vec::new();
    if spin > 0 {
        code.push(0xb9); // mov ecx, imm32
        code.extend_from_slice(&spin.to_le_bytes());
        code.extend_from_slice(&[0x49, 0x75, 0xfd]); // dec ecx; jnz -3
    }
    code.extend_from_slice(&[0x66, 0xba]); // mov dx, imm16
    code.extend_from_slice(&COM1.to_le_bytes());
    for byte in LINE.bytes().chain([b'\n']) {
        code.extend_from_slice(&[0xb0, byte, 0xee]); // mov al, byte; out dx, al
    }
    code.extend_from_slice(&[0xb0, EXIT_VALUE]); // mov al, EXIT_VALUE
    code.extend_from_slice(&[0xe6, 0xf4]); // out 0xf4, al
    code.extend_from_slice(&[0xfa, 0xf4, 0xeb, 0xfd]); // cli; hlt; jmp back to hlt
    code
}

fn push_phdr(out: &mut Vec<u8>, kind: u32, flags: u32, offset: usize, len: usize, align: u64) {
    let addr = u64::from(LOAD_ADDR) + offset as u64;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(offset as u64).to_le_bytes());
    out.extend_from_slice(&addr.to_le_bytes()); // p_vaddr
    out.extend_from_slice(&addr.to_le_bytes()); // p_paddr
    out.extend_from_slice(&(len as u64).to_le_bytes()); // p_filesz
    out.extend_from_slice(&(len as u64).to_le_bytes()); // p_memsz
    out.extend_from_slice(&align.to_le_bytes());
}

/// The bytes of a trivial PVH ELF that spins `spin` times, then exits QEMU with 33.
pub fn elf(spin: u32) -> Vec<u8> {
    let code = code(spin);
    let total = CODE_OFFSET + code.len();
    let entry = LOAD_ADDR + CODE_OFFSET as u32;
    let mut out = Vec::with_capacity(total);
    // ELF header.
    out.extend_from_slice(b"\x7fELF");
    out.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little-endian, version 1, SysV ABI
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    out.extend_from_slice(&u64::from(entry).to_le_bytes());
    out.extend_from_slice(&(EHDR_LEN as u64).to_le_bytes()); // e_phoff
    out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no sections
    out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    out.extend_from_slice(&(EHDR_LEN as u16).to_le_bytes());
    out.extend_from_slice(&(PHDR_LEN as u16).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes()); // e_phnum
    out.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    // PT_LOAD (R+X) of the whole file, PT_NOTE (R) of the note.
    push_phdr(&mut out, 1, 5, 0, total, 0x1000);
    push_phdr(&mut out, 4, 4, NOTE_OFFSET, NOTE_LEN, 4);
    // The Xen PVH entry note.
    out.extend_from_slice(&4u32.to_le_bytes()); // namesz
    out.extend_from_slice(&4u32.to_le_bytes()); // descsz
    out.extend_from_slice(&XEN_ELFNOTE_PHYS32_ENTRY.to_le_bytes());
    out.extend_from_slice(b"Xen\0");
    out.extend_from_slice(&entry.to_le_bytes());
    out.extend_from_slice(&code);
    out
}

/// Writes [`elf`]`(spin)` to `target/NAME` under `root` and returns the path.
pub fn write(root: &Path, name: &str, spin: u32) -> Result<PathBuf> {
    let dir = root.join("target");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(name);
    std::fs::write(&path, elf(spin))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
    use object::{Endianness, Object};

    #[test]
    fn is_an_elf64_with_load_and_pvh_note() {
        let data = elf(0);
        let file = ElfFile64::<Endianness>::parse(&*data).expect("valid ELF64");
        let entry = file.entry();
        assert_eq!(entry, u64::from(LOAD_ADDR) + CODE_OFFSET as u64);
        let header = file.elf_header();
        let phdrs = header.program_headers(Endianness::Little, &*data).unwrap();
        assert_eq!(phdrs.len(), 2);
        let load = &phdrs[0];
        assert_eq!(load.p_type(Endianness::Little), object::elf::PT_LOAD);
        assert_eq!(load.p_filesz(Endianness::Little), data.len() as u64);
        let note = &phdrs[1];
        assert_eq!(note.p_type(Endianness::Little), object::elf::PT_NOTE);
        let mut notes = note.notes(Endianness::Little, &*data).unwrap().unwrap();
        let first = notes.next().unwrap().unwrap();
        assert_eq!(first.name(), b"Xen");
        assert_eq!(first.n_type(Endianness::Little), XEN_ELFNOTE_PHYS32_ENTRY);
        assert_eq!(first.desc(), &(entry as u32).to_le_bytes());
        // The entry address points at the code: COM1's port into DX first.
        assert_eq!(
            &data[CODE_OFFSET..CODE_OFFSET + 4],
            &[0x66, 0xba, 0xf8, 0x03]
        );
    }

    /// The bytes the code writes to COM1 before its exit, read back from the
    /// instructions `code` emits (`mov dx, 0x3f8`, then `mov al, BYTE; out dx, al` for
    /// each), and that the exit follows them.
    fn written_to_com1(mut code: &[u8]) -> Vec<u8> {
        code = code
            .strip_prefix(&[0x66, 0xba, 0xf8, 0x03])
            .expect("mov dx, 0x3f8");
        let mut written = Vec::new();
        while let [0xb0, byte, 0xee, rest @ ..] = code {
            written.push(*byte);
            code = rest;
        }
        assert_eq!(&code[..4], &[0xb0, EXIT_VALUE, 0xe6, 0xf4], "then the exit");
        written
    }

    #[test]
    fn the_code_writes_its_line_to_com1_before_it_exits() {
        let data = elf(0);
        let line = written_to_com1(&data[CODE_OFFSET..]);
        assert_eq!(line, format!("{LINE}\n").into_bytes());
        // After the spin loop (mov ecx, imm32; dec ecx; jnz) in the spinning variant.
        let data = elf(1000);
        assert_eq!(written_to_com1(&data[CODE_OFFSET + 8..]), line);
    }

    #[test]
    fn spinning_variant_starts_with_the_loop() {
        let data = elf(1000);
        assert_eq!(data[CODE_OFFSET], 0xb9);
        assert_eq!(
            &data[CODE_OFFSET + 1..CODE_OFFSET + 5],
            &1000u32.to_le_bytes()
        );
        assert_eq!(data.len(), elf(0).len() + 8);
    }
}
