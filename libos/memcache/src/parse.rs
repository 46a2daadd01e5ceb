//! The memcached text protocol parser: one request at a time from the front of a byte
//! buffer that may hold part of a request or several pipelined ones. Keys and data are
//! borrowed from the buffer.
//!
//! The answers follow memcached 1.6's `proto_text.c`: an unknown command or a wrong
//! number of tokens is `ERROR`; a bad number or key is `CLIENT_ERROR bad command line
//! format`; a data block not ended by `\r\n` is `CLIENT_ERROR bad data chunk`. A
//! number is read as memcached reads it, with C's `strtoul`/`strtol` ([`c_unsigned`]:
//! a `+` sign, `-0`, a tab around the digits are fine; other bytes after them are not). An
//! exptime must fit in 32 bits, as memcached parses it: one outside is a bad number
//! (`CLIENT_ERROR invalid exptime argument` for `touch`, `gat`, `gats` and `flush_all`), never
//! taken as a later time. A `CLIENT_ERROR` for a line ending in `noreply` is not sent,
//! for every command that takes `noreply`. Two deliberate differences keep the stream
//! in sync where memcached would lose it: a storage command refused for its key, flags
//! or exptime still skips its data block, and a line is judged by its length alone (not by how it was split into reads).
//! memcached 1.6's meta commands (`mg`, `ms`, `md`, `ma`, `mn`, `me`) are parsed by
//! [`crate::meta`], which says what they do and answer.
//! The engine speaks no binary protocol: a request whose first byte is
//! [`BINARY_REQUEST_MAGIC`] (memcached's binary protocol, which memcached picks by a
//! connection's first byte) is refused unanswered, at once, and the connection closed,
//! rather than waited on as an unfinished line.

use crate::cache::{Key, StoreMode};
use crate::meta::{self, Meta};

/// The longest command line (without its `\n`) outside of multi-key reads; a longer one
/// is refused and the connection closed, as memcached does after 2048 bytes.
pub const MAX_LINE: usize = 2048;
/// The least a `get`/`gets`/`gat`/`gats` line may be: many keys are legitimate there (a
/// client's `get_many` sends them all on one line, and memcached sets no bound), so a
/// read line may fill the receive buffer, [`max_request_len`] less its `\n`, and that
/// is never below this, whatever the item size limit.
pub const MIN_MULTIGET_LINE: usize = 64 * 1024;
/// The first byte of every request of memcached's binary protocol (no text command
/// starts with it).
pub const BINARY_REQUEST_MAGIC: u8 = 0x80;
/// The largest byte count a storage command may name (memcached's `INT_MAX - 2`);
/// above it the line is malformed rather than the value too large.
const MAX_BYTE_COUNT: u64 = i32::MAX as u64 - 2;

/// The most bytes a connection ever holds unanswered with item size limit `max_value`:
/// a storage command's line (with its `\n`) and data block (with its `\r\n`), or a long
/// read's line (with its `\n`, as long as the longest storage request and at least
/// [`MIN_MULTIGET_LINE`]). A receive buffer of this size never stalls; [`parse`]
/// refuses or answers anything longer. A data block is at most the largest byte count
/// a line may name, whatever `max_value` allows.
pub fn max_request_len(max_value: usize) -> usize {
    let block = max_value.min(MAX_BYTE_COUNT as usize);
    (MIN_MULTIGET_LINE + 1).max(MAX_LINE + 1 + block + 2)
}

/// The result of looking at the front of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// The input holds no whole request yet: call again when more bytes are appended.
    NeedMore,
    /// One request, made of the first `consumed` bytes of the input; the `swallow` bytes
    /// that follow them (possibly not received yet) are the data block of a refused
    /// storage command and must be skipped.
    Request {
        /// Bytes of the input the request used.
        consumed: usize,
        /// Bytes after those to skip.
        swallow: u64,
        /// The request.
        command: Command<'a>,
    },
}

