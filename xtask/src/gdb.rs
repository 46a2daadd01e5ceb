//! A small client of QEMU's GDB stub, for tests that must change guest memory after
//! the firmware ran and before the kernel's first instruction.
//!
//! Why: QEMU recomputes the checksum of every `-acpitable` (hw/acpi/core.c,
//! `acpi_table_install`), so a table with a wrong checksum can only be made by
//! patching guest memory. [`corrupt_acpi_checksum`] stops the guest at the kernel's
//! PVH entry, follows the PVH start_info to the RSDP and the RSDT/XSDT, and adds one
//! to the checksum byte of the table with the given signature.

use crate::Result;
use object::Endianness;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// `XEN_ELFNOTE_PHYS32_ENTRY`.
const PVH_NOTE_TYPE: u32 = 18;
/// `hvm_start_info.magic`.
const START_INFO_MAGIC: u32 = 0x336e_c578;

/// The 32-bit PVH entry address from the ELF's Xen note.
pub fn pvh_entry(elf: &[u8]) -> Result<u64> {
    let file = ElfFile64::<Endianness>::parse(elf).map_err(|e| format!("not an ELF64: {e}"))?;
    let endian = file.endian();
    let phdrs = file
        .elf_header()
        .program_headers(endian, elf)
        .map_err(|e| format!("bad program headers: {e}"))?;
    for phdr in phdrs {
        let Ok(Some(mut notes)) = phdr.notes(endian, elf) else {
            continue;
        };
        while let Ok(Some(note)) = notes.next() {
            if note.name() == b"Xen" && note.n_type(endian) == PVH_NOTE_TYPE {
                let desc = note.desc();
                return match desc.len() {
                    4 => Ok(u64::from(u32::from_le_bytes([
                        desc[0], desc[1], desc[2], desc[3],
                    ]))),
                    8 => Ok(u64::from_le_bytes(desc.try_into().map_err(|_| "bad note")?)),
                    n => Err(format!("PVH note has a {n}-byte address")),
                };
            }
        }
    }
    Err("the ELF has no Xen PVH note (type 18)".into())
}

/// A connection to QEMU's GDB stub (acknowledged mode).
struct Stub {
    stream: TcpStream,
}

impl Stub {
    /// Connects to `127.0.0.1:port`, retrying while QEMU starts.
    fn connect(port: u16, within: Duration) -> Result<Self> {
        let deadline = Instant::now() + within;
        loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(30)))
                        .map_err(|e| e.to_string())?;
                    // Each packet at once: with Nagle on, one written right after an
                    // acknowledgement waits for QEMU to ACK it (delayed: 40 ms a packet).
                    stream.set_nodelay(true).map_err(|e| e.to_string())?;
                    return Ok(Self { stream });
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("cannot reach QEMU's gdb stub on port {port}: {e}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8];
        self.stream
            .read_exact(&mut b)
            .map_err(|e| format!("gdb stub: {e}"))?;
        Ok(b[0])
    }

    /// Sends one packet and returns the reply.
    fn ask(&mut self, data: &str) -> Result<String> {
        let sum = data.bytes().fold(0u8, |a, b| a.wrapping_add(b));
        let packet = format!("${data}#{sum:02x}");
        self.stream
            .write_all(packet.as_bytes())
            .map_err(|e| format!("gdb stub: {e}"))?;
        loop {
            match self.byte()? {
                b'+' => break,
                b'-' => {
                    self.stream
                        .write_all(packet.as_bytes())
                        .map_err(|e| format!("gdb stub: {e}"))?;
                }
                _ => {}
            }
        }
        while self.byte()? != b'$' {}
        let mut reply = Vec::new();
        loop {
            match self.byte()? {
                b'#' => break,
                b => reply.push(b),
            }
        }
        let _checksum = [self.byte()?, self.byte()?];
        self.stream
            .write_all(b"+")
            .map_err(|e| format!("gdb stub: {e}"))?;
        let reply = String::from_utf8_lossy(&reply).into_owned();
        if reply.starts_with('E') && reply.len() == 3 {
            return Err(format!("gdb stub refused `{data}`: {reply}"));
        }
        Ok(reply)
    }

    fn read(&mut self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let chunk = (len - out.len()).min(1024);
            let at = addr + out.len() as u64;
            let hex = self.ask(&format!("m{at:x},{chunk:x}"))?;
            let bytes = unhex(&hex)?;
            if bytes.len() != chunk {
                return Err(format!(
                    "gdb stub returned {} of {chunk} bytes at {at:#x}",
                    bytes.len()
                ));
            }
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    fn u32_at(&mut self, addr: u64) -> Result<u32> {
        let b = self.read(addr, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64_at(&mut self, addr: u64) -> Result<u64> {
        let b = self.read(addr, 8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| "short read")?))
    }
}

