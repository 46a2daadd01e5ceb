//! memcached 1.6's meta commands, as its protocol.txt documents them and memcached 1.6.21
//! (the version kv announces) answers them: `mn` (no-op), `mg` (get), `ms` (set), `md` (delete), `ma` (arithmetic)
//! and `me` (debug).
//!
//! A meta line is `<cm> <key> <datalen*> <flag>*`; a flag is one character, some with a
//! token after it (`T30`, `Oopaque`). The flags each command acts on:
//!
//! - `mg`: `b` (base64 key), `c` (cas), `f` (client flags), `h` (hit before), `k` (key),
//!   `l` (seconds since last access), `O` (opaque), `q` (no `EN` on a miss), `s` (size),
//!   `t` (TTL left, `-1` for none), `u` (no LRU bump, not marked read), `v` (value),
//!   `N` (vivify on miss), `E` (the cas unique of the item `N` makes), `R` (win a
//!   recache below a TTL), `T` (touch). Besides those
//!   asked for, a hit's line ends with `Z` when another client has won the item, `X`
//!   when it is stale and `W` when this client just won it (the first reader of a stale
//!   item does).
//! - `ms`: `b`, `c`, `C` (compare cas), `E` (the stored item's cas unique), `F` (client
//!   flags), `I` (with `C`: a cas below the item's stores all the same, the item kept
//!   stale), `k`, `N` (in append or prepend mode: on a miss, store the value as a new
//!   item with this TTL, in place of `T`'s), `O`, `q` (no `HD`), `s` (the stored value's
//!   size, the joined one after an append or prepend; the value sent when nothing was
//!   stored), `T` (TTL), `M` (mode: `E` add, `A` append, `P` prepend, `R` replace, `S`
//!   set).
//! - `md`: `b`, `C`, `I` (mark stale with a new cas rather than delete), `E` (with `I`:
//!   that new cas), `k`, `O`, `q` (no `HD`), `T` (with `I`: the stale item's TTL).
//! - `ma`: `b`, `c`, `C`, `D` (delta), `E` (the changed or created item's cas unique),
//!   `J` (initial value), `k`, `M` (`I` or `+` increment, `D` or `-` decrement), `N`
//!   (create on miss), `O`, `q` (no `HD` nor `VA`), `t`, `T`, `v`.
//!
//! `E` is memcached's client-chosen cas unique (protocol.txt: "use token as new CAS
//! value"): the item the command changes or makes takes it instead of the cache's next
//! cas unique, which is not used up (an `ma` that changes a number uses one up and
//! replaces it, as memcached does); a command that changes nothing ignores it.
//! - `me`: `b` (only as the token after the key; as in memcached, any other token there
//!   and anything after it are ignored); `mn` takes nothing (and, as in memcached,
//!   ignores what follows it).
//!
//! `mg`, `ms`, `md` and `ma` accept the other flags memcached knows (`P` and `L`, proxy
//! hints, and the flags of the other commands) and ignore them, as memcached does. Any other flag
//! is refused with `CLIENT_ERROR invalid flag`, as memcached refuses it; so is a flag
//! without a token followed by other bytes (`vx`, which memcached reads as `v`). The errors are memcached's: a repeated flag, a bad token, an opaque token over
//! 32 bytes, a bad mode, more than 19 tokens on the line, a key over 250 bytes (before
//! decoding) or one that is no base64 under `b` (strict RFC 4648 base64 with padding);
//! `md` and `ma` answer every flag error but the opaque's and the mode's with
//! `CLIENT_ERROR invalid or duplicate flag`, as memcached does. Errors are answered even
//! under `q`. A meta set whose datalen is a number always has its data block skipped
//! when it is refused, however it is refused (memcached skips it for some errors only).
//!
//! Flags that report (`c`, `k`, `t`, ...) are answered in the order they were sent, and
//! `T` and `N` change the item's expiry at their place among the flags: `mg k t T30`
//! reports the TTL the item had. `ma`'s `q` hides a success, `HD` or `VA` (protocol.txt
//! names `HD` alone, but memcached's source hides both), that of an item `N` made as
//! well, as memcached's current source does (1.6.18 sent it). A `k` echoes the key as it was sent
//! (with ` b` after a base64 key). `me` answers `ME <key> exp=<TTL left, -1 for none>
//! la=<seconds since last access> cas=<cas> fetch=<yes|no> size=<bytes the item costs>`:
//! memcached's keys, less its slab class (`cls`), which this cache has none of
//! (memcached 1.6.18 prints the TTL left negated).

