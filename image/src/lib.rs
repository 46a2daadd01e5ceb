//! The apps linked into Rexo's image, in the order `apps` lists them: the kernel runs
//! them by name (`app=NAME`, the boot manifest `apps=...`, the monitor's `run`). The
//! kernel adds its own few (reboot, the BareMetal loader) after these, then the C apps
//! of [`c_apps!`]. Adding a Rust app to the image is adding its crate to this crate's
//! `Cargo.toml` and one entry in [`APPS`] (docs/api.md, "Writing an app"); adding a C
//! app is adding its file `api/c/examples/NAME.c` and one line in [`c_apps!`].
//! An entry's `may_run_baremetal` lets the app load and run BareMetal code, in ring 0
//! with the kernel's rights, and start an app that has it with `run_app`: the monitor
//! alone has it here (the kernel's own `baremetal` app has it too).
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

use rexo_api::AppEntry as App;

/// The image's apps.
pub const APPS: &[App] = &[
    App {
        name: "hello",
        about: "greets from every core through the work queue (apps/hello)",
        main: rexo_hello::main,
        may_run_baremetal: false,
    },
    App {
        name: "monitor",
        about: "an interactive command line on the consoles (apps/monitor)",
        main: rexo_monitor::main,
        may_run_baremetal: true,
    },
    App {
        name: "netcheck",
        about: "frames both ways, byte-exact, on every network interface (apps/devcheck)",
        main: rexo_devcheck::netcheck,
        may_run_baremetal: false,
    },
    App {
        name: "netqueues",
        about: "frames out on every transmit queue and the host's flows in on every receive queue, byte-exact (apps/devcheck)",
        main: rexo_devcheck::netqueues,
        may_run_baremetal: false,
    },
    App {
        name: "diskcheck",
        about: "patterns over every sector of every disk, read back (apps/devcheck)",
        main: rexo_devcheck::diskcheck,
        may_run_baremetal: false,
    },
    App {
        name: "netdemo",
        about: "DHCP, ping, and TCP and UDP echo on port 7 over the TCP/IP library OS (apps/netdemo)",
        main: rexo_netdemo::main,
        may_run_baremetal: false,
    },
    App {
        name: "httpd",
        about: "the web server: the site in the image over HTTP/1.1 on port 80, status page at / (apps/httpd)",
        main: rexo_httpd::main,
        may_run_baremetal: false,
    },
    App {
        name: "httpd-test",
        about: "httpd with a test hook: GET /__shutdown ends the app (apps/httpd)",
        main: rexo_httpd::main_test,
        may_run_baremetal: false,
    },
    App {
        name: "httpd-smoltcp",
        about: "httpd on smoltcp's TCP instead of Rexo's own (apps/httpd)",
        main: rexo_httpd::main_smoltcp,
        may_run_baremetal: false,
    },
    App {
        name: "httpd-test-smoltcp",
        about: "httpd-test on smoltcp's TCP instead of Rexo's own (apps/httpd)",
        main: rexo_httpd::main_test_smoltcp,
        may_run_baremetal: false,
    },
    App {
        name: "kv",
        about: "a memcached-compatible cache on TCP and UDP port 11211, until a client sends `shutdown` (apps/kv)",
        main: rexo_kv::main,
        may_run_baremetal: false,
    },
    App {
        name: "kv-small",
        about: "kv with a 1 MiB cache, for eviction tests (apps/kv)",
        main: rexo_kv::main_small,
        may_run_baremetal: false,
    },
    App {
        name: "netbench",
        about: "driver benchmark: frames/s both ways, empty-poll cost, on every NIC (apps/devcheck)",
        main: rexo_devcheck::netbench,
        may_run_baremetal: false,
    },
    App {
        name: "diskbench",
        about: "driver benchmark: sequential MiB/s, 4 KiB random-read IOPS at depth 1 and 32 (apps/devcheck)",
        main: rexo_devcheck::diskbench,
        may_run_baremetal: false,
    },
    App {
        name: "noise",
        about: "OS noise: fixed work quanta on every core, their spread and worst interruption (apps/devcheck)",
        main: rexo_devcheck::noise,
        may_run_baremetal: false,
    },
    App {
        name: "fsbench",
        about: "file-system benchmark: 10,000 small files created, read, deleted; random reads of a 1 GiB file and of the raw disk (apps/fsbench)",
        main: rexo_fsbench::main,
        may_run_baremetal: false,
    },
    App {
        name: "memdemo",
        about: "the memory and time library OS: a heap over the app's frames, bad input, its quota, revocation answered; run with a quota, apps=memdemo:0:8M (apps/memdemo)",
        main: rexo_memdemo::main,
        may_run_baremetal: false,
    },
    App {
        name: "memdemo-revocable",
        about: "memdemo holding its arenas up to 60 s until the kernel asks for one back (the kernel test caps::tests::memlibos; apps/memdemo)",
        main: rexo_memdemo::main_revocable,
        may_run_baremetal: false,
    },
];

