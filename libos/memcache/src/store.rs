//! What a request runs on: one [`Cache`], or [`Shards`] of caches shared by cores.

use alloc::vec::Vec;

use crate::cache::{
    Cache, Config, DeleteOutcome, DeltaOutcome, Found, Inspection, Key, MetaDelete, MetaDelta,
    MetaDeltaOutcome, MetaGet, MetaHit, MetaStore, MetaStored, Stats, StoreMode, StoreOutcome,
};
use crate::table::hash;

/// The cache operations the protocol's commands run ([`Session`](crate::Session) takes
/// any of them).
pub trait Store {
    /// The largest value accepted.
    fn max_value(&self) -> usize;
    /// `get`/`gets` (`exptime` `None`) or `gat`/`gats`: hands the live item of `key` to
    /// `found`, if there is one.
    fn get(
        &mut self,
        key: Key<'_>,
        exptime: Option<i64>,
        now: u64,
        found: &mut dyn FnMut(Found<'_>),
    );
    /// A storage command ([`Cache::store`]).
    #[allow(clippy::too_many_arguments)]
    fn store(
        &mut self,
        mode: StoreMode,
        key: Key<'_>,
        flags: u32,
        exptime: i64,
        value: &[u8],
        now: u64,
    ) -> StoreOutcome;
    /// A storage command whose value was too large ([`Cache::refuse_too_large`]).
    fn refuse_too_large(&mut self, mode: StoreMode, key: Key<'_>, now: u64) -> StoreOutcome;
    /// A storage command whose data block did not end with `\r\n`
    /// ([`Cache::refuse_bad_chunk`]).
    fn refuse_bad_chunk(
        &mut self,
        mode: StoreMode,
        key: Key<'_>,
        value_len: usize,
        now: u64,
    ) -> StoreOutcome;
    /// `delete`.
    fn delete(&mut self, key: Key<'_>, now: u64) -> bool;
    /// `incr` / `decr`.
    fn add_delta(&mut self, key: Key<'_>, delta: u64, decrement: bool, now: u64) -> DeltaOutcome;
    /// `touch`.
    fn touch(&mut self, key: Key<'_>, exptime: i64, now: u64) -> bool;
    /// `flush_all`.
    fn flush_all(&mut self, delay: i64, now: u64);
    /// `stats`' counters.
    fn stats(&self, now: u64) -> Stats;
    /// `stats reset`.
    fn reset_stats(&mut self);
    /// `mg` ([`Cache::meta_get`]): hands what it found (or makes) to `found`, which
    /// answers it and says whether the answer was taken (the item is changed only then).
    fn meta_get(
        &mut self,
        key: Key<'_>,
        get: &MetaGet,
        now: u64,
        found: &mut dyn FnMut(Option<MetaHit<'_>>) -> bool,
    );
    /// `ms` ([`Cache::meta_store`]).
    fn meta_store(&mut self, key: Key<'_>, store: &MetaStore, value: &[u8], now: u64)
    -> MetaStored;
    /// `ms` of a value above the item size limit ([`Cache::meta_refuse_too_large`]).
    fn meta_refuse_too_large(&mut self, key: Key<'_>, now: u64) -> StoreOutcome;
    /// `md` ([`Cache::meta_delete`]).
    fn meta_delete(&mut self, key: Key<'_>, delete: &MetaDelete, now: u64) -> DeleteOutcome;
    /// `ma` ([`Cache::meta_delta`]).
    fn meta_delta(&mut self, key: Key<'_>, delta: &MetaDelta, now: u64) -> MetaDeltaOutcome;
    /// `me` ([`Cache::inspect`]).
    fn inspect(&mut self, key: Key<'_>, now: u64) -> Option<Inspection>;
}

impl Store for Cache {
    fn max_value(&self) -> usize {
        self.config().max_value
    }
    fn get(
        &mut self,
        key: Key<'_>,
        exptime: Option<i64>,
        now: u64,
        found: &mut dyn FnMut(Found<'_>),
    ) {
        let item = match exptime {
            None => Cache::get(self, key, now),
            Some(exptime) => self.get_and_touch(key, exptime, now),
        };
        if let Some(item) = item {
            found(item);
        }
    }
    fn store(
        &mut self,
        mode: StoreMode,
        key: Key<'_>,
        flags: u32,
        exptime: i64,
        value: &[u8],
        now: u64,
    ) -> StoreOutcome {
        Cache::store(self, mode, key, flags, exptime, value, now)
    }
    fn refuse_too_large(&mut self, mode: StoreMode, key: Key<'_>, now: u64) -> StoreOutcome {
        Cache::refuse_too_large(self, mode, key, now)
    }
    fn refuse_bad_chunk(
        &mut self,
        mode: StoreMode,
        key: Key<'_>,
        value_len: usize,
        now: u64,
    ) -> StoreOutcome {
        Cache::refuse_bad_chunk(self, mode, key, value_len, now)
    }
    fn delete(&mut self, key: Key<'_>, now: u64) -> bool {
        Cache::delete(self, key, now)
    }
    fn add_delta(&mut self, key: Key<'_>, delta: u64, decrement: bool, now: u64) -> DeltaOutcome {
        Cache::add_delta(self, key, delta, decrement, now)
    }
    fn touch(&mut self, key: Key<'_>, exptime: i64, now: u64) -> bool {
        Cache::touch(self, key, exptime, now)
    }
    fn flush_all(&mut self, delay: i64, now: u64) {
        Cache::flush_all(self, delay, now)
    }
    fn stats(&self, now: u64) -> Stats {
        Cache::stats(self, now)
    }
    fn reset_stats(&mut self) {
        Cache::reset_stats(self)
    }
    fn meta_get(
        &mut self,
        key: Key<'_>,
        get: &MetaGet,
        now: u64,
        found: &mut dyn FnMut(Option<MetaHit<'_>>) -> bool,
    ) {
        Cache::meta_get(self, key, get, now, found)
    }
    fn meta_store(
        &mut self,
        key: Key<'_>,
        store: &MetaStore,
        value: &[u8],
        now: u64,
    ) -> MetaStored {
        Cache::meta_store(self, key, store, value, now)
    }
    fn meta_refuse_too_large(&mut self, key: Key<'_>, now: u64) -> StoreOutcome {
        Cache::meta_refuse_too_large(self, key, now)
    }
    fn meta_delete(&mut self, key: Key<'_>, delete: &MetaDelete, now: u64) -> DeleteOutcome {
        Cache::meta_delete(self, key, delete, now)
    }
    fn meta_delta(&mut self, key: Key<'_>, delta: &MetaDelta, now: u64) -> MetaDeltaOutcome {
        Cache::meta_delta(self, key, delta, now)
    }
    fn inspect(&mut self, key: Key<'_>, now: u64) -> Option<Inspection> {
        Cache::inspect(self, key, now)
    }
}

/// Mixed into the seed of the hash that picks a key's shard, so that it is not the
/// hash the shard's own table uses (the keys of one shard would then share their low
/// bits and crowd a fraction of its buckets).
const SHARD_SEED: u64 = 0x5348_4152_4453_2121;

/// A cache cut into shards by key hash, for serving from several cores at once: each
/// shard is a [`Cache`] (its own LRU, its own share of the byte budget) behind its own
/// lock, held for one command on one key. With many more shards than cores, two cores
/// rarely want the same shard at the same time. A key lives in one shard, so every
/// command on one key (`cas` included: its unique is checked against that key's item)
/// means what it means on one cache; `flush_all`, `stats` and `stats reset` go to every
/// shard. Used through `&Shards` ([`Store`] is implemented for the reference).
pub struct Shards {
    /// The caches.
    shards: Vec<spin::Mutex<Cache>>,
    /// Seeds the hash that picks a key's shard.
    seed: u64,
    /// The largest value accepted (every shard's): read on every request, so kept here
    /// rather than behind shard 0's lock.
    max_value: usize,
}

impl Shards {
    /// `count` shards (at least one) sharing `config`'s budget equally, their clocks at
    /// `now`.
    pub fn new(config: Config, count: usize, now: u64) -> Self {
        let count = count.max(1);
        let shard = Config {
            max_bytes: config.max_bytes / count,
            ..config
        };
        Self {
            shards: (0..count)
                .map(|_| spin::Mutex::new(Cache::new(shard, now)))
                .collect(),
            seed: config.hash_seed.rotate_left(32) ^ SHARD_SEED,
            max_value: config.max_value,
        }
    }

    /// How many shards.
    pub fn count(&self) -> usize {
        self.shards.len()
    }

    /// The shard `key` lives in.
    pub fn shard_of(&self, key: Key<'_>) -> usize {
        // The high half: the table's buckets use the low bits of the shard's own hash.
        ((hash(self.seed, key.bytes()) >> 32) % self.shards.len() as u64) as usize
    }

    /// Runs `call` on `key`'s shard.
    fn on<T>(&self, key: Key<'_>, call: impl FnOnce(&mut Cache) -> T) -> T {
        call(&mut self.shards[self.shard_of(key)].lock())
    }

    /// The counters of shard `index` at `now`.
    pub fn shard_stats(&self, index: usize, now: u64) -> Stats {
        self.shards[index].lock().stats(now)
    }
}

impl Store for &Shards {
    fn max_value(&self) -> usize {
        self.max_value
    }
    fn get(
        &mut self,
        key: Key<'_>,
        exptime: Option<i64>,
        now: u64,
        found: &mut dyn FnMut(Found<'_>),
    ) {
        self.on(key, |cache| Store::get(cache, key, exptime, now, found))
    }
    fn store(
        &mut self,
        mode: StoreMode,
        key: Key<'_>,
        flags: u32,
        exptime: i64,
        value: &[u8],
        now: u64,
    ) -> StoreOutcome {
        self.on(key, |cache| {
            cache.store(mode, key, flags, exptime, value, now)
        })
    }
    fn refuse_too_large(&mut self, mode: StoreMode, key: Key<'_>, now: u64) -> StoreOutcome {
        self.on(key, |cache| cache.refuse_too_large(mode, key, now))
    }
    fn refuse_bad_chunk(
        &mut self,
        mode: StoreMode,
        key: Key<'_>,
        value_len: usize,
        now: u64,
    ) -> StoreOutcome {
        self.on(key, |cache| {
            cache.refuse_bad_chunk(mode, key, value_len, now)
        })
    }
    fn delete(&mut self, key: Key<'_>, now: u64) -> bool {
        self.on(key, |cache| cache.delete(key, now))
    }
    fn add_delta(&mut self, key: Key<'_>, delta: u64, decrement: bool, now: u64) -> DeltaOutcome {
        self.on(key, |cache| cache.add_delta(key, delta, decrement, now))
    }
    fn touch(&mut self, key: Key<'_>, exptime: i64, now: u64) -> bool {
        self.on(key, |cache| cache.touch(key, exptime, now))
    }
    fn flush_all(&mut self, delay: i64, now: u64) {
        for shard in &self.shards {
            shard.lock().flush_all(delay, now);
        }
    }
    /// The shards' counters summed; the clock, uptime and `cmd_flush` (which every
    /// shard counts once per `flush_all`) are the first shard's.
    fn stats(&self, now: u64) -> Stats {
        let mut sum = self.shard_stats(0, now);
        for index in 1..self.shards.len() {
            sum.add(&self.shard_stats(index, now));
        }
        sum
    }
    fn reset_stats(&mut self) {
        for shard in &self.shards {
            shard.lock().reset_stats();
        }
    }
    fn meta_get(
        &mut self,
        key: Key<'_>,
        get: &MetaGet,
        now: u64,
        found: &mut dyn FnMut(Option<MetaHit<'_>>) -> bool,
    ) {
        self.on(key, |cache| Store::meta_get(cache, key, get, now, found))
    }
    fn meta_store(
        &mut self,
        key: Key<'_>,
        store: &MetaStore,
        value: &[u8],
        now: u64,
    ) -> MetaStored {
        self.on(key, |cache| cache.meta_store(key, store, value, now))
    }
    fn meta_refuse_too_large(&mut self, key: Key<'_>, now: u64) -> StoreOutcome {
        self.on(key, |cache| cache.meta_refuse_too_large(key, now))
    }
    fn meta_delete(&mut self, key: Key<'_>, delete: &MetaDelete, now: u64) -> DeleteOutcome {
        self.on(key, |cache| cache.meta_delete(key, delete, now))
    }
    fn meta_delta(&mut self, key: Key<'_>, delta: &MetaDelta, now: u64) -> MetaDeltaOutcome {
        self.on(key, |cache| cache.meta_delta(key, delta, now))
    }
    fn inspect(&mut self, key: Key<'_>, now: u64) -> Option<Inspection> {
        self.on(key, |cache| cache.inspect(key, now))
    }
}