use crate::Key;
use crate::cache::{
    DeleteOutcome, Expiry, MAX_KEY, MetaDelete, MetaDelta, MetaDeltaOutcome, MetaGet, MetaHit,
    MetaStore, Retime, StoreMode, StoreOutcome, decimal,
};
use crate::parse::{
    Command, Parsed, ProtocolError, c_unsigned, data_block, invalid, next_token, parse_exptime,
};
use crate::reply::{Output, Reply, Sink};
use crate::store::Store;

/// The most bytes an opaque token may have, its `O` included.
const MAX_OPAQUE: usize = 32;
/// The most tokens a meta line may have: its command, key, datalen and flags.
const MAX_TOKENS: usize = 19;
/// The most digits a number has in an answer (`u64::MAX`'s).
const MAX_DIGITS: usize = u64::MAX.ilog10() as usize + 1;
/// The flags whose number [`write_hit`] writes: `t`, `s`, `c`, `f`, `l` and `h`.
const HIT_NUMBERS: usize = 6;
/// The most bytes [`write_hit`] writes besides the value: `VA` and the size, the echoes
/// of `O` (at most [`MAX_OPAQUE`] bytes) and `k` (the key as sent, at most [`MAX_KEY`],
/// and ` b`), each number flag with its number, `Z`, `X` and `W`, and two `\r\n`. A
/// flag comes at most once: a repeated one is refused.
pub(crate) const MAX_HIT_BESIDES_VALUE: usize = "VA ".len()
    + MAX_DIGITS
    + " ".len()
    + MAX_OPAQUE
    + " k".len()
    + MAX_KEY
    + " b".len()
    + HIT_NUMBERS * (" t".len() + MAX_DIGITS)
    + " Z X W".len()
    + 2 * "\r\n".len();
/// The answer to `ma N` when the item it would create does not fit.
const NO_MEMORY_FOR_NEW_ITEM: &[u8] = b"SERVER_ERROR Out of memory allocating new item\r\n";

/// Which meta command a line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    /// `mg`.
    Get,
    /// `ms`.
    Set,
    /// `md`.
    Delete,
    /// `ma`.
    Arithmetic,
}

/// What a meta command does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action<'a> {
    /// `mg`.
    Get,
    /// `ms` with its data block (without its `\r\n`).
    Set(&'a [u8]),
    /// `ms` whose value is above the item size limit; its block is the request's
    /// `swallow`.
    SetTooLarge,
    /// `ms` whose data block of this many bytes (and two more) does not end with `\r\n`.
    SetBadChunk(usize),
    /// `md`.
    Delete,
    /// `ma`.
    Arithmetic,
    /// `me`.
    Debug,
}

/// The values a meta command's flags set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Options {
    /// `q`.
    quiet: bool,
    /// `v`.
    value: bool,
    /// `u`.
    no_bump: bool,
    /// `I`.
    invalidate: bool,
    /// `F`.
    client_flags: u32,
    /// `C`.
    compare_cas: Option<u64>,
    /// `E`.
    new_cas: Option<u64>,
    /// `T`.
    touch: Option<Retime>,
    /// `N`.
    vivify: Option<Retime>,
    /// `R`.
    recache: Option<Retime>,
    /// `ms`'s `M`.
    set_mode: SetMode,
    /// `ma`'s `M`.
    decrement: bool,
    /// `D`.
    delta: u64,
    /// `J`.
    initial: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            quiet: false,
            value: false,
            no_bump: false,
            invalidate: false,
            client_flags: 0,
            compare_cas: None,
            new_cas: None,
            touch: None,
            vivify: None,
            recache: None,
            set_mode: SetMode::Set,
            decrement: false,
            delta: 1,
            initial: 0,
        }
    }
}

