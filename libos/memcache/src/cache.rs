//! The cache: items in a slab, an LRU list threaded through the slab by index, a byte
//! budget, memcached's expiry rules and counters.
//!
//! One `Cache` per core, used through `&mut self`: no locks, no atomics. Time is a
//! parameter (`now`, in seconds on the Unix clock) so that callers pick the clock and
//! tests control it.
//!
//! The slab grows by an eighth when full and is charged whole against the budget, free
//! entries included. So that deletes give its room back, it is compacted once fewer
//! than half its entries hold items: each removal then moves up to
//! [`COMPACTION_STEPS`] items from the slab's end into free entries before its end
//! (their index and LRU neighbours told), and once none is free the slab shrinks to the
//! items it holds. It grows again only when full, so a cache at a steady size never
//! compacts. The work is amortised O(1) per removal and bounded per call: the steps,
//! and at the end one reallocation copying under half the slab, as a growth copies
//! all of it.

use crate::parse::c_unsigned;
use crate::table::{SHRINK_BELOW, Table, hash};
use alloc::boxed::Box;
use alloc::vec::Vec;

mod meta;

pub use meta::{
    DeleteOutcome, Expiry, Inspection, MetaDelete, MetaDelta, MetaDeltaOutcome, MetaGet, MetaHit,
    MetaStore, MetaStored, Retime,
};

/// The longest key memcached accepts, in bytes.
pub const MAX_KEY: usize = 250;
/// Exptimes up to this many seconds (30 days) are relative to now; larger ones are Unix
/// times (memcached's `REALTIME_MAXDELTA`).
pub const RELATIVE_EXPTIME_MAX: i64 = 60 * 60 * 24 * 30;
/// Bytes an item costs beyond its key and value: its slab entry and its share of the
/// index (at most eight 8-byte slots: the index halves below an eighth full). Slab
/// entries no item holds (freed, or grown for the next ones) are charged too, so the
/// budget bounds what the cache allocates; the slab is compacted once fewer than half
/// its entries hold items, which gives them back.
pub const ITEM_OVERHEAD: usize = SLAB_ENTRY + SHRINK_BELOW * core::mem::size_of::<u64>();
/// The bytes of one slab entry.
pub(crate) const SLAB_ENTRY: usize = core::mem::size_of::<Item>();
/// The most index bytes one item holds.
const INDEX_SHARE: usize = ITEM_OVERHEAD - SLAB_ENTRY;
/// The slab grows by an eighth of its entries (at least one), so that at most that
/// much of it waits unused.
const SLAB_GROWTH_DIVISOR: usize = 8;
/// Slab entries an empty cache keeps rather than give back when its last item goes, so
/// that a cache of an item or a few does not free and reallocate its slab on every
/// replace, `incr` or delete and set (`flush_all` gives everything back, and so does an
/// item that fills the budget alone); a compaction leaves at least these too.
pub(crate) const KEPT_SLAB_ENTRIES: usize = 64;
/// A slab of more than [`KEPT_SLAB_ENTRIES`] whose items fill less than 1 /
/// `COMPACT_BELOW` of it is compacted: growth by an eighth when full leaves it at least
/// 8/9 full, so only removals start a compaction.
const COMPACT_BELOW: usize = 2;
/// Items a removal moves, at most, while the slab is compacted: each step frees the
/// slab's last entry, so a compaction ends after its free entries / (steps - 1) more
/// removals at the latest.
const COMPACTION_STEPS: usize = 4;
/// How long before the cache's creation its epoch is, the second its items' times count
/// from in 32 bits (memcached's `rel_time_t` counts from its start likewise): 68 years,
/// half the range, so that those times hold the Unix seconds from 68 years before the
/// cache started to 68 years after it (from the Unix epoch to 136 years after it for a
/// clock counting from boot), every 32-bit exptime among them.
const EPOCH_LEAD: u64 = 1 << 31;
/// No item: the end of the LRU list or of the free list.
const NIL: u32 = u32::MAX;
/// An item's state bit: read since it was stored (meta get's `h`, meta debug's `fetch`).
const FETCHED: u8 = 1;
/// An item's state bit: a client was told it won the right to recache the item (meta
/// get's `W`); the others are told so (`Z`).
const WIN_SENT: u8 = 2;
/// An item's state bit: marked stale by a meta delete's `I` (meta get's `X`): its value
/// may be served while one client, the first to read it, recaches it.
const STALE: u8 = 4;

/// A key memcached accepts: 1 to [`MAX_KEY`] bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key<'a>(&'a [u8]);

impl<'a> Key<'a> {
    /// `bytes` as a key, or `None` if it is empty or longer than [`MAX_KEY`].
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        (1..=MAX_KEY).contains(&bytes.len()).then_some(Self(bytes))
    }

    /// The key's bytes.
    pub fn bytes(self) -> &'a [u8] {
        self.0
    }
}

