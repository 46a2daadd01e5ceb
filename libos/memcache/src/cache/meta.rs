//! The cache's side of memcached 1.6's meta commands (`mg`, `ms`, `md`, `ma`, `me`): what
//! they read and change of an item beyond what the classic commands do, counted in the
//! `stats` counters of the classic command each replaces.

use super::{
    Cache, Conditions, FETCHED, ITEM_OVERHEAD, Key, Missing, NewItem, STALE, StoreMode,
    StoreOutcome, WIN_SENT, decimal, expiry, join,
};

/// A change of an item's expiry asked for by one of a meta command's flags (`T`, `N`), or
/// a threshold (`R`): `exptime` read as a storage command's, at `place`, the flag's index
/// among the command's flags. Changes and the TTLs reported apply in the flags' order, as
/// memcached applies them: a `t` before a `T` reports the TTL the item had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retime {
    /// The flag's index among the command's flags.
    pub place: u8,
    /// The exptime (memcached's are 32-bit).
    pub exptime: i32,
}

/// An item's expiry through a meta command: before it, and after each of its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// The Unix second it expired at before the command (0: never).
    before: u64,
    /// `T`: its place and the Unix second it sets.
    touch: Option<(u8, u64)>,
    /// `N` when the command created the item: its place and the Unix second it sets.
    vivify: Option<(u8, u64)>,
    /// The clock.
    now: u64,
}

impl Expiry {
    /// The expiry of an item the command found (`created` false) or made, with the
    /// command's `T` and `N` changes.
    fn new(
        before: u64,
        touch: Option<Retime>,
        vivify: Option<Retime>,
        created: bool,
        now: u64,
    ) -> Self {
        let at = |change: Retime| (change.place, expiry(change.exptime.into(), now));
        Self {
            before,
            touch: touch.map(at),
            vivify: vivify.filter(|_| created).map(at),
            now,
        }
    }

    /// The Unix second the item expires at (0: never) once the flags before `place` have
    /// applied.
    fn at(&self, place: u8) -> u64 {
        [self.touch, self.vivify]
            .into_iter()
            .flatten()
            .filter(|&(at, _)| at < place)
            .max_by_key(|&(at, _)| at)
            .map_or(self.before, |(_, second)| second)
    }

    /// The Unix second the item expires at after the command (0: never).
    fn after(&self) -> u64 {
        self.at(u8::MAX)
    }

    /// The item's remaining TTL in seconds once the flags before `place` have applied;
    /// `None` when it never expires (memcached's `-1`).
    pub fn ttl_at(&self, place: u8) -> Option<u64> {
        ttl_left(self.at(place), self.now)
    }
}

/// The TTL left at `now` of an item expiring at Unix second `expires_at` (0: never,
/// `None`).
fn ttl_left(expires_at: u64, now: u64) -> Option<u64> {
    match expires_at {
        0 => None,
        second => Some(second.saturating_sub(now)),
    }
}

/// What a meta get (`mg`) does besides reading the item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetaGet {
    /// `T`: a hit's new expiry (the hit is then counted as a touch; a miss is a get's).
    pub touch: Option<Retime>,
    /// `N`: on a miss, create an empty item with this expiry, and win it (`W`).
    pub vivify: Option<Retime>,
    /// `R`: win a hit (if no client has) whose expiry at this place is below this one's.
    pub recache: Option<Retime>,
    /// `u`: leave the item unread: not marked fetched, its last access and LRU place
    /// kept.
    pub no_bump: bool,
    /// `E`: the cas unique of an item `N` makes (else the cache's next).
    pub new_cas: Option<u64>,
}

/// An item a meta get found (or made), borrowed from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaHit<'a> {
    /// The value's bytes.
    pub value: &'a [u8],
    /// The client's 32-bit flags.
    pub flags: u32,
    /// The cas unique.
    pub cas: u64,
    /// Its expiry through the command (`t`).
    pub expiry: Expiry,
    /// Whether it had been read before the command (`h`).
    pub hit_before: bool,
    /// Seconds since its last read (or store) before the command (`l`).
    pub idle: u64,
    /// A client had already won it before the command (`Z`).
    pub win_sent: bool,
    /// It is stale (`X`).
    pub stale: bool,
    /// This client won it (`W`): it was created by `N`, or `R`'s threshold was met, or
    /// it is stale, and no client had won it.
    pub won: bool,
}