/// Parses hex digits into bytes.
fn unhex(hex: &str) -> Result<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return Err(format!("odd-length hex from the gdb stub: {hex}"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&hex[i..i + 2], 16)
                .map_err(|_| format!("bad hex from the gdb stub: {hex}"))
        })
        .collect()
}

/// Finds the RSDP: from the PVH start_info at `start_info`, else the BIOS area.
fn find_rsdp(stub: &mut Stub, start_info: u64) -> Result<u64> {
    if stub.u32_at(start_info)? == START_INFO_MAGIC {
        let rsdp = stub.u64_at(start_info + 32)?;
        if rsdp != 0 {
            return Ok(rsdp);
        }
    }
    let bios = stub.read(0xe0000, 0x20000)?;
    (0..bios.len())
        .step_by(16)
        .find(|&i| bios[i..].starts_with(b"RSD PTR "))
        .map(|i| 0xe0000 + i as u64)
        .ok_or_else(|| "no RSDP in the PVH start_info or the BIOS area".into())
}

/// Runs QEMU's guest (started with `-S -gdb tcp:127.0.0.1:PORT`) to the kernel's PVH
/// entry, adds one to the checksum of the ACPI table `signature`, and lets it go on.
pub fn corrupt_acpi_checksum(port: u16, kernel: &Path, signature: &str) -> Result<()> {
    let elf =
        std::fs::read(kernel).map_err(|e| format!("cannot read {}: {e}", kernel.display()))?;
    let entry = pvh_entry(&elf)?;
    let mut stub = Stub::connect(port, Duration::from_secs(10))?;
    stub.ask(&format!("Z0,{entry:x},1"))?;
    let stop = stub.ask("c")?;
    if !stop.starts_with('T') && !stop.starts_with('S') {
        return Err(format!("the guest did not stop at the PVH entry: `{stop}`"));
    }
    stub.ask(&format!("z0,{entry:x},1"))?;
    // Register 1 is rbx: the start_info address (little-endian hex).
    let rbx = unhex(&stub.ask("p1")?)?;
    let start_info = rbx
        .iter()
        .take(4)
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let rsdp = find_rsdp(&mut stub, start_info)?;
    let head = stub.read(rsdp, 36)?;
    if !head.starts_with(b"RSD PTR ") {
        return Err(format!("no RSDP signature at {rsdp:#x}"));
    }
    let revision = head[15];
    let xsdt = u64::from_le_bytes(head[24..32].try_into().map_err(|_| "short RSDP")?);
    let (root, width) = if revision >= 2 && xsdt != 0 {
        (xsdt, 8)
    } else {
        (
            u64::from(u32::from_le_bytes(
                head[16..20].try_into().map_err(|_| "short RSDP")?,
            )),
            4,
        )
    };
    let len = u64::from(stub.u32_at(root + 4)?);
    let mut at = root + 36;
    while at + width <= root + len {
        let table = if width == 8 {
            stub.u64_at(at)?
        } else {
            u64::from(stub.u32_at(at)?)
        };
        if stub.read(table, 4)? == signature.as_bytes() {
            let checksum = stub.read(table + 9, 1)?[0].wrapping_add(1);
            stub.ask(&format!("M{:x},1:{checksum:02x}", table + 9))?;
            // Detach: QEMU resumes the guest.
            let _ = stub.ask("D");
            return Ok(());
        }
        at += width;
    }
    let _ = stub.ask("D");
    Err(format!("ACPI table {signature} is not in the RSDT/XSDT"))
}

/// QEMU's gdb register numbers of the x87 control word (`fctrl`) and MXCSR, each read
/// and written as 32 bits, with the reset value each must hold before it is changed.
/// Its stub numbers them after 16 general registers, rip, eflags, 6 selectors, 3 bases,
/// 6 control registers, 8 x87 data and 7 other x87 registers, 16 xmm (target/i386/
/// gdbstub.c), not as its own i386-64bit.xml, which lists 3 more bases (QEMU 7.2: the
/// xml's numbers answer `E14` or write something else); the reset values confirm them.
const FPU_CONTROLS: [(u32, u32); 2] = [(41, 0x037F), (65, 0x1F80)];