/// Sizes of a cache, fixed at creation.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// The byte budget (`limit_maxbytes`): keys, values, the index ([`ITEM_OVERHEAD`]
    /// per item covers its share and its slab entry) and the slab's unused entries.
    pub max_bytes: usize,
    /// The largest value accepted (memcached's item size limit; 1 MiB by default).
    pub max_value: usize,
    /// Seeds the key hash; give each cache an unpredictable one (the kernel's random
    /// number, `Kernel::random_u64`) so that clients cannot choose colliding keys: a clock
    /// reading at boot is nearly the same on every boot, and guessable.
    pub hash_seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_value: 1 << 20,
            hash_seed: 0x243f_6a88_85a3_08d3,
        }
    }
}

/// How a storage command treats the key's current item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    /// Store unconditionally (`set`).
    Set,
    /// Store only if absent (`add`).
    Add,
    /// Store only if present (`replace`).
    Replace,
    /// Add the data after the present value, keeping flags and expiry (`append`).
    Append,
    /// Add the data before the present value, keeping flags and expiry (`prepend`).
    Prepend,
    /// Store only if present with this cas unique (`cas`).
    Cas(u64),
}

/// What a storage command did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored (`STORED`).
    Stored,
    /// The mode's condition failed, or an `append`/`prepend` would make an item past
    /// the item size limit or the whole budget (`NOT_STORED`, as memcached answers).
    NotStored,
    /// `cas`: the item changed since the client read it (`EXISTS`).
    Exists,
    /// `cas`: no such item (`NOT_FOUND`).
    NotFound,
    /// The value is above the item size limit (`SERVER_ERROR object too large for cache`).
    TooLarge,
    /// The item alone (key and value) is above the whole budget, whatever the mode
    /// (`SERVER_ERROR out of memory storing object`: memcached makes the item first).
    NoMemory,
    /// The data block does not end with `\r\n` (`CLIENT_ERROR bad data chunk`): found
    /// once the item is made and the command counted, as memcached finds it.
    BadDataChunk,
}

/// What `incr` or `decr` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeltaOutcome {
    /// The new value.
    Value(u64),
    /// No such item (`NOT_FOUND`).
    NotFound,
    /// The value is not a decimal 64-bit number (`CLIENT_ERROR cannot increment or
    /// decrement non-numeric value`).
    NonNumeric,
}

/// An item found by a read, borrowed from the cache so its value can be written straight
/// to the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found<'a> {
    /// The value's bytes.
    pub value: &'a [u8],
    /// The client's 32-bit flags.
    pub flags: u32,
    /// The cas unique.
    pub cas: u64,
}

/// The counters `stats` reports that the cache keeps (memcached's names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Seconds since the cache was created.
    pub uptime: u64,
    /// The cache's clock (Unix seconds).
    pub time: u64,
    /// Live and not yet noticed expired items.
    pub curr_items: u64,
    /// Items stored since creation.
    pub total_items: u64,
    /// Bytes held, by the budget's count: every item's cost and the slab entries no
    /// item holds.
    pub bytes: u64,
    /// The budget.
    pub limit_maxbytes: u64,
    /// Keys looked up by `get`, `gets`.
    pub cmd_get: u64,
    /// Storage commands, except those refused for the item size limit or for the budget
    /// (memcached counts only those whose item was made).
    pub cmd_set: u64,
    /// `flush_all` commands.
    pub cmd_flush: u64,
    /// `touch`, `gat` and `gats` lookups.
    pub cmd_touch: u64,
    /// `get`/`gets` keys found.
    pub get_hits: u64,
    /// `get`/`gets` keys not found.
    pub get_misses: u64,
    /// `get`/`gets` keys found expired.
    pub get_expired: u64,
    /// `delete` of a missing key.
    pub delete_misses: u64,
    /// `delete` of a present key.
    pub delete_hits: u64,
    /// `incr` of a missing key.
    pub incr_misses: u64,
    /// `incr` of a present numeric value.
    pub incr_hits: u64,
    /// `decr` of a missing key.
    pub decr_misses: u64,
    /// `decr` of a present numeric value.
    pub decr_hits: u64,
    /// `cas` of a missing key.
    pub cas_misses: u64,
    /// `cas` stored.
    pub cas_hits: u64,
    /// `cas` refused: the cas unique did not match.
    pub cas_badval: u64,
    /// `touch`/`gat`/`gats` keys found.
    pub touch_hits: u64,
    /// `touch`/`gat`/`gats` keys not found.
    pub touch_misses: u64,
    /// Values refused for the item size limit.
    pub store_too_large: u64,
    /// Items refused because they alone exceed the budget.
    pub store_no_memory: u64,
    /// Live items removed to make room.
    pub evictions: u64,
    /// Expired items removed (to make room or when found).
    pub reclaimed: u64,
}

