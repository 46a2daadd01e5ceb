//! `cargo xtask image`: a hybrid BIOS + UEFI ISO made with `grub-mkrescue`, bootable
//! from a CD or a USB stick, loading the kernel through Multiboot2.

use crate::Result;
use crate::args::Args;
use crate::deps::{self, Need};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The default output, relative to the workspace root.
pub const DEFAULT_ISO: &str = "target/rexo.iso";

const FLAGS: &[&str] = &["--append", "--module", "-o"];

/// `cargo xtask image [--append WORDS] [--module FILE]... [-o PATH]`.
pub fn command(words: Vec<String>) -> Result<()> {
    let mut args = Args::new("image", FLAGS, words);
    let mut append = String::new();
    let mut modules = Vec::new();
    let mut out = crate::root().join(DEFAULT_ISO);
    while let Some(word) = args.next_word() {
        match word.as_str() {
            "--append" => append = args.value("--append")?,
            "--module" => modules.push(PathBuf::from(args.value("--module")?)),
            "-o" => out = PathBuf::from(args.value("-o")?),
            _ => return Err(args.unknown(&word)),
        }
    }
    let kernel = crate::build::kernel()?;
    build_iso(&kernel, &append, &modules, &out)?;
    println!("{}", out.display());
    Ok(())
}

/// The file name each module gets on the ISO (its own name); duplicates are an error.
fn module_names(modules: &[PathBuf]) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for module in modules {
        let name = module
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.contains(char::is_whitespace))
            .ok_or_else(|| {
                format!(
                    "module {} needs a UTF-8 file name without spaces",
                    module.display()
                )
            })?
            .to_string();
        if names.contains(&name) {
            return Err(format!("two modules are named {name}; rename one"));
        }
        names.push(name);
    }
    Ok(names)
}

/// GRUB's configuration: no menu delay, serial console at 115200, the kernel through
/// Multiboot2 with `append` as its command line, one `module2` per module name.
pub fn grub_cfg(append: &str, modules: &[String]) -> String {
    let mut cfg = String::from(
        "set timeout=0\n\
         set default=0\n\
         serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1\n\
         terminal_input serial console\n\
         terminal_output serial console\n\
         insmod all_video\n\
         set gfxpayload=keep\n\
         menuentry \"Rexo\" {\n",
    );
    let append = append.trim();
    if append.is_empty() {
        cfg.push_str("    multiboot2 /boot/rexo\n");
    } else {
        cfg.push_str(&format!("    multiboot2 /boot/rexo {append}\n"));
    }
    for name in modules {
        cfg.push_str(&format!("    module2 /boot/modules/{name} {name}\n"));
    }
    cfg.push_str("    boot\n}\n");
    cfg
}

/// Refuses a kernel command line that GRUB's configuration would not carry as it is.
pub fn check_append(append: &str) -> Result<()> {
    if append.contains(['"', '\n', '\\', '$', ';']) {
        return Err(format!(
            "--append `{append}`: quotes, backslashes, `$`, `;` and line breaks are not allowed in the GRUB command line"
        ));
    }
    Ok(())
}

/// Builds the ISO at `out` from `kernel`, the command line `append` and `modules`.
pub fn build_iso(kernel: &Path, append: &str, modules: &[PathBuf], out: &Path) -> Result<()> {
    check_append(append)?;
    deps::ensure(&[Need::Iso])?;
    let names = module_names(modules)?;
    let stem = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("bad output path {}", out.display()))?;
    // The staging tree sits beside the ISO, so that two ISOs built at once (the test
    // cases run in parallel, each in its own folder) never share one.
    let tree = out.with_file_name(format!("{stem}.tree"));
    let io = |what: &str, path: &Path, e: std::io::Error| {
        format!("cannot {what} {}: {e}", path.display())
    };
    if tree.exists() {
        std::fs::remove_dir_all(&tree).map_err(|e| io("remove", &tree, e))?;
    }
    let grub = tree.join("boot/grub");
    let mods = tree.join("boot/modules");
    std::fs::create_dir_all(&grub).map_err(|e| io("create", &grub, e))?;
    std::fs::create_dir_all(&mods).map_err(|e| io("create", &mods, e))?;
    std::fs::copy(kernel, tree.join("boot/rexo")).map_err(|e| io("copy", kernel, e))?;
    for (module, name) in modules.iter().zip(&names) {
        std::fs::copy(module, mods.join(name)).map_err(|e| io("copy module", module, e))?;
    }
    let cfg = grub.join("grub.cfg");
    std::fs::write(&cfg, grub_cfg(append, &names)).map_err(|e| io("write", &cfg, e))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    }
    let output = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(out)
        .arg(&tree)
        .output()
        .map_err(|e| format!("cannot run grub-mkrescue ({e}); install grub-common"))?;
    if !output.status.success() {
        return Err(format!(
            "grub-mkrescue failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_everything() {
        let cfg = grub_cfg("app=hello log=debug", &["a.bin".into(), "b".into()]);
        assert!(cfg.starts_with("set timeout=0\n"));
        assert!(cfg.contains("serial --unit=0 --speed=115200"));
        assert!(cfg.contains("terminal_output serial console"));
        assert!(cfg.contains("    multiboot2 /boot/rexo app=hello log=debug\n"));
        assert!(cfg.contains("    module2 /boot/modules/a.bin a.bin\n"));
        assert!(cfg.contains("    module2 /boot/modules/b b\n"));
        assert!(cfg.trim_end().ends_with("boot\n}"));
        assert!(grub_cfg("", &[]).contains("    multiboot2 /boot/rexo\n"));
    }

    #[test]
    fn module_names_must_be_unique() {
        let modules = [PathBuf::from("/x/a"), PathBuf::from("/y/a")];
        assert!(module_names(&modules).unwrap_err().contains("named a"));
        assert!(module_names(&[PathBuf::from("/")]).is_err());
        assert_eq!(
            module_names(&[PathBuf::from("/x/a"), PathBuf::from("b")]),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
    }

    #[test]
    fn hostile_command_lines_are_refused() {
        let out = std::env::temp_dir().join("never.iso");
        let err = build_iso(Path::new("/k"), "a\"b", &[], &out).unwrap_err();
        assert!(err.contains("not allowed"));
    }
}
