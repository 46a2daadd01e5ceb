//! The apps linked into Rexo's image, in the order `apps` lists them: the kernel runs
//! them by name (`app=NAME`, the boot manifest `apps=...`, the monitor's `run`). The
//! kernel adds its own few (reboot, the BareMetal loader, the C examples) after these.
//! Adding an app to the image is adding its crate to `Cargo.toml` and one entry here.
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