/// One request of the text protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `get`/`gets` (`with_cas`) of one or more keys.
    Get {
        /// The keys, in order.
        keys: Keys<'a>,
        /// `gets`: the answer carries cas uniques.
        with_cas: bool,
    },
    /// `gat`/`gats` (`with_cas`): get and touch.
    GetAndTouch {
        /// The new exptime.
        exptime: i64,
        /// The keys, in order.
        keys: Keys<'a>,
        /// `gats`: the answer carries cas uniques.
        with_cas: bool,
    },
    /// `set`, `add`, `replace`, `append`, `prepend`, `cas` with its data block.
    Store {
        /// Which command.
        mode: StoreMode,
        /// The key.
        key: Key<'a>,
        /// The client's flags.
        flags: u32,
        /// The exptime as sent.
        exptime: i64,
        /// The data block, without its `\r\n`.
        value: &'a [u8],
        /// No answer wanted.
        noreply: bool,
    },
    /// A storage command whose value is above the item size limit; its data block is the
    /// request's `swallow`.
    TooLarge {
        /// Which command.
        mode: StoreMode,
        /// The key.
        key: Key<'a>,
        /// No answer wanted.
        noreply: bool,
    },
    /// A storage command whose data block (the line's byte count and two more, all
    /// used) does not end with `\r\n`: refused as `CLIENT_ERROR bad data chunk`, once
    /// its item is made and counted, as memcached refuses it.
    BadDataChunk {
        /// Which command.
        mode: StoreMode,
        /// The key.
        key: Key<'a>,
        /// The byte count.
        value_len: usize,
        /// No answer wanted.
        noreply: bool,
    },
    /// `delete`.
    Delete {
        /// The key.
        key: Key<'a>,
        /// No answer wanted.
        noreply: bool,
    },
    /// `incr` or `decr` (`decrement`).
    Delta {
        /// The key.
        key: Key<'a>,
        /// The amount.
        delta: u64,
        /// `decr`.
        decrement: bool,
        /// No answer wanted.
        noreply: bool,
    },
    /// `touch`.
    Touch {
        /// The key.
        key: Key<'a>,
        /// The new exptime.
        exptime: i64,
        /// No answer wanted.
        noreply: bool,
    },
    /// `flush_all [delay]`.
    FlushAll {
        /// 0 for now, else an exptime.
        delay: i64,
        /// No answer wanted.
        noreply: bool,
    },
    /// `stats` and its groups.
    Stats(StatsGroup),
    /// `version`.
    Version,
    /// `verbosity` with a numeric level (accepted, changes nothing: the engine does not
    /// log requests).
    Verbosity {
        /// No answer wanted.
        noreply: bool,
    },
    /// `quit`: close the connection.
    Quit,
    /// A meta command: `mg`, `ms`, `md`, `ma` or `me`.
    Meta(Meta<'a>),
    /// `mn`, the meta no-op: answered `MN`.
    MetaNoOp,
    /// A request refused with `error`.
    Invalid {
        /// The answer.
        error: ProtocolError,
        /// The line ended with `noreply`: memcached then answers nothing, even errors,
        /// so that a client that does not read answers stays in step.
        noreply: bool,
    },
}

/// What a `stats` request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsGroup {
    /// `stats`: the general counters.
    General,
    /// `stats reset`: zero the counters (answer `RESET`).
    Reset,
    /// `stats items`, `slabs`, `sizes` or `conns`: groups of per-slab-class or
    /// per-connection lines that this engine has none of; the answer is an empty list.
    Empty,
}