/// `ms`'s mode (`M`): which storage command it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetMode {
    /// `S`, the default.
    Set,
    /// `E`.
    Add,
    /// `R`.
    Replace,
    /// `A`.
    Append,
    /// `P`.
    Prepend,
}

impl SetMode {
    /// The storage command.
    fn store_mode(self) -> StoreMode {
        match self {
            Self::Set => StoreMode::Set,
            Self::Add => StoreMode::Add,
            Self::Replace => StoreMode::Replace,
            Self::Append => StoreMode::Append,
            Self::Prepend => StoreMode::Prepend,
        }
    }
}

/// A meta command (`mg`, `ms`, `md`, `ma` or `me`), its line checked (and a meta set's
/// data block found) by the parser; [`Session::run`](crate::Session::run) answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta<'a> {
    /// What it does.
    action: Action<'a>,
    /// The key as sent (base64 under `b`).
    key: &'a [u8],
    /// `b`.
    base64: bool,
    /// The flags as sent, checked.
    flags: &'a [u8],
    /// What the flags set.
    options: Options,
}

/// The meta command `name` (`mg`, `ms`, `md`, `ma`, `me` or `mn`) whose line, the first
/// `line_end` bytes of `input`, has `arguments` after its name; `max_value` is the item
/// size limit.
pub(crate) fn parse<'a>(
    name: &[u8],
    arguments: &'a [u8],
    input: &'a [u8],
    line_end: usize,
    max_value: usize,
) -> Parsed<'a> {
    let verb = match name {
        b"mn" => return request(line_end, 0, Command::MetaNoOp),
        b"me" => return debug(arguments, line_end),
        b"mg" => Verb::Get,
        b"ms" => return set(arguments, input, line_end, max_value),
        b"md" => Verb::Delete,
        // `ma`.
        _ => Verb::Arithmetic,
    };
    let Some((key, flags)) = next_token(arguments) else {
        return invalid(line_end, ProtocolError::UnknownCommand, false);
    };
    let checked = check_line(verb, key, 2, flags).and_then(|()| options(verb, flags));
    let command = match checked {
        Ok((options, base64)) => Command::Meta(Meta {
            action: match verb {
                Verb::Get => Action::Get,
                Verb::Delete => Action::Delete,
                _ => Action::Arithmetic,
            },
            key,
            base64,
            flags,
            options,
        }),
        Err(error) => Command::Invalid {
            error,
            noreply: false,
        },
    };
    request(line_end, 0, command)
}

/// A request of `consumed` bytes followed by `swallow` bytes to skip.
fn request(consumed: usize, swallow: u64, command: Command<'_>) -> Parsed<'_> {
    Parsed::Request {
        consumed,
        swallow,
        command,
    }
}

/// `ms <key> <datalen> <flag>*` and its data block. Once the datalen is read, a refused
/// line has its block skipped.
fn set<'a>(arguments: &'a [u8], input: &'a [u8], line_end: usize, max_value: usize) -> Parsed<'a> {
    let Some((key, rest)) = next_token(arguments) else {
        return invalid(line_end, ProtocolError::UnknownCommand, false);
    };
    let Some(block) = next_token(rest).and_then(|(datalen, _)| data_block(datalen)) else {
        return invalid(line_end, ProtocolError::BadFormat, false);
    };
    let flags = next_token(rest).map_or(&[][..], |(_, flags)| flags);
    let checked = check_line(Verb::Set, key, 3, flags).and_then(|()| options(Verb::Set, flags));
    let (options, base64) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            let refused = Command::Invalid {
                error,
                noreply: false,
            };
            return request(line_end, block, refused);
        }
    };
    let meta = |action| {
        Command::Meta(Meta {
            action,
            key,
            base64,
            flags,
            options,
        })
    };
    if block - 2 > max_value as u64 {
        return request(line_end, block, meta(Action::SetTooLarge));
    }
    // At most `MAX_BYTE_COUNT` + 2: fits in `usize` on 64-bit targets.
    let block_end = line_end + block as usize;
    if input.len() < block_end {
        return Parsed::NeedMore;
    }
    let value = &input[line_end..block_end - 2];
    let action = if &input[block_end - 2..block_end] != b"\r\n" {
        Action::SetBadChunk(value.len())
    } else {
        Action::Set(value)
    };
    request(block_end, 0, meta(action))
}