impl Stats {
    /// Adds `other`'s item, byte and event counters to these (another shard's); the
    /// clock, uptime and `cmd_flush` stay these.
    pub fn add(&mut self, other: &Stats) {
        self.curr_items += other.curr_items;
        self.total_items += other.total_items;
        self.bytes += other.bytes;
        self.limit_maxbytes += other.limit_maxbytes;
        self.cmd_get += other.cmd_get;
        self.cmd_set += other.cmd_set;
        self.cmd_touch += other.cmd_touch;
        self.get_hits += other.get_hits;
        self.get_misses += other.get_misses;
        self.get_expired += other.get_expired;
        self.delete_misses += other.delete_misses;
        self.delete_hits += other.delete_hits;
        self.incr_misses += other.incr_misses;
        self.incr_hits += other.incr_hits;
        self.decr_misses += other.decr_misses;
        self.decr_hits += other.decr_hits;
        self.cas_misses += other.cas_misses;
        self.cas_hits += other.cas_hits;
        self.cas_badval += other.cas_badval;
        self.touch_hits += other.touch_hits;
        self.touch_misses += other.touch_misses;
        self.store_too_large += other.store_too_large;
        self.store_no_memory += other.store_no_memory;
        self.evictions += other.evictions;
        self.reclaimed += other.reclaimed;
    }
}

/// One slab entry: an item, or (with an empty `data`: an item's holds its key) a free
/// slot, chained to the next free one by `older` and to the one before by `newer`.
#[derive(Debug)]
struct Item {
    /// The key followed by the value: one allocation per item.
    data: Box<[u8]>,
    /// The second from which the item is expired, counted from the cache's epoch
    /// ([`Cache::epoch`]); 0 for never.
    expires_at: u32,
    cas: u64,
    flags: u32,
    /// Toward the most recently used item (and the free slot before).
    newer: u32,
    /// Toward the least recently used item (and the next free slot).
    older: u32,
    /// The second of the last read (or of the store), from the cache's epoch: meta get's
    /// `l`.
    accessed_at: u32,
    key_len: u8,
    /// [`FETCHED`], [`WIN_SENT`] and [`STALE`].
    state: u8,
}

impl Item {
    fn key(&self) -> &[u8] {
        &self.data[..usize::from(self.key_len)]
    }

    fn value(&self) -> &[u8] {
        &self.data[usize::from(self.key_len)..]
    }

    /// What the item costs against the budget beside its slab entry (charged with the
    /// slab): its key, its value and its share of the index.
    fn cost_beside_its_entry(&self) -> usize {
        self.data.len() + INDEX_SHARE
    }

    /// Seconds since the item was last read, at `now`, a second from the cache's epoch.
    fn idle(&self, now: u32) -> u64 {
        u64::from(now.saturating_sub(self.accessed_at))
    }

    /// Whether the item has expired at `now`, a second from the cache's epoch.
    fn is_expired(&self, now: u32) -> bool {
        self.expires_at != 0 && self.expires_at <= now
    }
}

/// A memcached-style cache, used by one core at a time (several share [`Shards`](crate::Shards) of them).
pub struct Cache {
    items: Vec<Item>,
    /// The first free slab slot, the list chained both ways (see [`Item`]).
    free: u32,
    table: Table,
    /// The most recently used item.
    newest: u32,
    /// The least recently used item: the next to evict.
    oldest: u32,
    /// What the items cost beside their slab entries (keys, values, index shares).
    bytes: usize,
    curr_items: u64,
    config: Config,
    /// The cas unique of the latest change.
    last_cas: u64,
    created_at: u64,
    /// When a delayed `flush_all` takes effect.
    flush_at: Option<u64>,
    stats: Stats,
}

