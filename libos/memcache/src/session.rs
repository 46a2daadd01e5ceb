//! One connection's request loop: parse what arrived, run it on the cache, answer.

use crate::cache::{DeltaOutcome, StoreOutcome};
use crate::parse::{Command, Parsed, StatsGroup, parse_resumed};
use crate::reply::{
    Output, Reply, ServerInfo, write_number, write_stats, write_value, write_version,
};
use crate::store::Store;

/// The state a connection keeps between reads: the part of a refused data block still
/// to skip, and how far the search for an unfinished line's end got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Session {
    swallow: u64,
    searched: usize,
}

/// What [`Session::serve`] did with the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Served {
    /// Bytes of the input used: drop them, keep the rest for the next call with the
    /// bytes that arrive after it.
    pub consumed: usize,
    /// Close the connection once the answers are sent (`quit`, a line too long).
    pub close: bool,
}

impl Session {
    /// A new connection's session.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves every whole request at the front of `input` (pipelined requests one after
    /// the other), writing the answers to `out`.
    pub fn serve(
        &mut self,
        cache: &mut impl Store,
        input: &[u8],
        now: u64,
        info: &ServerInfo,
        out: &mut impl Output,
    ) -> Served {
        let mut at = 0;
        loop {
            let skip = self.swallow.min((input.len() - at) as u64);
            self.swallow -= skip;
            at += skip as usize;
            if self.swallow > 0 {
                break;
            }
            let Parsed::Request {
                consumed,
                swallow,
                command,
            } = parse_resumed(&input[at..], cache.max_value(), &mut self.searched)
            else {
                break;
            };
            at += consumed;
            self.swallow = swallow;
            if execute(cache, command, now, info, out) == Flow::Close {
                return Served {
                    consumed: at,
                    close: true,
                };
            }
        }
        Served {
            consumed: at,
            close: false,
        }
    }
}

/// Whether the connection goes on after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// Runs one command and writes its answer.
fn execute(
    cache: &mut impl Store,
    command: Command<'_>,
    now: u64,
    info: &ServerInfo,
    out: &mut impl Output,
) -> Flow {
    let reply = match command {
        Command::Get { keys, with_cas } => {
            for key in keys {
                cache.get(key, None, now, &mut |found| {
                    write_value(out, key, found, with_cas)
                });
            }
            Some(Reply::End)
        }
        Command::GetAndTouch {
            exptime,
            keys,
            with_cas,
        } => {
            for key in keys {
                cache.get(key, Some(exptime), now, &mut |found| {
                    write_value(out, key, found, with_cas)
                });
            }
            Some(Reply::End)
        }
        Command::Store {
            mode,
            key,
            flags,
            exptime,
            value,
            noreply,
        } => {
            let outcome = cache.store(mode, key, flags, exptime, value, now);
            (!noreply).then_some(store_reply(outcome))
        }
        Command::TooLarge { mode, key, noreply } => {
            let outcome = cache.refuse_too_large(mode, key, now);
            (!noreply).then_some(store_reply(outcome))
        }
        Command::Delete { key, noreply } => {
            let deleted = cache.delete(key, now);
            (!noreply).then_some(if deleted {
                Reply::Deleted
            } else {
                Reply::NotFound
            })
        }
        Command::Delta {
            key,
            delta,
            decrement,
            noreply,
        } => match cache.add_delta(key, delta, decrement, now) {
            _ if noreply => None,
            DeltaOutcome::Value(number) => {
                write_number(out, number);
                None
            }
            DeltaOutcome::NotFound => Some(Reply::NotFound),
            DeltaOutcome::NonNumeric => Some(Reply::NonNumeric),
        },
        Command::Touch {
            key,
            exptime,
            noreply,
        } => {
            let touched = cache.touch(key, exptime, now);
            (!noreply).then_some(if touched {
                Reply::Touched
            } else {
                Reply::NotFound
            })
        }
        Command::FlushAll { delay, noreply } => {
            cache.flush_all(delay, now);
            (!noreply).then_some(Reply::Ok)
        }
        Command::Stats(StatsGroup::General) => {
            write_stats(out, &cache.stats(now), info);
            None
        }
        Command::Stats(StatsGroup::Reset) => {
            cache.reset_stats();
            Some(Reply::Reset)
        }
        Command::Stats(StatsGroup::Empty) => Some(Reply::End),
        Command::Version => {
            write_version(out);
            None
        }
        Command::Verbosity { noreply } => (!noreply).then_some(Reply::Ok),
        Command::Quit => return Flow::Close,
        Command::Invalid { error, noreply } => {
            if !noreply {
                out.put(error.reply());
            }
            return if error.closes() {
                Flow::Close
            } else {
                Flow::Continue
            };
        }
    };
    if let Some(reply) = reply {
        out.put(reply.bytes());
    }
    Flow::Continue
}

/// The answer to a storage command.
fn store_reply(outcome: StoreOutcome) -> Reply {
    match outcome {
        StoreOutcome::Stored => Reply::Stored,
        StoreOutcome::NotStored => Reply::NotStored,
        StoreOutcome::Exists => Reply::Exists,
        StoreOutcome::NotFound => Reply::NotFound,
        StoreOutcome::TooLarge => Reply::TooLarge,
        StoreOutcome::NoMemory => Reply::NoMemory,
    }
}