/// `me <key> [b]`: as memcached's process_meta_command, only the token after the key is
/// looked at (`b`: a base64 key), the rest of the line ignored.
fn debug(arguments: &[u8], line_end: usize) -> Parsed<'_> {
    let Some((key, flags)) = next_token(arguments).filter(|(key, _)| key.len() <= MAX_KEY) else {
        return invalid(line_end, ProtocolError::BadFormat, false);
    };
    let base64 = matches!(next_token(flags), Some((b"b", _)));
    let meta = Meta {
        action: Action::Debug,
        key,
        base64,
        flags: &[],
        options: Options::default(),
    };
    request(line_end, 0, Command::Meta(meta))
}

/// Checks a line's key and its number of tokens (`before` of them before its flags).
fn check_line(verb: Verb, key: &[u8], before: usize, flags: &[u8]) -> Result<(), ProtocolError> {
    if key.len() > MAX_KEY {
        return Err(ProtocolError::BadFormat);
    }
    if before + flag_tokens(flags).count() > MAX_TOKENS {
        return Err(match verb {
            Verb::Get => ProtocolError::MetaGetFlagsTooLong,
            _ => ProtocolError::MetaFlagsTooLong,
        });
    }
    Ok(())
}

/// The flag tokens of a line, in order.
fn flag_tokens(flags: &[u8]) -> impl Iterator<Item = &[u8]> {
    flags
        .split(|&byte| byte == b' ')
        .filter(|token| !token.is_empty())
}

/// What `flags` set for a `verb` command, and whether its key is base64 (`b`).
fn options(verb: Verb, flags: &[u8]) -> Result<(Options, bool), ProtocolError> {
    let mut options = Options::default();
    let mut base64 = false;
    let mut seen = 0u128;
    let mut mode = None;
    // memcached answers `md`'s and `ma`'s flag errors alike.
    let refuse = |error| match verb {
        Verb::Delete | Verb::Arithmetic => ProtocolError::MetaInvalidOrDuplicateFlag,
        Verb::Get | Verb::Set => error,
    };
    for (place, token) in (0u8..).zip(flag_tokens(flags)) {
        let (flag, argument) = (token[0], &token[1..]);
        if flag >= 128 {
            return Err(refuse(ProtocolError::MetaInvalidFlag));
        }
        if seen & (1 << flag) != 0 {
            return Err(refuse(ProtocolError::MetaDuplicateFlag));
        }
        seen |= 1 << flag;
        let retime = || {
            parse_exptime(argument)
                .and_then(|exptime| i32::try_from(exptime).ok())
                .map(|exptime| Retime { place, exptime })
                .ok_or(refuse(ProtocolError::MetaBadToken))
        };
        match flag {
            b'b' | b'c' | b'f' | b'h' | b'k' | b'l' | b'q' | b's' | b't' | b'u' | b'v' | b'I'
                if !argument.is_empty() =>
            {
                return Err(refuse(ProtocolError::MetaInvalidFlag));
            }
            b'b' => base64 = true,
            b'q' => options.quiet = true,
            b'v' => options.value = true,
            b'u' => options.no_bump = true,
            b'I' => options.invalidate = true,
            b'c' | b'f' | b'h' | b'k' | b'l' | b's' | b't' | b'P' | b'L' => {}
            b'N' => options.vivify = Some(retime()?),
            b'T' => options.touch = Some(retime()?),
            b'R' => options.recache = Some(retime()?),
            b'C' => {
                let unique = c_unsigned(argument).ok_or(refuse(ProtocolError::MetaBadToken))?;
                options.compare_cas = Some(unique);
            }
            b'E' => {
                let unique = c_unsigned(argument).ok_or(refuse(ProtocolError::MetaBadToken))?;
                options.new_cas = Some(unique);
            }
            b'F' => {
                let client_flags = c_unsigned(argument).and_then(|flags| u32::try_from(flags).ok());
                options.client_flags = client_flags.ok_or(refuse(ProtocolError::BadFormat))?;
            }
            b'M' => match argument {
                [character] => mode = Some(*character),
                _ => return Err(refuse(ProtocolError::MetaModeLength)),
            },
            b'J' => {
                options.initial =
                    c_unsigned(argument).ok_or(refuse(ProtocolError::MetaBadInitial))?
            }
            b'D' => {
                options.delta = c_unsigned(argument).ok_or(refuse(ProtocolError::MetaBadDelta))?
            }
            b'O' if token.len() > MAX_OPAQUE => return Err(ProtocolError::MetaOpaqueTooLong),
            b'O' => {}
            _ => return Err(refuse(ProtocolError::MetaInvalidFlag)),
        }
    }
    match (verb, mode) {
        (Verb::Set, Some(mode)) => {
            options.set_mode = match mode {
                b'E' => SetMode::Add,
                b'A' => SetMode::Append,
                b'P' => SetMode::Prepend,
                b'R' => SetMode::Replace,
                b'S' => SetMode::Set,
                _ => return Err(ProtocolError::MetaSetMode),
            }
        }
        (Verb::Arithmetic, Some(mode)) => {
            options.decrement = match mode {
                b'I' | b'+' => false,
                b'D' | b'-' => true,
                _ => return Err(ProtocolError::MetaArithmeticMode),
            }
        }
        _ => {}
    }
    Ok((options, base64))
}

