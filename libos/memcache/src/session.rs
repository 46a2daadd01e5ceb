//! One connection's request loop: parse what arrived, run it on the cache, answer.

use crate::cache::{DeltaOutcome, StoreOutcome};
use crate::meta;
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

/// What [`Session::next`] found at the front of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Next<'a> {
    /// Bytes at the front skipped as the rest of a refused data block: drop them.
    pub skipped: usize,
    /// What the bytes after those hold: a request (whose `swallow` the session keeps,
    /// to skip it in the calls that follow), or none yet.
    pub parsed: Parsed<'a>,
}

impl Session {
    /// A new connection's session.
    pub fn new() -> Self {
        Self::default()
    }

    /// Skips what is left of a refused data block at the front of `input`, then finds
    /// the request after it (resuming an unfinished line's search where the last call
    /// left it: call again with the same front and the bytes appended since). Its
    /// answer comes from [`run`](Self::run).
    pub fn next<'a>(&mut self, input: &'a [u8], max_value: usize) -> Next<'a> {
        let skipped = self.swallow.min(input.len() as u64);
        self.swallow -= skipped;
        let skipped = skipped as usize;
        if self.swallow > 0 {
            return Next {
                skipped,
                parsed: Parsed::NeedMore,
            };
        }
        let parsed = parse_resumed(&input[skipped..], max_value, &mut self.searched);
        if let Parsed::Request { swallow, .. } = parsed {
            self.swallow = swallow;
        }
        Next { skipped, parsed }
    }

    /// Whether the rest of a refused data block is still to come (and be skipped): the
    /// client is mid-request though kv holds none of its bytes.
    pub fn is_skipping(&self) -> bool {
        self.swallow > 0
    }

    /// Bytes at the front of the input (after those skipped) known to hold no `\n`:
    /// the next request's line is unfinished, and they are not searched again.
    pub fn searched(&self) -> usize {
        self.searched
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
            let next = self.next(&input[at..], cache.max_value());
            at += next.skipped;
            let Parsed::Request {
                consumed, command, ..
            } = next.parsed
            else {
                break;
            };
            at += consumed;
            if Self::run(cache, command, now, info, out) {
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

    /// Runs one command (as [`next`](Self::next) found it) and writes its answer; true
    /// if the connection closes once the answers are sent (`quit`, a line too long).
    pub fn run(
        cache: &mut impl Store,
        command: Command<'_>,
        now: u64,
        info: &ServerInfo,
        out: &mut impl Output,
    ) -> bool {
        let reply = match command {
            Command::Get { keys, with_cas } => {
                for key in keys {
                    if !answer_may_end(out) {
                        break;
                    }
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
                    if !answer_may_end(out) {
                        break;
                    }
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
            Command::BadDataChunk {
                mode,
                key,
                value_len,
                noreply,
            } => {
                let outcome = cache.refuse_bad_chunk(mode, key, value_len, now);
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
            Command::Quit => return true,
            Command::Meta(command) => {
                meta::run(cache, command, now, out);
                None
            }
            Command::MetaNoOp => {
                out.put(b"MN\r\n");
                None
            }
            Command::Invalid { error, noreply } => {
                if !noreply {
                    out.put(error.reply());
                }
                return error.closes();
            }
        };
        if let Some(reply) = reply {
            out.put(reply.bytes());
        }
        false
    }
}

/// Whether a read's answer may still end in `out`: once its room cannot take `END`
/// (an output that dropped a piece has none), the answer is dropped whatever follows,
/// so the read looks up no more keys, as memcached's looks up none after its
/// out-of-memory error (`process_get_command`). The keys looked up before, their answers
/// dropped too, keep what the lookup did (a `gat`'s new expiry, the LRU bump, the
/// counters), as in memcached, whose touch and counts come with the lookup.
fn answer_may_end(out: &impl Output) -> bool {
    out.room() >= Reply::End.bytes().len()
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
        StoreOutcome::BadDataChunk => Reply::BadDataChunk,
    }
}