/// What a meta set (`ms`) stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaStore {
    /// `M`: set, add, replace, append or prepend (not [`StoreMode::Cas`]: `C` is
    /// `compare_cas`).
    pub mode: StoreMode,
    /// `C`: store only if the item's cas unique is this (a set or replace is then a
    /// `cas`; an add ignores it; an append or prepend checks it unless it is 0, as
    /// memcached does).
    pub compare_cas: Option<u64>,
    /// `F`: the client's flags.
    pub flags: u32,
    /// `T`: the exptime.
    pub exptime: i64,
    /// `N` in append or prepend mode: on a miss, store the value as a new item with
    /// this exptime, which replaces `T`'s (memcached's autovivifying append and
    /// prepend); ignored in the other modes, as memcached ignores it.
    pub vivify: Option<i64>,
    /// `I` with `C`: a set or replace whose `C` is below the item's cas unique is stored
    /// all the same, the item staying stale with its TTL and win (a stale value may be
    /// recached by a client that read it before it was invalidated).
    pub invalidate: bool,
    /// `E`: the stored item's cas unique (else the cache's next).
    pub new_cas: Option<u64>,
}

/// What a meta set did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaStored {
    /// Stored, or why not.
    pub outcome: StoreOutcome,
    /// The stored item's cas unique (`c`; 0 when nothing was stored).
    pub cas: u64,
    /// The stored item's value length, the joined one after an append or prepend; the
    /// value sent when nothing was stored (`s`, as memcached reports it).
    pub size: usize,
}

/// What a meta delete (`md`) deletes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetaDelete {
    /// `C`: delete only if the item's cas unique is this.
    pub compare_cas: Option<u64>,
    /// `I`: rather than delete the item, mark it stale with a new cas unique; its next
    /// reader wins it (`W`).
    pub invalidate: bool,
    /// `T` with `I`: the stale item's new expiry.
    pub exptime: Option<i64>,
    /// `E` with `I`: the stale item's new cas unique (else the cache's next).
    pub new_cas: Option<u64>,
}

/// What a meta delete did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Deleted, or marked stale (`HD`).
    Deleted,
    /// No such item (`NF`).
    NotFound,
    /// The cas unique did not match (`EX`).
    Exists,
}

/// What a meta arithmetic (`ma`) does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaDelta {
    /// `D`: the amount.
    pub delta: u64,
    /// `M` `D` or `-`: decrement (stopping at 0) rather than increment (wrapping).
    pub decrement: bool,
    /// `C`: change only if the item's cas unique is this (0: no check, as memcached).
    pub compare_cas: Option<u64>,
    /// `T`: the changed item's new expiry.
    pub touch: Option<Retime>,
    /// `N`: on a miss, create the item with value `initial` and this expiry.
    pub vivify: Option<Retime>,
    /// `J`: the value of an item `N` creates.
    pub initial: u64,
    /// `E`: the changed or created item's cas unique (else the cache's next).
    pub new_cas: Option<u64>,
}

/// What a meta arithmetic did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaDeltaOutcome {
    /// The item's new value (or the value it was created with).
    Value {
        /// The number.
        number: u64,
        /// The item's new cas unique.
        cas: u64,
        /// Its expiry through the command (`t`).
        expiry: Expiry,
    },
    /// No such item, and none created (`NF`).
    NotFound,
    /// The cas unique did not match (`EX`).
    Exists,
    /// The value is not a decimal 64-bit number.
    NonNumeric,
    /// The item `N` asked for does not fit in the whole budget.
    NoMemory,
}

/// An item as meta debug (`me`) shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// Remaining TTL in seconds; `None` for never.
    pub ttl: Option<u64>,
    /// Seconds since its last read (or store).
    pub idle: u64,
    /// The cas unique.
    pub cas: u64,
    /// Whether it has been read since it was stored.
    pub fetched: bool,
    /// The bytes it costs against the budget: key, value and [`ITEM_OVERHEAD`].
    pub size: usize,
}