/// A protocol error and its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// Unknown command or wrong number of tokens: `ERROR`.
    UnknownCommand,
    /// A bad key or number: `CLIENT_ERROR bad command line format`.
    BadFormat,
    /// `delete` with extra tokens other than memcached's legacy `0`.
    DeleteUsage,
    /// `incr`/`decr` amount not a 64-bit number.
    BadDelta,
    /// `touch`/`gat`/`flush_all` exptime not a number.
    BadExptime,
    /// A meta command's flag that is none of memcached's, or a flag without a token
    /// followed by other bytes: `CLIENT_ERROR invalid flag`.
    MetaInvalidFlag,
    /// A meta command's flag given twice.
    MetaDuplicateFlag,
    /// Any flag error of `md` and `ma` but the opaque's and the mode's, as memcached
    /// answers them.
    MetaInvalidOrDuplicateFlag,
    /// A meta flag's token (`N`, `T`, `R`, `C`) that is not a number.
    MetaBadToken,
    /// `J` not a 64-bit number.
    MetaBadInitial,
    /// `D` not a 64-bit number.
    MetaBadDelta,
    /// A `b` key that is no base64.
    MetaKeyDecoding,
    /// An opaque token (`O`) over 32 bytes.
    MetaOpaqueTooLong,
    /// An `M` token that is not one character.
    MetaModeLength,
    /// `ms`'s `M` none of `E`, `A`, `P`, `R`, `S`.
    MetaSetMode,
    /// `ma`'s `M` none of `I`, `+`, `D`, `-`.
    MetaArithmeticMode,
    /// An `mg` line of more than 19 tokens.
    MetaGetFlagsTooLong,
    /// An `ms`, `md` or `ma` line of more than 19 tokens.
    MetaFlagsTooLong,
    /// A line above the bound: answered, then the connection is closed.
    LineTooLong,
    /// A binary protocol request ([`BINARY_REQUEST_MAGIC`]): the connection is closed
    /// without an answer, which a binary client could not read as text anyway.
    BinaryProtocol,
}

impl ProtocolError {
    /// The answer, with its `\r\n`.
    pub fn reply(self) -> &'static [u8] {
        match self {
            Self::UnknownCommand => b"ERROR\r\n",
            Self::BadFormat => b"CLIENT_ERROR bad command line format\r\n",
            Self::DeleteUsage => {
                b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
            }
            Self::BadDelta => b"CLIENT_ERROR invalid numeric delta argument\r\n",
            Self::BadExptime => b"CLIENT_ERROR invalid exptime argument\r\n",
            Self::MetaInvalidFlag => b"CLIENT_ERROR invalid flag\r\n",
            Self::MetaDuplicateFlag => b"CLIENT_ERROR duplicate flag\r\n",
            Self::MetaInvalidOrDuplicateFlag => b"CLIENT_ERROR invalid or duplicate flag\r\n",
            Self::MetaBadToken => b"CLIENT_ERROR bad token in command line format\r\n",
            Self::MetaBadInitial => b"CLIENT_ERROR invalid numeric initial value\r\n",
            Self::MetaBadDelta => b"CLIENT_ERROR invalid numeric delta value\r\n",
            Self::MetaKeyDecoding => b"CLIENT_ERROR error decoding key\r\n",
            Self::MetaOpaqueTooLong => b"CLIENT_ERROR opaque token too long\r\n",
            Self::MetaModeLength => b"CLIENT_ERROR incorrect length for M token\r\n",
            Self::MetaSetMode => b"CLIENT_ERROR invalid mode for ms M token\r\n",
            Self::MetaArithmeticMode => b"CLIENT_ERROR invalid mode for ma M token\r\n",
            Self::MetaGetFlagsTooLong => b"CLIENT_ERROR options flags are too long\r\n",
            Self::MetaFlagsTooLong => b"CLIENT_ERROR options flags too long\r\n",
            Self::LineTooLong => b"CLIENT_ERROR line too long\r\n",
            Self::BinaryProtocol => b"",
        }
    }

    /// The connection must be closed after the answer: the stream cannot be resynced.
    pub fn closes(self) -> bool {
        matches!(self, Self::LineTooLong | Self::BinaryProtocol)
    }
}

/// The keys of a multi-key read: the validated rest of its line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys<'a>(&'a [u8]);

impl<'a> Iterator for Keys<'a> {
    type Item = Key<'a>;

    fn next(&mut self) -> Option<Key<'a>> {
        let (token, rest) = next_token(self.0)?;
        self.0 = rest;
        // Every token was checked when the line was parsed.
        Key::new(token)
    }
}

/// Parses the request at the front of `input`; `max_value` is the item size limit.
pub fn parse(input: &[u8], max_value: usize) -> Parsed<'_> {
    parse_resumed(input, max_value, &mut 0)
}