/// The C apps linked into the image: `api/c/examples/NAME.c` (`build.rs` compiles every
/// C file there), each defining `int NAME_main(void)` (`-` in NAME written `_`), as
/// lines `"NAME", NAME_main, "what it does";` handed to the macro `$entries`. The
/// kernel's `c_app_entries` declares each function and makes it an app-table entry: the
/// call into C is `unsafe`, which this crate forbids and the kernel alone may write.
#[macro_export]
macro_rules! c_apps {
    ($entries:ident) => {
        $entries! {
            "c-hello", c_hello_main, "the C hello world on rexo.h (api/c/examples/c-hello.c)";
            "c-cores", c_cores_main,
                "a C app on every core, with a memory capability (api/c/examples/c-cores.c)";
            "c-devices", c_devices_main, "devices and memory views from C (api/c/examples/c-devices.c)";
            "c-timers", c_timers_main,
                "core and timer capabilities from C, with bad handles and deadlines (api/c/examples/c-timers.c)";
        }
    };
}

#[cfg(test)]
#[path = "../capps.rs"]
mod capps;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::capps;

    /// The C apps' lines of [`c_apps!`], as (name, function, description).
    macro_rules! listed {
        ($($name:literal, $main:ident, $about:literal;)*) => {
            [$(($name, stringify!($main), $about)),*]
        };
    }

    /// Every C file `build.rs` compiles is listed once, under its own name and function,
    /// and every listed app has its file: a file left out would be compiled and never
    /// run, a name without its file a link error naming only the function.
    #[test]
    fn the_c_apps_listed_are_the_files_compiled() {
        let apps = c_apps!(listed);
        let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/c/examples");
        let mut files: Vec<String> = std::fs::read_dir(examples)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "c"))
            .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut names: Vec<&str> = apps.iter().map(|(name, _, _)| *name).collect();
        names.sort();
        assert_eq!(names, files);
        for (name, main, about) in apps {
            assert_eq!(main, format!("{}_main", name.replace('-', "_")));
            assert!(
                about.contains(&format!("api/c/examples/{name}.c")),
                "{about}"
            );
        }
    }

    /// A C app is linked into the kernel, whose `memset`, `memcpy`, `memmove` and `memcmp`
    /// are weak: an app's own `memset` took the kernel's place (10 calls of it during boot,
    /// before the app ran). build.rs refuses an object defining any global but its
    /// `NAME_main`, and takes one whose helpers are `static`, as every example's are.
    #[test]
    fn a_c_app_defining_a_global_symbol_but_its_main_is_refused() {
        let dir = std::env::temp_dir().join(format!("rexo-image-capps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let include = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../api/c"));
        let app = |name: &str, text: &str| {
            let source = dir.join(format!("{name}.c"));
            std::fs::write(&source, text).unwrap();
            let object = capps::compile(&source, include, &dir).unwrap();
            capps::check_exports(&source, &object)
        };
        let own_memset = "#include <stddef.h>\n\
            void *memset(void *to, int byte, size_t n);\n\
            void *memset(void *to, int byte, size_t n)\n\
            { unsigned char *p = to; while (n--) *p++ = (unsigned char)byte; return to; }\n\
            int counter;\n\
            int c_own_memset_main(void);\n\
            int c_own_memset_main(void) { return counter; }\n";
        let refused = app("c-own-memset", own_memset).unwrap_err();
        assert!(
            refused.contains("the global symbol(s) `counter`, `memset`"),
            "{refused}"
        );
        assert!(
            refused.contains("make everything but c_own_memset_main `static`"),
            "{refused}"
        );
        let helpers = "static int counter;\n\
            static int helper(void) { return counter; }\n\
            int c_static_main(void);\n\
            int c_static_main(void) { return helper(); }\n";
        assert_eq!(app("c-static", helpers), Ok(()));
        for (name, _, _) in c_apps!(listed) {
            let source = include.join(format!("examples/{name}.c"));
            let object = capps::compile(&source, include, &dir).unwrap();
            assert_eq!(capps::check_exports(&source, &object), Ok(()), "{name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// An app may take from the examples' check.h only what it needs: its helpers are
    /// `static inline`, as a plain `static` function left unused is an error under
    /// `-Wall -Werror`.
    #[test]
    fn an_app_may_use_a_few_of_the_examples_helpers() {
        let dir = std::env::temp_dir().join(format!("rexo-image-helpers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let include = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../api/c"));
        let source = dir.join("c-one-helper.c");
        let text = "#define APP \"c-one-helper\"\n\
            #include \"examples/check.h\"\n\
            int c_one_helper_main(void);\n\
            int c_one_helper_main(void) { say(\"hello\\n\"); return 0; }\n";
        std::fs::write(&source, text).unwrap();
        let object = capps::compile(&source, include, &dir).unwrap();
        assert_eq!(capps::check_exports(&source, &object), Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