impl Cache {
    /// `mg`: hands `answer` the live item of `key` (or, on a miss with
    /// [`MetaGet::vivify`], the new empty one it makes), as the command leaves it, or
    /// `None`; `answer` answers it and says whether the answer was taken. Only then is
    /// the item changed as `get` asks (made, touched, won, read): an answer its output
    /// had no room for (and dropped) leaves the item as it was, so that no client is
    /// told of a win it never sees and the item stays winnable. As memcached's process_mget_command counts it: an
    /// item returned (one it made too) is a `get` hit, or with `T` a `touch` hit; a miss
    /// is a `get` miss, with `T` too (memcached counts a touch only once `T` has changed
    /// an item), and an expired item found is counted in `get_expired` with `T` too.
    pub fn meta_get(
        &mut self,
        key: Key<'_>,
        get: &MetaGet,
        now: u64,
        answer: &mut dyn FnMut(Option<MetaHit<'_>>) -> bool,
    ) {
        self.flush_if_due(now);
        let touch = get.touch.is_some();
        let hash = self.hash(key);
        let found = self.find_live(key, hash, now);
        if found == Err(Missing::Expired) {
            self.stats.get_expired += 1;
        }
        // `None`: the item `N` makes once the answer is taken.
        let index = match found.ok() {
            Some(index) => Some(index),
            None if get.vivify.is_some() && self.fits_alone(key.bytes().len()) => None,
            None => {
                self.stats.cmd_get += 1;
                self.stats.get_misses += 1;
                answer(None);
                return;
            }
        };
        // An item `N` makes counts as a hit, as memcached counts it.
        if touch {
            self.stats.cmd_touch += 1;
            self.stats.touch_hits += 1;
        } else {
            self.stats.cmd_get += 1;
            self.stats.get_hits += 1;
        }
        let created = index.is_none();
        let now_at = self.since_epoch(now);
        // What the item was before the command: a made one is new, empty and unread.
        let (before, state, idle, value, flags, cas) = match index {
            Some(index) => {
                let item = &self.items[index as usize];
                let before = self.unix_expiry(item.expires_at);
                let idle = item.idle(now_at);
                (before, item.state, idle, item.value(), item.flags, item.cas)
            }
            // The cas unique `cas_of_change` gives it.
            None => (0, 0, 0, &[][..], 0, self.next_cas(get.new_cas)),
        };
        let expiry = Expiry::new(before, get.touch, get.vivify, created, now);
        let win_sent = state & WIN_SENT != 0;
        let stale = state & STALE != 0;
        let recache = get.recache.is_some_and(|recache| {
            let at = expiry.at(recache.place);
            !created && at != 0 && at < super::expiry(recache.exptime.into(), now)
        });
        let won = created || ((recache || stale) && !win_sent);
        let taken = answer(Some(MetaHit {
            value,
            flags,
            cas,
            expiry,
            hit_before: state & FETCHED != 0,
            idle,
            win_sent,
            stale,
            won,
        }));
        if !taken {
            return;
        }
        let index = index.unwrap_or_else(|| {
            let cas = self.cas_of_change(get.new_cas);
            self.stats.total_items += 1;
            self.link(key.bytes().into(), key, hash, 0, 0, cas, now)
        });
        let expires_at = self.item_expiry(expiry.after());
        let item = &mut self.items[index as usize];
        item.expires_at = expires_at;
        if won {
            item.state |= WIN_SENT;
        }
        if !get.no_bump {
            self.access(index, now);
        }
    }

    /// `ms`: stores `value` under `key` as `store` asks; what was done, with the stored
    /// item's cas unique and size. An item that cannot be made (its
    /// value above the item size limit, or key and value alone above the budget) is
    /// refused before the mode is looked at, and the key's old item removed whatever the
    /// mode, as memcached's meta set does (a classic store removes it for `set` only).
    pub fn meta_store(
        &mut self,
        key: Key<'_>,
        store: &MetaStore,
        value: &[u8],
        now: u64,
    ) -> MetaStored {
        let refused = |outcome| MetaStored {
            outcome,
            cas: 0,
            size: value.len(),
        };
        if value.len() > self.config.max_value {
            return refused(self.meta_refuse_too_large(key, now));
        }
        let mode = match (store.mode, store.compare_cas) {
            (StoreMode::Set | StoreMode::Replace, Some(unique)) => StoreMode::Cas(unique),
            (mode, _) => mode,
        };
        let vivify = store
            .vivify
            .filter(|_| matches!(mode, StoreMode::Append | StoreMode::Prepend));
        let item = NewItem {
            key,
            flags: store.flags,
            exptime: vivify.unwrap_or(store.exptime),
            value,
        };
        let conditions = Conditions {
            append_cas: store.compare_cas,
            stale_if_older: store.invalidate,
            new_cas: store.new_cas,
            refusal_unlinks: true,
            vivify_on_miss: vivify.is_some(),
        };
        match self.store_item(mode, conditions, item, now) {
            (outcome, Some(index)) => {
                let item = &self.items[index as usize];
                MetaStored {
                    outcome,
                    cas: item.cas,
                    size: item.value().len(),
                }
            }
            (outcome, None) => refused(outcome),
        }
    }

    /// `ms` of a value above the item size limit (its data block skipped unread): counted,
    /// and the key's old item removed in every mode, as memcached's meta set does.
    pub fn meta_refuse_too_large(&mut self, key: Key<'_>, now: u64) -> StoreOutcome {
        self.refuse_for_size(key, StoreOutcome::TooLarge, true, now)
    }

    /// `md`: removes (or marks stale) `key`'s live item as `delete` asks; counted as a
    /// `delete` (a cas mismatch as a miss, as memcached counts it; marking stale not at
    /// all).
    pub fn meta_delete(&mut self, key: Key<'_>, delete: &MetaDelete, now: u64) -> DeleteOutcome {
        self.flush_if_due(now);
        let hash = self.hash(key);
        let Some(index) = self.live(key, hash, now) else {
            self.stats.delete_misses += 1;
            return DeleteOutcome::NotFound;
        };
        if delete
            .compare_cas
            .is_some_and(|unique| unique != self.items[index as usize].cas)
        {
            self.stats.delete_misses += 1;
            return DeleteOutcome::Exists;
        }
        if delete.invalidate {
            let cas = self.cas_of_change(delete.new_cas);
            let expires_at = delete
                .exptime
                .map(|exptime| self.item_expiry(expiry(exptime, now)));
            let item = &mut self.items[index as usize];
            item.state = (item.state | STALE) & !WIN_SENT;
            item.cas = cas;
            if let Some(expires_at) = expires_at {
                item.expires_at = expires_at;
            }
            return DeleteOutcome::Deleted;
        }
        self.stats.delete_hits += 1;
        self.unlink(index, hash);
        DeleteOutcome::Deleted
    }

    /// `ma`: `incr` or `decr` of `key`'s live item as `delta` asks (or, on a miss with
    /// [`MetaDelta::vivify`], a new item of value [`MetaDelta::initial`], not changed by
    /// the delta); counted as the `incr` or `decr` it replaces.
    pub fn meta_delta(&mut self, key: Key<'_>, delta: &MetaDelta, now: u64) -> MetaDeltaOutcome {
        self.flush_if_due(now);
        let hash = self.hash(key);
        let (number, index, before, created) = match self.live(key, hash, now) {
            None => {
                if delta.vivify.is_none() {
                    self.count_delta_miss(delta.decrement);
                    return MetaDeltaOutcome::NotFound;
                }
                let mut digits = [0u8; 20];
                let data = join(&[key.bytes(), decimal(delta.initial, &mut digits)]);
                if !self.fits_alone(data.len()) {
                    return MetaDeltaOutcome::NoMemory;
                }
                let cas = self.cas_of_change(delta.new_cas);
                let index = self.link(data, key, hash, 0, 0, cas, now);
                self.stats.total_items += 1;
                (delta.initial, index, 0, true)
            }
            Some(index) => {
                let item = &self.items[index as usize];
                if delta
                    .compare_cas
                    .is_some_and(|unique| unique != 0 && unique != item.cas)
                {
                    return MetaDeltaOutcome::Exists;
                }
                let before = self.unix_expiry(item.expires_at);
                let changed =
                    self.change_number(index, hash, key, delta.delta, delta.decrement, now);
                let Some((number, index)) = changed else {
                    return MetaDeltaOutcome::NonNumeric;
                };
                (number, index, before, false)
            }
        };
        let expiry = Expiry::new(before, delta.touch, delta.vivify, created, now);
        let expires_at = self.item_expiry(expiry.after());
        let item = &mut self.items[index as usize];
        item.expires_at = expires_at;
        if let Some(cas) = delta.new_cas {
            // memcached's too: the change took the next cas unique, which `E` replaces.
            item.cas = cas;
        }
        MetaDeltaOutcome::Value {
            number,
            cas: item.cas,
            expiry,
        }
    }

    /// `me`: `key`'s live item as it is, neither read nor counted.
    pub fn inspect(&mut self, key: Key<'_>, now: u64) -> Option<Inspection> {
        self.flush_if_due(now);
        let hash = self.hash(key);
        let index = self.live(key, hash, now)?;
        let item = &self.items[index as usize];
        Some(Inspection {
            ttl: ttl_left(self.unix_expiry(item.expires_at), now),
            idle: item.idle(self.since_epoch(now)),
            cas: item.cas,
            fetched: item.state & FETCHED != 0,
            size: item.data.len() + ITEM_OVERHEAD,
        })
    }
}