/// [`parse`] for a request that may arrive in many reads: the first `searched` bytes of
/// `input` are known to hold no `\n` and are not searched again, so a long line costs
/// its length once however it is split. Start a request with 0; after
/// [`Parsed::NeedMore`] `searched` says how far the search got, for the next call with
/// the same front and the bytes appended since; after a request it is 0 again.
pub fn parse_resumed<'a>(input: &'a [u8], max_value: usize, searched: &mut usize) -> Parsed<'a> {
    let from = core::mem::take(searched);
    if input.first() == Some(&BINARY_REQUEST_MAGIC) {
        return invalid(input.len(), ProtocolError::BinaryProtocol, false);
    }
    // Only reads may be longer than MAX_LINE; a line already searched past it is one
    // (it would have been refused otherwise, and its front has not changed).
    let limit = if from > MAX_LINE || (input.len() > MAX_LINE && is_multiget(input)) {
        max_request_len(max_value) - 1
    } else {
        MAX_LINE
    };
    let window = &input[..input.len().min(limit + 1)];
    let from = from.min(window.len());
    let found = window[from..].iter().position(|&byte| byte == b'\n');
    #[cfg(test)]
    crate::tests::count_searched(found.map_or(window.len() - from, |at| at + 1));
    let Some(newline) = found.map(|at| from + at) else {
        if input.len() > limit {
            return invalid(input.len(), ProtocolError::LineTooLong, false);
        }
        *searched = window.len();
        return Parsed::NeedMore;
    };
    let parsed = request(input, newline, max_value);
    if parsed == Parsed::NeedMore {
        // A storage command waiting for its data block: its line is found.
        *searched = newline;
    }
    parsed
}

/// The request whose line ends with the `\n` at `newline`.
fn request(input: &[u8], newline: usize, max_value: usize) -> Parsed<'_> {
    let line_end = newline + 1;
    let line = input[..newline]
        .strip_suffix(b"\r")
        .unwrap_or(&input[..newline]);
    let Some((name, arguments)) = next_token(line) else {
        return invalid(line_end, ProtocolError::UnknownCommand, false);
    };
    let parsed = match name {
        b"get" => get(arguments, false),
        b"gets" => get(arguments, true),
        b"gat" => get_and_touch(arguments, false),
        b"gats" => get_and_touch(arguments, true),
        b"set" => return store(input, line_end, StoreMode::Set, arguments, max_value),
        b"add" => return store(input, line_end, StoreMode::Add, arguments, max_value),
        b"replace" => return store(input, line_end, StoreMode::Replace, arguments, max_value),
        b"append" => return store(input, line_end, StoreMode::Append, arguments, max_value),
        b"prepend" => return store(input, line_end, StoreMode::Prepend, arguments, max_value),
        b"cas" => return store(input, line_end, StoreMode::Cas(0), arguments, max_value),
        b"delete" => delete(arguments),
        b"incr" => delta(arguments, false),
        b"decr" => delta(arguments, true),
        b"touch" => touch(arguments),
        b"flush_all" => flush_all(arguments),
        b"stats" => stats(arguments),
        // memcached 1.6 looks only at the command's name for these two (memcapable's
        // `version foo bar` checks that).
        b"version" => Ok(Command::Version),
        b"quit" => Ok(Command::Quit),
        b"verbosity" => verbosity(arguments),
        b"mg" | b"ms" | b"md" | b"ma" | b"mn" | b"me" => {
            return meta::parse(name, arguments, input, line_end, max_value);
        }
        _ => Err(ProtocolError::UnknownCommand.into()),
    };
    let command =
        parsed.unwrap_or_else(|Refusal { error, noreply }| Command::Invalid { error, noreply });
    Parsed::Request {
        consumed: line_end,
        swallow: 0,
        command,
    }
}

/// Whether the line is a read, which may be long: `get`, `gets`, `gat`, `gats`.
fn is_multiget(input: &[u8]) -> bool {
    let start = input
        .iter()
        .position(|&byte| byte != b' ')
        .unwrap_or(input.len());
    let input = &input[start..];
    [&b"get "[..], b"gets ", b"gat ", b"gats "]
        .iter()
        .any(|prefix| input.starts_with(prefix))
}

/// Why a command line is refused, and whether the refusal goes unanswered. As memcached
/// does, a command that takes `noreply` reads it from the line's last token before
/// judging the rest, so its errors are silent too; a wrong number of tokens is found
/// before, and always answered, as is every error of a command without `noreply`.
struct Refusal {
    /// The answer.
    error: ProtocolError,
    /// The line ended with `noreply`.
    noreply: bool,
}