/// Sets every vCPU's x87 control word to `control_word` and MXCSR to `mxcsr` in QEMU's
/// guest, started with `-S -gdb tcp:127.0.0.1:PORT` (before the firmware's first
/// instruction), and lets it go on: the state a loader or firmware may hand over, which
/// INIT keeps (QEMU's as the CPU's).
pub fn leave_fpu_controls(port: u16, control_word: u16, mxcsr: u32) -> Result<()> {
    let mut stub = Stub::connect(port, Duration::from_secs(10))?;
    // QEMU writes registers only for a client that read its target description.
    stub.ask("qXfer:features:read:target.xml:0,400")?;
    let mut threads = Vec::new();
    let mut listed = stub.ask("qfThreadInfo")?;
    while let Some(ids) = listed.strip_prefix('m') {
        threads.extend(ids.split(',').map(str::to_owned));
        listed = stub.ask("qsThreadInfo")?;
    }
    if threads.is_empty() {
        return Err(format!("the gdb stub listed no vCPU: `{listed}`"));
    }
    let hex = |value: u32| -> String {
        value
            .to_le_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let values = [u32::from(control_word), mxcsr];
    for thread in &threads {
        stub.ask(&format!("Hg{thread}"))?;
        for ((register, at_reset), value) in FPU_CONTROLS.into_iter().zip(values) {
            let held = stub.ask(&format!("p{register:x}"))?;
            if held != hex(at_reset) {
                return Err(format!(
                    "gdb stub: register {register} of vCPU {thread} holds `{held}`, not {at_reset:#x}: another numbering"
                ));
            }
            let answer = stub.ask(&format!("P{register:x}={}", hex(value)))?;
            if answer != "OK" || stub.ask(&format!("p{register:x}"))? != hex(value) {
                return Err(format!(
                    "gdb stub: register {register} of vCPU {thread} not written: `{answer}`"
                ));
            }
        }
    }
    // Detach: QEMU resumes the guest.
    let _ = stub.ask("D");
    Ok(())
}

/// A TCP port that is free right now on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free TCP port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_of_the_trivial_kernel() {
        let elf = crate::pvh::elf(0);
        let entry = pvh_entry(&elf).unwrap();
        assert!((0x10_0000..0x10_1000).contains(&entry));
        assert!(pvh_entry(b"junk").is_err());
    }

    #[test]
    fn the_stubs_connection_sends_each_packet_at_once() {
        // With Nagle's algorithm on, each packet written right after an acknowledgement
        // waited for QEMU's delayed ACK (40 ms): badinput::acpi-bad-checksum's packets
        // took 7.5 of its 20 s.
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stub = Stub::connect(port, Duration::from_secs(10)).unwrap();
        assert!(stub.stream.nodelay().unwrap(), "Nagle's algorithm is on");
    }

    #[test]
    fn hex() {
        assert_eq!(unhex("00ff10"), Ok(vec![0, 255, 16]));
        assert!(unhex("0").is_err());
        assert!(unhex("zz").is_err());
    }

    /// Boots the trivial kernel on q35 under the gdb stub with `extra` arguments and
    /// runs [`corrupt_acpi_checksum`] for table RXBD against it.
    fn patch_trivial(name: &str, extra: &[String]) -> Result<()> {
        let root = crate::root();
        let kernel = crate::pvh::write(&root, name, 0).unwrap();
        let port = free_port().unwrap();
        let mut vm = crate::qemu::Vm::pvh(crate::qemu::Machine::Q35, &kernel, "");
        vm.extra = vec!["-S".into(), "-gdb".into(), format!("tcp:127.0.0.1:{port}")];
        vm.extra.extend_from_slice(extra);
        let args = vm.args(&root.join("target")).unwrap();
        let patch = std::thread::spawn(move || corrupt_acpi_checksum(port, &kernel, "RXBD"));
        let capture =
            crate::qemu::run_captured(&args, Duration::from_secs(30), None, |_| false).unwrap();
        assert_eq!(capture.end, crate::qemu::End::Exited(33));
        patch.join().unwrap()
    }

    #[test]
    fn missing_table_is_reported() {
        // The guest stops at the entry, the RSDT is walked, RXBD is not there.
        let err = patch_trivial("test-gdb-pvh.elf", &[]).unwrap_err();
        assert!(err.contains("RXBD is not in the RSDT/XSDT"), "{err}");
    }

    #[test]
    fn table_from_acpitable_is_found_and_patched() {
        let table = std::env::temp_dir().join(format!("rexo-rxbd-{}.aml", std::process::id()));
        std::fs::write(&table, crate::harness::bad_acpi_table()).unwrap();
        let extra = [
            "-acpitable".to_string(),
            format!("file={}", crate::qemu::option_path(&table).unwrap()),
        ];
        let result = patch_trivial("test-gdb-pvh2.elf", &extra);
        let _ = std::fs::remove_file(&table);
        assert_eq!(result, Ok(()));
    }
}