/// Decodes base64 `text` (RFC 4648: `A-Z`, `a-z`, `0-9`, `+`, `/`, padded with `=` to
/// a multiple of four characters, its unused bits 0) into `out`; the decoded length, or
/// `None` if `text` is no such base64 or decodes to more bytes than `out` holds.
fn decode_base64(text: &[u8], out: &mut [u8]) -> Option<usize> {
    if text.is_empty() || !text.len().is_multiple_of(4) {
        return None;
    }
    let padding = text.iter().rev().take_while(|&&byte| byte == b'=').count();
    if padding > 2 || text.len() / 4 * 3 - padding > out.len() {
        return None;
    }
    let (mut bits, mut held, mut length) = (0u32, 0u32, 0);
    for &byte in &text[..text.len() - padding] {
        bits = (bits << 6) | sextet(byte)?;
        held += 6;
        if held >= 8 {
            held -= 8;
            out[length] = (bits >> held) as u8;
            length += 1;
            bits &= (1 << held) - 1;
        }
    }
    (bits == 0).then_some(length)
}

/// The value of one base64 character.
fn sextet(byte: u8) -> Option<u32> {
    let value = match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

/// Runs a meta command on `cache` and writes its answer.
pub(crate) fn run(cache: &mut impl Store, meta: Meta<'_>, now: u64, out: &mut impl Output) {
    let mut decoded = [0u8; MAX_KEY];
    let key = if meta.base64 {
        decode_base64(meta.key, &mut decoded).and_then(|length| Key::new(&decoded[..length]))
    } else {
        Key::new(meta.key)
    };
    let Some(key) = key else {
        out.put(
            match meta.action {
                Action::Delete | Action::Arithmetic => ProtocolError::MetaInvalidOrDuplicateFlag,
                Action::Debug => ProtocolError::BadFormat,
                _ => ProtocolError::MetaKeyDecoding,
            }
            .reply(),
        );
        return;
    };
    let options = &meta.options;
    match meta.action {
        Action::Get => {
            let get = MetaGet {
                touch: options.touch,
                vivify: options.vivify,
                recache: options.recache,
                no_bump: options.no_bump,
                new_cas: options.new_cas,
            };
            cache.meta_get(key, &get, now, &mut |hit| {
                match hit {
                    Some(hit) => {
                        let room = out.room();
                        // Past its room the output drops the answer, and the item is left
                        // as it was; it is counted only when the room might be short.
                        let taken = hit.value.len().saturating_add(MAX_HIT_BESIDES_VALUE) <= room
                            || {
                                let mut length = 0;
                                write_hit(
                                    &mut Sink(|bytes: &[u8]| length += bytes.len()),
                                    &meta,
                                    &hit,
                                );
                                length <= room
                            };
                        write_hit(out, &meta, &hit);
                        return taken;
                    }
                    None if options.quiet => {}
                    None => write_status(out, &meta, b"EN", &[]),
                }
                true
            });
        }
        Action::Set(value) => {
            let store = MetaStore {
                mode: options.set_mode.store_mode(),
                compare_cas: options.compare_cas,
                flags: options.client_flags,
                exptime: options.touch.map_or(0, |touch| touch.exptime.into()),
                vivify: options.vivify.map(|vivify| vivify.exptime.into()),
                invalidate: options.invalidate,
                new_cas: options.new_cas,
            };
            let stored = cache.meta_store(key, &store, value, now);
            let status: &[u8] = match stored.outcome {
                StoreOutcome::Stored if options.quiet => return,
                StoreOutcome::Stored => b"HD",
                StoreOutcome::NotStored => b"NS",
                StoreOutcome::Exists => b"EX",
                StoreOutcome::NotFound => b"NF",
                StoreOutcome::TooLarge => return out.put(Reply::TooLarge.bytes()),
                StoreOutcome::NoMemory => return out.put(Reply::NoMemory.bytes()),
                StoreOutcome::BadDataChunk => return out.put(Reply::BadDataChunk.bytes()),
            };
            let numbers = [(b'c', stored.cas), (b's', stored.size as u64)];
            write_status(out, &meta, status, &numbers);
        }
        Action::SetTooLarge => {
            cache.meta_refuse_too_large(key, now);
            out.put(Reply::TooLarge.bytes());
        }
        // memcached's meta set answers this refusal even under `q`.
        Action::SetBadChunk(value_len) => {
            // Out of memory or a bad data chunk: the only two it gives. Refused as a
            // `set` whatever the mode: an item the budget cannot hold alone removes the
            // key's old item, as `meta_store` does.
            let refusal = match cache.refuse_bad_chunk(StoreMode::Set, key, value_len, now) {
                StoreOutcome::NoMemory => Reply::NoMemory,
                _ => Reply::BadDataChunk,
            };
            out.put(refusal.bytes());
        }
        Action::Delete => {
            let delete = MetaDelete {
                compare_cas: options.compare_cas,
                invalidate: options.invalidate,
                exptime: options.touch.map(|touch| touch.exptime.into()),
                new_cas: options.new_cas,
            };
            let status: &[u8] = match cache.meta_delete(key, &delete, now) {
                DeleteOutcome::Deleted if options.quiet => return,
                DeleteOutcome::Deleted => b"HD",
                DeleteOutcome::NotFound => b"NF",
                DeleteOutcome::Exists => b"EX",
            };
            write_status(out, &meta, status, &[]);
        }
        Action::Arithmetic => {
            let delta = MetaDelta {
                delta: options.delta,
                decrement: options.decrement,
                compare_cas: options.compare_cas,
                touch: options.touch,
                vivify: options.vivify,
                initial: options.initial,
                new_cas: options.new_cas,
            };
            match cache.meta_delta(key, &delta, now) {
                MetaDeltaOutcome::Value { .. } if options.quiet => {}
                MetaDeltaOutcome::Value {
                    number,
                    cas,
                    expiry,
                } => write_number(out, &meta, number, cas, &expiry),
                MetaDeltaOutcome::NotFound => write_status(out, &meta, b"NF", &[]),
                MetaDeltaOutcome::Exists => write_status(out, &meta, b"EX", &[]),
                MetaDeltaOutcome::NonNumeric => out.put(Reply::NonNumeric.bytes()),
                MetaDeltaOutcome::NoMemory => out.put(NO_MEMORY_FOR_NEW_ITEM),
            }
        }
        Action::Debug => match cache.inspect(key, now) {
            Some(item) => {
                let mut digits = [0u8; 20];
                out.put(b"ME ");
                out.put(meta.key);
                out.put(b" exp=");
                put_ttl(out, item.ttl);
                out.put(b" la=");
                out.put(decimal(item.idle, &mut digits));
                out.put(b" cas=");
                out.put(decimal(item.cas, &mut digits));
                out.put(if item.fetched {
                    b" fetch=yes size="
                } else {
                    b" fetch=no size="
                });
                out.put(decimal(item.size as u64, &mut digits));
                out.put(b"\r\n");
            }
            None => out.put(b"EN\r\n"),
        },
    }
}

/// `status`, then for each flag in order its opaque token (`O`), the key (`k`) or one of
/// `numbers` (a flag character and its value), then `\r\n`.
fn write_status(out: &mut impl Output, meta: &Meta<'_>, status: &[u8], numbers: &[(u8, u64)]) {
    out.put(status);
    let mut digits = [0u8; 20];
    for token in flag_tokens(meta.flags) {
        match token[0] {
            b'O' | b'k' => echo(out, meta, token),
            flag => {
                if let Some(&(_, number)) = numbers.iter().find(|&&(wanted, _)| wanted == flag) {
                    out.put(&[b' ', flag]);
                    out.put(decimal(number, &mut digits));
                }
            }
        }
    }
    out.put(b"\r\n");
}

/// An opaque token as sent, or the key as sent (` b` after a base64 one).
fn echo(out: &mut impl Output, meta: &Meta<'_>, token: &[u8]) {
    out.put(b" ");
    if token[0] == b'O' {
        out.put(token);
    } else {
        out.put(b"k");
        out.put(meta.key);
        if meta.base64 {
            out.put(b" b");
        }
    }
}

/// A TTL as meta commands report it: seconds, or `-1` for none.
fn put_ttl(out: &mut impl Output, ttl: Option<u64>) {
    let mut digits = [0u8; 20];
    match ttl {
        Some(seconds) => out.put(decimal(seconds, &mut digits)),
        None => out.put(b"-1"),
    }
}

/// `VA <size>` (with `v`) or `HD`, the flags asked for in order, `Z` and `W`, then the
/// value under `v`: a meta get's hit.
fn write_hit(out: &mut impl Output, meta: &Meta<'_>, hit: &MetaHit<'_>) {
    let mut digits = [0u8; 20];
    let size = hit.value.len() as u64;
    if meta.options.value {
        out.put(b"VA ");
        out.put(decimal(size, &mut digits));
    } else {
        out.put(b"HD");
    }
    for (place, token) in (0u8..).zip(flag_tokens(meta.flags)) {
        let (flag, number) = match token[0] {
            b'O' | b'k' => {
                echo(out, meta, token);
                continue;
            }
            b't' => {
                out.put(b" t");
                put_ttl(out, hit.expiry.ttl_at(place));
                continue;
            }
            b's' => (b's', size),
            b'c' => (b'c', hit.cas),
            b'f' => (b'f', u64::from(hit.flags)),
            b'l' => (b'l', hit.idle),
            b'h' => (b'h', u64::from(hit.hit_before)),
            _ => continue,
        };
        out.put(&[b' ', flag]);
        out.put(decimal(number, &mut digits));
    }
    if hit.win_sent {
        out.put(b" Z");
    }
    if hit.stale {
        out.put(b" X");
    }
    if hit.won {
        out.put(b" W");
    }
    out.put(b"\r\n");
    if meta.options.value {
        out.put(hit.value);
        out.put(b"\r\n");
    }
}

/// `VA <size>` (with `v`) or `HD`, the flags asked for in order, then the number under
/// `v`: a meta arithmetic's answer.
fn write_number(out: &mut impl Output, meta: &Meta<'_>, number: u64, cas: u64, expiry: &Expiry) {
    let mut digits = [0u8; 20];
    let mut text = [0u8; 20];
    let number = decimal(number, &mut text);
    if meta.options.value {
        out.put(b"VA ");
        out.put(decimal(number.len() as u64, &mut digits));
    } else {
        out.put(b"HD");
    }
    for (place, token) in (0u8..).zip(flag_tokens(meta.flags)) {
        match token[0] {
            b'O' | b'k' => echo(out, meta, token),
            b'c' => {
                out.put(b" c");
                out.put(decimal(cas, &mut digits));
            }
            b't' => {
                out.put(b" t");
                put_ttl(out, expiry.ttl_at(place));
            }
            _ => {}
        }
    }
    out.put(b"\r\n");
    if meta.options.value {
        out.put(number);
        out.put(b"\r\n");
    }
}