impl From<ProtocolError> for Refusal {
    /// An answered refusal.
    fn from(error: ProtocolError) -> Self {
        Self {
            error,
            noreply: false,
        }
    }
}

/// A refused request of `consumed` bytes.
pub(crate) fn invalid(consumed: usize, error: ProtocolError, noreply: bool) -> Parsed<'static> {
    Parsed::Request {
        consumed,
        swallow: 0,
        command: Command::Invalid { error, noreply },
    }
}

/// The first space-separated token and what follows it (memcached splits on spaces only
/// and skips empty tokens).
pub(crate) fn next_token(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let start = text.iter().position(|&byte| byte != b' ')?;
    let text = &text[start..];
    let end = text
        .iter()
        .position(|&byte| byte == b' ')
        .unwrap_or(text.len());
    Some((&text[..end], &text[end..]))
}

/// Whether the last token of `text` is `noreply`.
fn ends_with_noreply(text: &[u8]) -> bool {
    text.rsplit(|&byte| byte == b' ')
        .find(|token| !token.is_empty())
        .is_some_and(|token| token == b"noreply")
}

/// Up to `N` tokens of `text`, and how many there are in all (which may be more).
fn tokens<const N: usize>(mut text: &[u8]) -> ([&[u8]; N], usize) {
    let mut found: [&[u8]; N] = [&[]; N];
    let mut count = 0;
    while let Some((token, rest)) = next_token(text) {
        if count < N {
            found[count] = token;
        }
        count += 1;
        text = rest;
    }
    (found, count)
}

/// `get`/`gets` KEY...
fn get(arguments: &[u8], with_cas: bool) -> Result<Command<'_>, Refusal> {
    let keys = keys(arguments)?;
    Ok(Command::Get { keys, with_cas })
}

/// `gat`/`gats` EXPTIME [KEY...]: the exptime is judged first, and one without keys is
/// answered `END` alone, as memcached's `process_get_command` does.
fn get_and_touch(arguments: &[u8], with_cas: bool) -> Result<Command<'_>, Refusal> {
    let (exptime, rest) = next_token(arguments).ok_or(ProtocolError::UnknownCommand)?;
    let exptime = parse_exptime(exptime).ok_or(ProtocolError::BadExptime)?;
    let keys = match next_token(rest) {
        Some(_) => keys(rest)?,
        None => Keys(rest),
    };
    Ok(Command::GetAndTouch {
        exptime,
        keys,
        with_cas,
    })
}

/// One or more valid keys.
fn keys(text: &[u8]) -> Result<Keys<'_>, ProtocolError> {
    let mut count = 0;
    let mut rest = text;
    while let Some((token, after)) = next_token(rest) {
        Key::new(token).ok_or(ProtocolError::BadFormat)?;
        count += 1;
        rest = after;
    }
    if count == 0 {
        return Err(ProtocolError::UnknownCommand);
    }
    Ok(Keys(text))
}

/// The length of the data block that the byte count `bytes` of a storage or meta set
/// line announces, its `\r\n` included; `None` for a count that is not a number up to
/// [`MAX_BYTE_COUNT`] (the line is `BadFormat`).
pub(crate) fn data_block(bytes: &[u8]) -> Option<u64> {
    c_unsigned(bytes)
        .filter(|&bytes| bytes <= MAX_BYTE_COUNT)
        .map(|bytes| bytes + 2)
}

