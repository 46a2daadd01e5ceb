//! The kernel logger behind the `log` macros: each line carries the microseconds since
//! the kernel's first instruction and the number of the core that wrote it, e.g.
//! `[      812 us c0] INFO  acpi: 4 cores`.

use crate::kprint;
use log::{Level, LevelFilter, Log, Metadata, Record};

struct KernelLogger;

static LOGGER: KernelLogger = KernelLogger;

impl Log for KernelLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let core = crate::arch::percpu::core_index();
        if crate::time::tsc_hz() == 0 {
            // Before the TSC frequency is known there is no honest timestamp.
            kprint!("[{:>9} us c{core}] {level} {}\n", "?", record.args());
        } else {
            kprint!(
                "[{:>9} us c{core}] {level} {}\n",
                crate::time::micros_since_boot(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

/// Installs the logger at `Info`; the command line may change the level later.
pub fn init() {
    // A second call fails harmlessly; the kernel calls this once.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Info);
}

/// Sets the most verbose level that is printed.
pub fn set_level(level: rexo_cmdline::LogLevel) {
    use rexo_cmdline::LogLevel;
    log::set_max_level(match level {
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    });
}