impl Cache {
    /// An empty cache with `config`, its clock starting at `now` (Unix seconds).
    pub fn new(config: Config, now: u64) -> Self {
        Self {
            items: Vec::new(),
            free: NIL,
            table: Table::new(),
            newest: NIL,
            oldest: NIL,
            bytes: 0,
            curr_items: 0,
            config,
            last_cas: 0,
            created_at: now,
            flush_at: None,
            stats: Stats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `get`/`gets`: the live item of `key`, made the most recently used.
    pub fn get(&mut self, key: Key<'_>, now: u64) -> Option<Found<'_>> {
        self.flush_if_due(now);
        self.stats.cmd_get += 1;
        let hash = self.hash(key);
        match self.find_live(key, hash, now) {
            Ok(index) => {
                self.stats.get_hits += 1;
                self.access(index, now);
                Some(self.found(index))
            }
            Err(missing) => {
                if missing == Missing::Expired {
                    self.stats.get_expired += 1;
                }
                self.stats.get_misses += 1;
                None
            }
        }
    }

    /// `gat`/`gats`: the live item of `key` with its expiry set to `exptime`.
    /// Counted as a touch only (`cmd_touch`, `touch_hits`, `touch_misses`), as memcached
    /// counts it.
    pub fn get_and_touch(&mut self, key: Key<'_>, exptime: i64, now: u64) -> Option<Found<'_>> {
        let index = self.touch_item(key, exptime, now)?;
        Some(self.found(index))
    }

    /// `touch`: sets the expiry of `key`'s live item; false if there is none.
    pub fn touch(&mut self, key: Key<'_>, exptime: i64, now: u64) -> bool {
        self.touch_item(key, exptime, now).is_some()
    }

    /// A storage command (`set`, `add`, `replace`, `append`, `prepend`, `cas`).
    pub fn store(
        &mut self,
        mode: StoreMode,
        key: Key<'_>,
        flags: u32,
        exptime: i64,
        value: &[u8],
        now: u64,
    ) -> StoreOutcome {
        let item = NewItem {
            key,
            flags,
            exptime,
            value,
        };
        self.store_item(mode, Conditions::default(), item, now).0
    }

    /// A storage command under a meta set's `conditions`, and the slab index of the item
    /// stored.
    fn store_item(
        &mut self,
        mode: StoreMode,
        conditions: Conditions,
        new: NewItem<'_, '_>,
        now: u64,
    ) -> (StoreOutcome, Option<u32>) {
        let NewItem {
            key,
            flags,
            exptime,
            value,
        } = new;
        if value.len() > self.config.max_value {
            return (self.refuse_too_large(mode, key, now), None);
        }
        let unlink = conditions.refusal_unlinks || mode == StoreMode::Set;
        if let Err(refusal) = self.make_item(key, value.len(), unlink, now) {
            return (refusal, None);
        }
        let hash = self.hash(key);
        let present = self.live(key, hash, now);
        // The state a stale store keeps.
        let mut stale = None;
        let (flags, expires_at, data) = match (mode, present) {
            (StoreMode::Add, Some(index)) => {
                self.bump(index);
                return (StoreOutcome::NotStored, None);
            }
            (StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, None)
                if !conditions.vivify_on_miss =>
            {
                return (StoreOutcome::NotStored, None);
            }
            (StoreMode::Cas(_), None) => {
                self.stats.cas_misses += 1;
                return (StoreOutcome::NotFound, None);
            }
            (StoreMode::Cas(unique), Some(index)) if self.items[index as usize].cas != unique => {
                let old = &self.items[index as usize];
                if !conditions.stale_if_older || unique > old.cas {
                    self.stats.cas_badval += 1;
                    return (StoreOutcome::Exists, None);
                }
                // memcached's do_store_item: stored, but still stale, its TTL and win
                // kept.
                stale = Some(STALE | (old.state & WIN_SENT));
                (flags, old.expires_at, join(&[key.bytes(), value]))
            }
            (StoreMode::Append | StoreMode::Prepend, Some(index))
                if conditions.append_cas.is_some_and(|unique| {
                    unique != 0 && unique != self.items[index as usize].cas
                }) =>
            {
                return (StoreOutcome::Exists, None);
            }
            (StoreMode::Append | StoreMode::Prepend, Some(index)) => {
                let old = &self.items[index as usize];
                // memcached's do_store_item: a combined item it cannot store (too large
                // or no memory for it) is NOT_STORED, counted nowhere.
                let combined = key.bytes().len() + old.value().len() + value.len();
                if old.value().len() + value.len() > self.config.max_value
                    || !self.fits_alone(combined)
                {
                    return (StoreOutcome::NotStored, None);
                }
                let data = if mode == StoreMode::Append {
                    join(&[key.bytes(), old.value(), value])
                } else {
                    join(&[key.bytes(), value, old.value()])
                };
                (old.flags, old.expires_at, data)
            }
            // An append or prepend here missed under `vivify_on_miss`: memcached's
            // NREAD_APPENDVIV and NREAD_PREPENDVIV, stored as an add would be.
            (StoreMode::Set | StoreMode::Add | StoreMode::Replace | StoreMode::Cas(_), _)
            | (StoreMode::Append | StoreMode::Prepend, None) => (
                flags,
                self.item_expiry(expiry(exptime, now)),
                join(&[key.bytes(), value]),
            ),
        };
        if let StoreMode::Cas(_) = mode {
            self.stats.cas_hits += 1;
        }
        if let Some(index) = present {
            self.unlink(index, hash);
        }
        let cas = self.cas_of_change(conditions.new_cas);
        let index = self.link(data, key, hash, flags, expires_at, cas, now);
        if let Some(state) = stale {
            self.items[index as usize].state = state;
        }
        self.stats.total_items += 1;
        (StoreOutcome::Stored, Some(index))
    }

    /// memcached's `item_alloc` step of a storage command whose value is within the item
    /// size limit, before it looks at the data block or the mode: an item the budget
    /// cannot hold alone is out of memory whatever the cache holds and the mode (a failed
    /// `set` does not leave the old value, as for a value too large: the key's old item is
    /// removed when `unlink_on_refusal`) and is not counted as a storage command; any
    /// other is counted in `cmd_set`.
    fn make_item(
        &mut self,
        key: Key<'_>,
        value_len: usize,
        unlink_on_refusal: bool,
        now: u64,
    ) -> Result<(), StoreOutcome> {
        if !self.fits_alone(key.bytes().len() + value_len) {
            let refusal = StoreOutcome::NoMemory;
            return Err(self.refuse_for_size(key, refusal, unlink_on_refusal, now));
        }
        self.flush_if_due(now);
        self.stats.cmd_set += 1;
        Ok(())
    }

    /// A storage command whose data block (`value_len` bytes announced, within the item
    /// size limit) does not end with `\r\n`, refused where memcached refuses it, once its
    /// item is made: counted in `cmd_set` and [`StoreOutcome::BadDataChunk`], or out of
    /// memory as [`store`](Self::store) would be if the budget cannot hold the item alone.
    pub fn refuse_bad_chunk(
        &mut self,
        mode: StoreMode,
        key: Key<'_>,
        value_len: usize,
        now: u64,
    ) -> StoreOutcome {
        let unlink = mode == StoreMode::Set;
        self.make_item(key, value_len, unlink, now)
            .err()
            .unwrap_or(StoreOutcome::BadDataChunk)
    }

    /// Counts a storage command refused because its value is above the item size limit
    /// (the parser refuses those before their data arrives); a refused `set` also removes
    /// the key's old item, as memcached does, so that a stale value does not stay readable.
    pub fn refuse_too_large(&mut self, mode: StoreMode, key: Key<'_>, now: u64) -> StoreOutcome {
        self.refuse_for_size(key, StoreOutcome::TooLarge, mode == StoreMode::Set, now)
    }

    /// Counts a store refused for its size, `refusal` ([`StoreOutcome::TooLarge`] or
    /// [`StoreOutcome::NoMemory`]), removing the key's old item when `unlink_old`; the
    /// refusal.
    fn refuse_for_size(
        &mut self,
        key: Key<'_>,
        refusal: StoreOutcome,
        unlink_old: bool,
        now: u64,
    ) -> StoreOutcome {
        self.flush_if_due(now);
        if refusal == StoreOutcome::TooLarge {
            self.stats.store_too_large += 1;
        } else {
            self.stats.store_no_memory += 1;
        }
        if unlink_old {
            let hash = self.hash(key);
            if let Some(index) = self.live(key, hash, now) {
                self.unlink(index, hash);
            }
        }
        refusal
    }

    /// `delete`: removes `key`'s live item; false if there is none.
    pub fn delete(&mut self, key: Key<'_>, now: u64) -> bool {
        self.flush_if_due(now);
        let hash = self.hash(key);
        match self.live(key, hash, now) {
            Some(index) => {
                self.stats.delete_hits += 1;
                self.unlink(index, hash);
                true
            }
            None => {
                self.stats.delete_misses += 1;
                false
            }
        }
    }

    /// `incr` (`decrement` false: wraps at 2^64) or `decr` (stops at 0) by `delta`.
    pub fn add_delta(
        &mut self,
        key: Key<'_>,
        delta: u64,
        decrement: bool,
        now: u64,
    ) -> DeltaOutcome {
        self.flush_if_due(now);
        let hash = self.hash(key);
        let Some(index) = self.live(key, hash, now) else {
            self.count_delta_miss(decrement);
            return DeltaOutcome::NotFound;
        };
        match self.change_number(index, hash, key, delta, decrement, now) {
            Some((number, _)) => DeltaOutcome::Value(number),
            None => DeltaOutcome::NonNumeric,
        }
    }

    /// Counts an `incr` or `decr` of a missing key.
    fn count_delta_miss(&mut self, decrement: bool) {
        if decrement {
            self.stats.decr_misses += 1;
        } else {
            self.stats.incr_misses += 1;
        }
    }

    /// `incr` or `decr` of the live item at `index`: its value replaced by the new
    /// number in a new item (flags, expiry, state and last access kept: memcached changes
    /// the number in place), the number and the new item's slab index; `None` (nothing
    /// changed) when the value is not a number.
    fn change_number(
        &mut self,
        index: u32,
        hash: u64,
        key: Key<'_>,
        delta: u64,
        decrement: bool,
        now: u64,
    ) -> Option<(u64, u32)> {
        let old = &self.items[index as usize];
        let number = c_unsigned(old.value())?;
        let number = if decrement {
            self.stats.decr_hits += 1;
            number.saturating_sub(delta)
        } else {
            self.stats.incr_hits += 1;
            number.wrapping_add(delta)
        };
        let mut digits = [0u8; 20];
        let data = join(&[key.bytes(), decimal(number, &mut digits)]);
        let (flags, expires_at) = (old.flags, old.expires_at);
        let (state, accessed_at) = (old.state, old.accessed_at);
        self.unlink(index, hash);
        let cas = self.cas_of_change(None);
        let index = self.link(data, key, hash, flags, expires_at, cas, now);
        let item = &mut self.items[index as usize];
        (item.state, item.accessed_at) = (state, accessed_at);
        Some((number, index))
    }

    /// `flush_all`: invalidates every item now (`delay` 0 or negative) or at the time
    /// `delay` names (relative seconds or a Unix time, as an exptime); a later call
    /// replaces an earlier delayed one.
    pub fn flush_all(&mut self, delay: i64, now: u64) {
        self.stats.cmd_flush += 1;
        if delay <= 0 {
            self.flush_at = None;
            self.clear();
        } else {
            self.flush_at = Some(expiry(delay, now));
            self.flush_if_due(now);
        }
    }

    /// The counters at `now`.
    pub fn stats(&self, now: u64) -> Stats {
        Stats {
            uptime: now.saturating_sub(self.created_at),
            time: now,
            curr_items: self.curr_items,
            bytes: self.bytes() as u64,
            limit_maxbytes: self.config.max_bytes as u64,
            ..self.stats
        }
    }

    /// `stats reset`: zeroes the event counters (items and bytes stay).
    pub fn reset_stats(&mut self) {
        self.stats = Stats::default();
    }

    /// Bytes held, by the budget's count (see [`Stats::bytes`]): what the items cost,
    /// their keys, values and shares of the index, and the whole slab, entries no item
    /// holds included.
    pub fn bytes(&self) -> usize {
        self.bytes + self.items.capacity() * SLAB_ENTRY
    }

    /// The slab entries adding an item grows the slab by: none while one is free.
    fn slab_growth(&self) -> usize {
        if self.free == NIL && self.items.len() == self.items.capacity() {
            (self.items.capacity() / SLAB_GROWTH_DIVISOR).max(1)
        } else {
            0
        }
    }

    /// Whether an item of `data_len` bytes (key and value) fits the budget alone, in an
    /// empty cache: one that does not is out of memory whatever the cache holds.
    fn fits_alone(&self, data_len: usize) -> bool {
        data_len + ITEM_OVERHEAD <= self.config.max_bytes
    }

    /// Whether an item costing `cost` beside its slab entry fits in the budget now,
    /// with the slab growth adding it takes.
    fn fits(&self, cost: usize) -> bool {
        self.bytes() + cost + self.slab_growth() * SLAB_ENTRY <= self.config.max_bytes
    }

    /// The bytes the allocations of the cache hold: values, keys, slab and index.
    #[cfg(test)]
    pub(crate) fn allocated(&self) -> usize {
        let data: usize = self.items.iter().map(|item| item.data.len()).sum();
        data + self.items.capacity() * SLAB_ENTRY + self.table.allocated()
    }

    /// What the items cost by the budget's count, the slab apart.
    #[cfg(test)]
    pub(crate) fn item_bytes(&self) -> usize {
        self.bytes
    }

    /// The items' keys from the least recently used, once checked that the LRU list
    /// runs the same both ways, that the index finds every item at its slot and that the
    /// free list, chained both ways, holds every other slab entry.
    #[cfg(test)]
    pub(crate) fn keys_oldest_first(&self) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        let (mut at, mut before) = (self.oldest, NIL);
        while at != NIL {
            let item = &self.items[at as usize];
            assert_eq!(item.older, before, "the LRU list's links at {at}");
            let key = Key::new(item.key()).expect("an item's key");
            assert_eq!(
                self.find(key, self.hash(key)),
                Some(at),
                "the index of {at}"
            );
            keys.push(item.key().to_vec());
            (before, at) = (at, item.newer);
        }
        assert_eq!(before, self.newest, "the LRU list's newest");
        assert_eq!(keys.len() as u64, self.curr_items, "the items' count");
        let (mut free, mut at, mut before) = (0, self.free, NIL);
        while at != NIL {
            let entry = &self.items[at as usize];
            assert!(entry.data.is_empty(), "an item in the free list at {at}");
            assert_eq!(entry.newer, before, "the free list's links at {at}");
            free += 1;
            (before, at) = (at, entry.older);
        }
        assert_eq!(free + keys.len(), self.items.len(), "the free entries");
        keys
    }

    /// The Unix second the items' times count from: [`EPOCH_LEAD`] before the cache's
    /// creation (at the earliest the Unix epoch: 0 for a cache made before 2038 or on a
    /// clock counting from boot).
    fn epoch(&self) -> u64 {
        self.created_at.saturating_sub(EPOCH_LEAD)
    }

    /// Unix second `second` counted from the epoch (past 2^32 - 1 seconds after it, that).
    fn since_epoch(&self, second: u64) -> u32 {
        u32::try_from(second.saturating_sub(self.epoch())).unwrap_or(u32::MAX)
    }

    /// An expiry, a Unix second (0: never), as an item keeps it: 0 for never, else at
    /// least 1, so that a second before the epoch is still a time.
    fn item_expiry(&self, second: u64) -> u32 {
        match second {
            0 => 0,
            second => self.since_epoch(second).max(1),
        }
    }

    /// An item's expiry as a Unix second (0: never).
    fn unix_expiry(&self, expires_at: u32) -> u64 {
        match expires_at {
            0 => 0,
            since_epoch => self.epoch() + u64::from(since_epoch),
        }
    }

    fn hash(&self, key: Key<'_>) -> u64 {
        hash(self.config.hash_seed, key.bytes())
    }

    fn find(&self, key: Key<'_>, hash: u64) -> Option<u32> {
        self.table.find(hash, |index| {
            self.items[index as usize].key() == key.bytes()
        })
    }

    /// The item of `key` if it is live; an expired one is removed on the way.
    fn live(&mut self, key: Key<'_>, hash: u64, now: u64) -> Option<u32> {
        self.find_live(key, hash, now).ok()
    }

    /// The item of `key` if it is live, else why there is none; an expired one is
    /// removed on the way.
    fn find_live(&mut self, key: Key<'_>, hash: u64, now: u64) -> Result<u32, Missing> {
        let index = self.find(key, hash).ok_or(Missing::Absent)?;
        if self.items[index as usize].is_expired(self.since_epoch(now)) {
            self.stats.reclaimed += 1;
            self.unlink(index, hash);
            return Err(Missing::Expired);
        }
        Ok(index)
    }

    fn touch_item(&mut self, key: Key<'_>, exptime: i64, now: u64) -> Option<u32> {
        self.flush_if_due(now);
        self.stats.cmd_touch += 1;
        let hash = self.hash(key);
        let Some(index) = self.live(key, hash, now) else {
            self.stats.touch_misses += 1;
            return None;
        };
        self.stats.touch_hits += 1;
        self.items[index as usize].expires_at = self.item_expiry(expiry(exptime, now));
        self.access(index, now);
        Some(index)
    }

    fn found(&self, index: u32) -> Found<'_> {
        let item = &self.items[index as usize];
        Found {
            value: item.value(),
            flags: item.flags,
            cas: item.cas,
        }
    }

    /// Carries out a delayed `flush_all` whose time has come.
    fn flush_if_due(&mut self, now: u64) {
        if self.flush_at.is_some_and(|at| at <= now) {
            self.flush_at = None;
            self.clear();
        }
    }

    /// Forgets every item, giving back the slab's and the index's room.
    fn clear(&mut self) {
        self.items = Vec::new();
        self.free = NIL;
        self.table.clear();
        self.newest = NIL;
        self.oldest = NIL;
        self.bytes = 0;
        self.curr_items = 0;
    }

    /// The cas unique the next change takes: `chosen` by the client (meta `E`), or else
    /// the next of the cache's own, not yet used up.
    fn next_cas(&self, chosen: Option<u64>) -> u64 {
        chosen.unwrap_or(self.last_cas + 1)
    }

    /// The cas unique of a change ([`Self::next_cas`]), the cache's own used up.
    fn cas_of_change(&mut self, chosen: Option<u64>) -> u64 {
        let cas = self.next_cas(chosen);
        if chosen.is_none() {
            self.last_cas = cas;
        }
        cas
    }

    /// Adds a new item with cas unique `cas` as the most recently used, evicting from
    /// the least recently used end until it fits (the caller checked it fits in an
    /// empty cache), and giving back the slab an emptied cache keeps if the item does not
    /// fit beside it; its slab index.
    #[allow(clippy::too_many_arguments)]
    fn link(
        &mut self,
        data: Box<[u8]>,
        key: Key<'_>,
        hash: u64,
        flags: u32,
        expires_at: u32,
        cas: u64,
        now: u64,
    ) -> u32 {
        let now = self.since_epoch(now);
        let cost = data.len() + INDEX_SHARE;
        while !self.fits(cost) && self.oldest != NIL {
            let victim = self.oldest;
            let item = &self.items[victim as usize];
            // An expired victim could not have been read anyway: not an eviction.
            if item.is_expired(now) {
                self.stats.reclaimed += 1;
            } else {
                self.stats.evictions += 1;
            }
            let victim_hash = hash_of(self.config.hash_seed, item);
            self.unlink(victim, victim_hash);
        }
        if !self.fits(cost) {
            // Nothing is left to evict: the small slab an emptied cache keeps is what
            // does not fit beside the item.
            self.clear();
        }
        let item = Item {
            data,
            expires_at,
            cas,
            flags,
            newer: NIL,
            older: self.newest,
            accessed_at: now,
            key_len: key.bytes().len() as u8,
            state: 0,
        };
        let index = if self.free == NIL {
            self.items.reserve_exact(self.slab_growth());
            self.items.push(item);
            (self.items.len() - 1) as u32
        } else {
            let index = self.free;
            self.take_free(index);
            self.items[index as usize] = item;
            index
        };
        if self.newest != NIL {
            self.items[self.newest as usize].newer = index;
        } else {
            self.oldest = index;
        }
        self.newest = index;
        self.table.insert(hash, index);
        self.bytes += cost;
        self.curr_items += 1;
        index
    }

    /// Removes an item from the table and the LRU list and frees its slot, then takes
    /// the compaction's next steps if it is due: other items may move, so no slab index
    /// taken before this call is used after it.
    fn unlink(&mut self, index: u32, hash: u64) {
        self.detach(index);
        self.table.remove(hash, index);
        let item = &mut self.items[index as usize];
        self.bytes -= item.cost_beside_its_entry();
        self.curr_items -= 1;
        item.data = Box::default();
        item.newer = NIL;
        item.older = self.free;
        if self.free != NIL {
            self.items[self.free as usize].newer = index;
        }
        self.free = index;
        if self.curr_items == 0 && self.items.capacity() > KEPT_SLAB_ENTRIES {
            // The slab's free entries are charged: with no item left, give a large
            // slab back (a small one is kept for the next items).
            self.clear();
        } else {
            self.compact();
        }
    }

    /// Takes the free slot `index` out of the free list.
    fn take_free(&mut self, index: u32) {
        let Item { newer, older, .. } = self.items[index as usize];
        match newer {
            NIL => self.free = older,
            newer => self.items[newer as usize].older = older,
        }
        if older != NIL {
            self.items[older as usize].newer = newer;
        }
    }

    /// While fewer than 1 / [`COMPACT_BELOW`] of a slab larger than
    /// [`KEPT_SLAB_ENTRIES`] holds items, frees its last entry up to
    /// [`COMPACTION_STEPS`] times (a free one dropped, an item moved into a free entry
    /// before it), and once no entry is free shrinks it to its items.
    fn compact(&mut self) {
        for _ in 0..COMPACTION_STEPS {
            let capacity = self.items.capacity();
            if capacity <= KEPT_SLAB_ENTRIES || self.curr_items as usize * COMPACT_BELOW >= capacity
            {
                return;
            }
            if self.free == NIL {
                self.items
                    .shrink_to(self.items.len().max(KEPT_SLAB_ENTRIES));
                return;
            }
            let last = (self.items.len() - 1) as u32;
            if self.items[last as usize].data.is_empty() {
                self.take_free(last);
            } else {
                let hole = self.free;
                self.take_free(hole);
                self.items.swap(hole as usize, last as usize);
                self.relocate(last, hole);
            }
            self.items.pop();
        }
    }

    /// Tells the item moved from slab index `from` to `to` its index and LRU neighbours.
    fn relocate(&mut self, from: u32, to: u32) {
        let item = &self.items[to as usize];
        let Item { newer, older, .. } = *item;
        let hash = hash_of(self.config.hash_seed, item);
        self.table.relocate(hash, from, to);
        match newer {
            NIL => self.newest = to,
            newer => self.items[newer as usize].older = to,
        }
        match older {
            NIL => self.oldest = to,
            older => self.items[older as usize].newer = to,
        }
    }

    /// A read of an item: marks it fetched and accessed now, and makes it the most
    /// recently used.
    fn access(&mut self, index: u32, now: u64) {
        let now = self.since_epoch(now);
        let item = &mut self.items[index as usize];
        item.state |= FETCHED;
        item.accessed_at = now;
        self.bump(index);
    }

    /// Makes an item the most recently used.
    fn bump(&mut self, index: u32) {
        if self.newest == index {
            return;
        }
        self.detach(index);
        let item = &mut self.items[index as usize];
        item.newer = NIL;
        item.older = self.newest;
        self.items[self.newest as usize].newer = index;
        self.newest = index;
    }

    /// Takes an item out of the LRU list.
    fn detach(&mut self, index: u32) {
        let Item { newer, older, .. } = self.items[index as usize];
        match newer {
            NIL => self.newest = older,
            newer => self.items[newer as usize].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            older => self.items[older as usize].newer = newer,
        }
    }
}

/// Why a key has no live item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Missing {
    /// None was stored, or it is gone.
    Absent,
    /// It had expired; the lookup removed it.
    Expired,
}

/// What a meta set asks of a storage command beyond the classic ones.
#[derive(Clone, Copy, Debug, Default)]
struct Conditions {
    /// An `append`/`prepend` stores only if the item's cas unique is this (when given and
    /// not 0: meta set's `C` in those modes).
    append_cas: Option<u64>,
    /// A `cas` whose unique is below the item's stores all the same, the item staying
    /// stale (meta set's `I`).
    stale_if_older: bool,
    /// The stored item's cas unique, chosen by the client (meta set's `E`).
    new_cas: Option<u64>,
    /// An `append`/`prepend` that finds no item stores the value as a new item (meta
    /// set's `N` in those modes).
    vivify_on_miss: bool,
    /// An item the budget cannot hold alone removes the key's old item whatever the
    /// mode (a meta set's refusal), not for `set` alone (a classic store's).
    refusal_unlinks: bool,
}

/// An item a storage command would make.
struct NewItem<'k, 'v> {
    key: Key<'k>,
    flags: u32,
    exptime: i64,
    value: &'v [u8],
}

/// memcached's reading of an exptime as the Unix second the item expires at: 0 never
/// expires (0 is returned), negative is already expired, up to 30 days is relative,
/// above is a Unix time.
pub(crate) fn expiry(exptime: i64, now: u64) -> u64 {
    match exptime {
        0 => 0,
        ..0 => 1,
        1..=RELATIVE_EXPTIME_MAX => now + exptime as u64,
        _ => exptime as u64,
    }
}

/// The hash of an item's key.
fn hash_of(seed: u64, item: &Item) -> u64 {
    hash(seed, item.key())
}

/// The pieces one after the other in one new allocation.
fn join(pieces: &[&[u8]]) -> Box<[u8]> {
    let mut data = Vec::with_capacity(pieces.iter().map(|piece| piece.len()).sum());
    for piece in pieces {
        data.extend_from_slice(piece);
    }
    data.into_boxed_slice()
}

/// `number` in decimal, written into `buffer`.
pub(crate) fn decimal(mut number: u64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = b'0' + (number % 10) as u8;
        number /= 10;
        if number == 0 {
            return &buffer[start..];
        }
    }
}