/// A storage command: its line and data block.
fn store<'a>(
    input: &'a [u8],
    line_end: usize,
    mode: StoreMode,
    arguments: &'a [u8],
    max_value: usize,
) -> Parsed<'a> {
    let required = if mode == StoreMode::Cas(0) { 5 } else { 4 };
    let ([key, flags, exptime, bytes, unique], count) = tokens::<5>(arguments);
    if count != required && count != required + 1 {
        return invalid(line_end, ProtocolError::UnknownCommand, false);
    }
    // memcached reads `noreply` from the last token before anything else, so one in the
    // byte count's or the cas unique's place silences the refusal of that token.
    let noreply = ends_with_noreply(arguments);
    let Some(block) = data_block(bytes) else {
        return invalid(line_end, ProtocolError::BadFormat, noreply);
    };
    let refuse = |command| Parsed::Request {
        consumed: line_end,
        swallow: block,
        command,
    };
    let line = (
        Key::new(key),
        c_unsigned(flags).and_then(|flags| u32::try_from(flags).ok()),
        parse_exptime(exptime),
    );
    let (Some(key), Some(flags), Some(exptime)) = line else {
        return refuse(Command::Invalid {
            error: ProtocolError::BadFormat,
            noreply,
        });
    };
    let mode = match mode {
        StoreMode::Cas(_) => match c_unsigned(unique) {
            Some(unique) => StoreMode::Cas(unique),
            None => {
                return refuse(Command::Invalid {
                    error: ProtocolError::BadFormat,
                    noreply,
                });
            }
        },
        mode => mode,
    };
    if block - 2 > max_value as u64 {
        return refuse(Command::TooLarge { mode, key, noreply });
    }
    // At most `MAX_BYTE_COUNT` + 2: fits in `usize` on 64-bit targets.
    let block_end = line_end + block as usize;
    if input.len() < block_end {
        return Parsed::NeedMore;
    }
    let value = &input[line_end..block_end - 2];
    let command = if &input[block_end - 2..block_end] != b"\r\n" {
        Command::BadDataChunk {
            mode,
            key,
            value_len: value.len(),
            noreply,
        }
    } else {
        Command::Store {
            mode,
            key,
            flags,
            exptime,
            value,
            noreply,
        }
    };
    Parsed::Request {
        consumed: block_end,
        swallow: 0,
        command,
    }
}

/// `delete KEY [0] [noreply]` (the `0` is memcached's legacy hold time).
fn delete(arguments: &[u8]) -> Result<Command<'_>, Refusal> {
    let ([key, second, third], count) = tokens::<3>(arguments);
    if !(1..=3).contains(&count) {
        return Err(ProtocolError::UnknownCommand.into());
    }
    // A lone key is never `noreply`, even one named so.
    let noreply = count > 1 && ends_with_noreply(arguments);
    let refuse = |error| Refusal { error, noreply };
    match (count, second, third) {
        (1, ..) | (2, b"0" | b"noreply", _) | (3, b"0", b"noreply") => {}
        _ => return Err(refuse(ProtocolError::DeleteUsage)),
    }
    let key = Key::new(key).ok_or(refuse(ProtocolError::BadFormat))?;
    Ok(Command::Delete { key, noreply })
}

/// `incr`/`decr KEY DELTA [noreply]`.
fn delta(arguments: &[u8], decrement: bool) -> Result<Command<'_>, Refusal> {
    let ([key, delta], count) = tokens::<2>(arguments);
    if !(2..=3).contains(&count) {
        return Err(ProtocolError::UnknownCommand.into());
    }
    let noreply = ends_with_noreply(arguments);
    let refuse = |error| Refusal { error, noreply };
    let key = Key::new(key).ok_or(refuse(ProtocolError::BadFormat))?;
    let delta = c_unsigned(delta).ok_or(refuse(ProtocolError::BadDelta))?;
    Ok(Command::Delta {
        key,
        delta,
        decrement,
        noreply,
    })
}

/// `touch KEY EXPTIME [noreply]`.
fn touch(arguments: &[u8]) -> Result<Command<'_>, Refusal> {
    let ([key, exptime], count) = tokens::<2>(arguments);
    if !(2..=3).contains(&count) {
        return Err(ProtocolError::UnknownCommand.into());
    }
    let noreply = ends_with_noreply(arguments);
    let refuse = |error| Refusal { error, noreply };
    let key = Key::new(key).ok_or(refuse(ProtocolError::BadFormat))?;
    let exptime = parse_exptime(exptime).ok_or(refuse(ProtocolError::BadExptime))?;
    Ok(Command::Touch {
        key,
        exptime,
        noreply,
    })
}

/// `flush_all [DELAY] [noreply]`.
fn flush_all(arguments: &[u8]) -> Result<Command<'_>, Refusal> {
    let ([first], count) = tokens::<1>(arguments);
    if count > 2 {
        return Err(ProtocolError::UnknownCommand.into());
    }
    let noreply = ends_with_noreply(arguments);
    let delay = match (count, noreply) {
        (0, _) | (1, true) => 0,
        _ => parse_exptime(first).ok_or(Refusal {
            error: ProtocolError::BadExptime,
            noreply,
        })?,
    };
    Ok(Command::FlushAll { delay, noreply })
}

/// `stats [GROUP]`.
fn stats(arguments: &[u8]) -> Result<Command<'_>, Refusal> {
    let ([group], count) = tokens::<1>(arguments);
    let group = match (count, group) {
        (0, _) => StatsGroup::General,
        (1, b"reset") => StatsGroup::Reset,
        (1, b"items" | b"slabs" | b"sizes" | b"conns") => StatsGroup::Empty,
        _ => return Err(ProtocolError::UnknownCommand.into()),
    };
    Ok(Command::Stats(group))
}

/// `verbosity LEVEL [noreply]`.
fn verbosity(arguments: &[u8]) -> Result<Command<'_>, Refusal> {
    let ([level], count) = tokens::<1>(arguments);
    if !(1..=2).contains(&count) {
        return Err(ProtocolError::UnknownCommand.into());
    }
    // memcached takes `noreply` from the last token, so `verbosity noreply` is silent
    // (memcapable checks it): its level is refused, and the refusal not sent.
    let noreply = ends_with_noreply(arguments);
    c_unsigned(level).ok_or(Refusal {
        error: ProtocolError::BadFormat,
        noreply,
    })?;
    Ok(Command::Verbosity { noreply })
}

/// A number as memcached reads a token (and `incr`/`decr` a value) with C's `strtoull` in
/// its `safe_strtoull`, on the text as a C string (so up to its first NUL): leading
/// whitespace skipped, an optional sign, decimal digits fitting in 64 bits, then the
/// end or whitespace (after which anything may follow, as in `5 abc`). A `-` negates
/// modulo 2^64; a number with the top bit set is refused when the text holds a `-`
/// (`-0` is 0, `-5` is not a number).
pub(crate) fn c_unsigned(text: &[u8]) -> Option<u64> {
    let text = up_to_nul(text);
    let (negative, magnitude) = c_number(text)?;
    let number = if negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    };
    (number >> 63 == 0 || !text.contains(&b'-')).then_some(number)
}

/// An exptime: a number as C's `strtol` reads it (as [`c_unsigned`], a `-` now a
/// sign) that fits in 32 bits, as memcached parses it (`safe_strtol` into an
/// `int32_t`); one outside is refused rather than taken as another time.
pub(crate) fn parse_exptime(token: &[u8]) -> Option<i64> {
    let (negative, magnitude) = c_number(up_to_nul(token))?;
    let value = if negative {
        0i64.checked_sub_unsigned(magnitude)?
    } else {
        i64::try_from(magnitude).ok()?
    };
    i32::try_from(value).ok().map(i64::from)
}

/// `text` up to its first NUL, as C reads it.
fn up_to_nul(text: &[u8]) -> &[u8] {
    &text[..text
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(text.len())]
}

/// C's `strtoull`'s reading, strictly: leading whitespace, an optional sign (whether it
/// is `-`), decimal digits whose magnitude fits in 64 bits, then the end or whitespace.
fn c_number(text: &[u8]) -> Option<(bool, u64)> {
    let start = text
        .iter()
        .position(|&byte| !is_c_space(byte))
        .unwrap_or(text.len());
    let mut rest = &text[start..];
    let negative = rest.first() == Some(&b'-');
    if let Some((b'+' | b'-', after)) = rest.split_first() {
        rest = after;
    }
    let digits_end = rest
        .iter()
        .position(|byte| !byte.is_ascii_digit())
        .unwrap_or(rest.len());
    let (digits, after) = rest.split_at(digits_end);
    if digits.is_empty() || after.first().is_some_and(|&byte| !is_c_space(byte)) {
        return None;
    }
    let magnitude = digits.iter().try_fold(0u64, |number, &digit| {
        number.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })?;
    Some((negative, magnitude))
}

/// C's `isspace` in the C locale: space, `\t`, `\n`, `\v`, `\f`, `\r`.
fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}
