//! Model-based test: random operation sequences run against the table and against a
//! plain model (a list of every entry ever made, with its range, rights, holder, parent,
//! state and whether it is alive). After each step the table's answer must match the
//! model's, and the table's listing, logs and stale handles must match too. Properties
//! this checks on every step: a revoked capability never works again, revoking or
//! returning a parent kills every descendant, derive never grows rights or range, a
//! slot never reuses a generation.

use std::collections::{HashSet, VecDeque};

use rexo_captable::*;
use rexo_testkit::Rng;

struct Kernel;

const N: usize = 12;
const OWNERS: usize = 4;
const LOG: usize = 4;
type Table = CapTable<Kernel, N, OWNERS, LOG>;

struct MEntry {
    cap: Cap,
    owner: OwnerId,
    kind: ResourceKind,
    start: u64,
    len: u64,
    rights: Rights,
    parent: Option<usize>,
    /// The mint its tree grew from: a minted root's own index, a derived entry's parent's
    /// origin, a split piece's original's.
    origin: usize,
    deadline: Option<u64>,
    alive: bool,
    /// Taken from its holder at a deadline the holder missed and recorded (while fewer
    /// than `N` such records are kept), until the holder's release.
    forfeited: bool,
    /// Whose request made it: the kernel for a mint, the caller for a derive or split.
    maker: OwnerId,
}

impl MEntry {
    /// Derived by another owner (or the kernel) and handed to its holder: not split or
    /// merged by it.
    fn lent(&self) -> bool {
        self.parent.is_some() && self.maker != self.owner
    }

    fn resource(&self) -> Resource {
        Resource::new(self.kind, self.start, self.len).expect("model ranges are valid")
    }
    fn end(&self) -> u64 {
        self.start + self.len
    }
}

#[derive(Default)]
struct MLog {
    records: VecDeque<Repossession>,
    dropped: u64,
}

struct Model {
    entries: Vec<MEntry>,
    logs: Vec<MLog>,
    seen: HashSet<(u32, u64)>,
    /// Owners started and not released since.
    running: Vec<bool>,
    /// Per owner, whether one of its forfeits found `N` records kept and was not recorded.
    forfeits_lost: Vec<bool>,
}

impl Model {
    fn alive(&self) -> usize {
        self.entries.iter().filter(|e| e.alive).count()
    }

    /// `i` and every live entry below it, in slot order (the order the table logs in).
    fn subtree(&self, i: usize) -> Vec<usize> {
        self.subtrees(&[i])
    }

    /// `roots` and every live entry below them, in slot order.
    fn subtrees(&self, roots: &[usize]) -> Vec<usize> {
        let mut out = roots.to_vec();
        let mut k = 0;
        while k < out.len() {
            let p = out[k];
            for (j, e) in self.entries.iter().enumerate() {
                if e.alive && e.parent == Some(p) {
                    out.push(j);
                }
            }
            k += 1;
        }
        out.sort_by_key(|&j| self.entries[j].cap.id().index());
        out
    }

    /// Kills `i` and its subtree, telling every holder but `quiet` `reason`.
    fn kill(&mut self, i: usize, reason: RevokeReason, quiet: Option<OwnerId>) -> usize {
        self.kill_with(&[i], quiet, |_, _| reason)
    }

    /// What the kernel's revocation or request naming entry `i` reaches: a live derived
    /// entry alone; a live root with every live root of its origin (the pieces of its
    /// mint); a minted root gone, the pieces of its mint that live on.
    fn reach(&self, i: usize) -> Result<Vec<usize>, CapError> {
        let e = &self.entries[i];
        if e.alive && e.parent.is_some() {
            return Ok(vec![i]);
        }
        if !e.alive && e.origin != i {
            return Err(CapError::Revoked);
        }
        let pieces: Vec<usize> = (0..self.entries.len())
            .filter(|&k| {
                let piece = &self.entries[k];
                piece.alive && piece.parent.is_none() && piece.origin == e.origin
            })
            .collect();
        if pieces.is_empty() {
            Err(CapError::Revoked)
        } else {
            Ok(pieces)
        }
    }

    /// Kills `i` and its subtree at the deadlines passed by `now`: `DeadlinePassed` for
    /// what a holder held from an entry of its own asked back by then down (`i`'s
    /// ancestors too, up to the top of the tree), else `AncestorTaken`.
    fn kill_expired(&mut self, i: usize, now: u64) -> usize {
        self.kill_with(&[i], None, |m, j| {
            let owner = m.entries[j].owner;
            let mut at = Some(j);
            while let Some(e) = at.map(|k| &m.entries[k]) {
                if e.owner == owner && e.deadline.is_some_and(|d| d <= now) {
                    return RevokeReason::DeadlinePassed;
                }
                at = e.parent;
            }
            RevokeReason::AncestorTaken
        })
    }

    fn kill_with(
        &mut self,
        roots: &[usize],
        quiet: Option<OwnerId>,
        reason_of: impl Fn(&Model, usize) -> RevokeReason,
    ) -> usize {
        let tree = self.subtrees(roots);
        let reasons: Vec<_> = tree.iter().map(|&j| reason_of(self, j)).collect();
        for (&j, reason) in tree.iter().zip(reasons) {
            let e = &mut self.entries[j];
            e.alive = false;
            if quiet != Some(e.owner) {
                let record = Repossession {
                    owner: e.owner,
                    entry: e.cap.id(),
                    resource: Resource::new(e.kind, e.start, e.len).expect("valid"),
                    rights: e.rights,
                    reason,
                };
                if record.reason == RevokeReason::DeadlinePassed {
                    self.entries[j].forfeited = self.room_for_forfeit_of(record.owner);
                }
                let log = &mut self.logs[usize::from(record.owner.0)];
                if log.records.len() == LOG {
                    log.records.pop_front();
                    log.dropped += 1;
                }
                log.records.push_back(record);
            }
        }
        tree.len()
    }

    /// Whether a new forfeit of `owner` can be recorded: with `N` kept, the owner with
    /// the most, the new one counted (on a tie the lowest), gives up its record of the
    /// lowest entry id and is marked lost; if that is `owner` holding none, it cannot.
    fn room_for_forfeit_of(&mut self, owner: OwnerId) -> bool {
        let kept: Vec<usize> = (0..self.entries.len())
            .filter(|&k| self.entries[k].forfeited)
            .collect();
        if kept.len() < N {
            return true;
        }
        let held = |o: usize| {
            let count = kept
                .iter()
                .filter(|&&k| self.entries[k].owner.0 as usize == o);
            count.count() + usize::from(o == usize::from(owner.0))
        };
        let most = (0..OWNERS).rev().max_by_key(|&o| held(o)).expect("owners");
        self.forfeits_lost[most] = true;
        let given_up = (kept.iter().copied())
            .filter(|&k| usize::from(self.entries[k].owner.0) == most)
            .min_by_key(|&k| {
                let id = self.entries[k].cap.id();
                (id.index(), id.generation())
            });
        if let Some(k) = given_up {
            self.entries[k].forfeited = false;
        }
        given_up.is_some()
    }

    fn has_children(&self, i: usize) -> bool {
        self.entries.iter().any(|e| e.alive && e.parent == Some(i))
    }

    fn is_strict_descendant(&self, target: usize, ancestor: usize) -> bool {
        let mut up = self.entries[target].parent;
        while let Some(p) = up {
            if p == ancestor {
                return true;
            }
            up = self.entries[p].parent;
        }
        false
    }

    fn push(&mut self, e: MEntry) {
        let id = e.cap.id();
        assert!(
            self.seen.insert((id.index(), id.generation())),
            "generation reused: {id}"
        );
        self.entries.push(e);
    }

    /// The checks shared by holder operations: alive, then held by `caller`.
    fn held(&self, i: usize, caller: OwnerId) -> Result<(), CapError> {
        let e = &self.entries[i];
        if !e.alive {
            Err(CapError::Revoked)
        } else if e.owner != caller {
            Err(CapError::NotOwner)
        } else {
            Ok(())
        }
    }

    fn held_live(&self, i: usize, caller: OwnerId) -> Result<(), CapError> {
        self.held(i, caller)?;
        if self.entries[i].deadline.is_some() {
            return Err(CapError::RevocationPending);
        }
        Ok(())
    }
}

fn granule(kind: ResourceKind) -> u64 {
    kind.granule()
}

fn valid(kind: ResourceKind, start: u64, len: u64) -> bool {
    let g = granule(kind);
    len != 0 && start.is_multiple_of(g) && len.is_multiple_of(g) && start.checked_add(len).is_some()
}

fn rights(rng: &mut Rng) -> Rights {
    Rights::from_bits((rng.next_u64() as u8) & Rights::ALL.bits()).expect("masked")
}

fn owner(rng: &mut Rng) -> OwnerId {
    // Mostly valid owners, sometimes one past the table's owners.
    OwnerId(rng.below(OWNERS + 1) as u16)
}

/// A range in units of the kind's granule, sometimes misaligned.
fn range(rng: &mut Rng, kind: ResourceKind, base: u64, span: u64) -> (u64, u64) {
    let g = granule(kind);
    let start = base + rng.below(span as usize + 2) as u64 * g;
    let mut len = rng.below(span as usize + 1) as u64 * g;
    if g > 1 && rng.below(8) == 0 {
        len += g / 2;
    }
    (start.saturating_sub(g), len)
}

/// An entry: usually a live one, sometimes any (to use stale handles).
fn pick(rng: &mut Rng, m: &Model) -> Option<usize> {
    let alive: Vec<usize> = (0..m.entries.len())
        .filter(|&k| m.entries[k].alive)
        .collect();
    if !alive.is_empty() && rng.below(5) != 0 {
        Some(alive[rng.below(alive.len())])
    } else {
        (!m.entries.is_empty()).then(|| rng.below(m.entries.len()))
    }
}

/// One of `candidates` if there is one and the dice say so, else any entry.
fn pick_from(rng: &mut Rng, m: &Model, candidates: &[usize]) -> Option<usize> {
    if !candidates.is_empty() && rng.below(3) != 0 {
        Some(candidates[rng.below(candidates.len())])
    } else {
        pick(rng, m)
    }
}

/// A likely caller for entry `i`: usually its holder.
fn caller_for(rng: &mut Rng, m: &Model, i: usize) -> OwnerId {
    if rng.below(5) == 0 {
        owner(rng)
    } else {
        m.entries[i].owner
    }
}

fn step(rng: &mut Rng, t: &mut Table, m: &mut Model) {
    // Weighted: 0-1 mint, 2-6 derive, 7-8 split, 9-10 merge, 11 delegate, 12 return,
    // 13 request, 14 revoke, 15 deadlines, 16 revoke_derived, 17-19 check or release.
    let op = match rng.below(20) {
        0 | 1 => 0,
        2..=6 => 1,
        7 | 8 => 3,
        9 | 10 => 4,
        11 => 5,
        12 => 6,
        13 => 7,
        14 => 8,
        15 => 9,
        16 => 10,
        _ => 11,
    };
    let i = match pick(rng, m) {
        Some(i) if op != 0 => i,
        _ => {
            // mint
            let who = owner(rng);
            let kind = if rng.below(2) == 0 {
                ResourceKind::Memory
            } else {
                ResourceKind::Core
            };
            let base = rng.below(8) as u64 * 16 * granule(kind);
            let (start, len) = range(rng, kind, base, 16);
            let Ok(res) = Resource::new(kind, start, len) else {
                assert!(
                    !valid(kind, start, len),
                    "Resource::new refused a valid range"
                );
                return;
            };
            let r = rights(rng);
            let expect = if usize::from(who.0) >= OWNERS {
                Err(CapError::BadOwner(who))
            } else if m.entries.iter().any(|e| {
                e.alive
                    && e.parent.is_none()
                    && e.kind == kind
                    && e.start < res.end()
                    && start < e.end()
            }) {
                Err(CapError::Overlaps)
            } else if m.alive() == N {
                Err(CapError::Full)
            } else {
                Ok(())
            };
            let got = t.mint(&Kernel, who, res, r);
            match got {
                Ok(cap) => {
                    assert_eq!(expect, Ok(()));
                    let origin = m.entries.len();
                    m.push(MEntry {
                        cap,
                        owner: who,
                        kind,
                        start,
                        len,
                        rights: r,
                        parent: None,
                        origin,
                        deadline: None,
                        alive: true,
                        forfeited: false,
                        maker: OwnerId::KERNEL,
                    });
                }
                Err(e) => assert_eq!(expect, Err(e)),
            }
            return;
        }
    };
    let caller = caller_for(rng, m, i);
    match op {
        1 | 2 => {
            // derive
            let (kind, pstart, plen) = (m.entries[i].kind, m.entries[i].start, m.entries[i].len);
            let g = granule(kind);
            let (start, len) = if rng.below(3) == 0 {
                range(rng, kind, pstart, plen / g)
            } else {
                let start = pstart + rng.below((plen / g) as usize) as u64 * g;
                (
                    start,
                    (1 + rng.below(((pstart + plen - start) / g) as usize) as u64) * g,
                )
            };
            let r = if rng.below(3) == 0 {
                rights(rng)
            } else {
                m.entries[i].rights & rights(rng)
            };
            let expect = m.held_live(i, caller).and_then(|()| {
                let missing = r.difference(m.entries[i].rights);
                if !missing.is_empty() {
                    Err(CapError::NoRight(missing))
                } else if !valid(kind, start, len) {
                    Err(CapError::BadRange)
                } else if start < pstart || start + len > pstart + plen {
                    Err(CapError::OutOfRange)
                } else if m.alive() == N {
                    Err(CapError::Full)
                } else {
                    Ok(())
                }
            });
            match t.derive(caller, &m.entries[i].cap, start, len, r) {
                Ok(cap) => {
                    assert_eq!(expect, Ok(()));
                    let p = &m.entries[i];
                    assert!(
                        p.rights.contains(r) && start >= p.start && start + len <= p.end(),
                        "derive grew"
                    );
                    m.push(MEntry {
                        cap,
                        owner: caller,
                        kind,
                        start,
                        len,
                        rights: r,
                        parent: Some(i),
                        origin: p.origin,
                        deadline: None,
                        alive: true,
                        forfeited: false,
                        maker: caller,
                    });
                }
                Err(e) => assert_eq!(expect, Err(e)),
            }
        }
        3 => {
            // split
            let e = &m.entries[i];
            let g = granule(e.kind);
            let mut offset = rng.below((e.len / g) as usize + 2) as u64 * g;
            if g > 1 && rng.below(6) == 0 {
                offset += g / 2;
            }
            let expect = m.held_live(i, caller).and_then(|()| {
                if e.lent() {
                    Err(CapError::Lent)
                } else if offset == 0 || offset >= e.len {
                    Err(CapError::OutOfRange)
                } else if !offset.is_multiple_of(g) {
                    Err(CapError::BadRange)
                } else if m.has_children(i) {
                    Err(CapError::HasChildren)
                } else if m.alive() == N {
                    Err(CapError::Full)
                } else {
                    Ok(())
                }
            });
            match t.split(caller, &m.entries[i].cap, offset) {
                Ok(cap) => {
                    assert_eq!(expect, Ok(()));
                    let e = &mut m.entries[i];
                    let high = MEntry {
                        cap,
                        owner: e.owner,
                        kind: e.kind,
                        start: e.start + offset,
                        len: e.len - offset,
                        rights: e.rights,
                        parent: e.parent,
                        origin: e.origin,
                        deadline: None,
                        alive: true,
                        forfeited: false,
                        maker: caller,
                    };
                    e.len = offset;
                    m.push(high);
                }
                Err(err) => assert_eq!(expect, Err(err)),
            }
        }
        4 => {
            // merge with a random other entry, often a sibling
            let (parent, origin) = (m.entries[i].parent, m.entries[i].origin);
            let siblings: Vec<usize> = (0..m.entries.len())
                .filter(|&k| {
                    let e = &m.entries[k];
                    k != i && e.alive && e.parent == parent && e.origin == origin
                })
                .collect();
            let j = pick_from(rng, m, &siblings).unwrap_or(i);
            let expect = m
                .held(i, caller)
                .and_then(|()| m.held(j, caller))
                .and_then(|()| {
                    let (a, b) = (&m.entries[i], &m.entries[j]);
                    if i == j {
                        Err(CapError::NotSiblings)
                    } else if a.deadline.is_some() || b.deadline.is_some() {
                        Err(CapError::RevocationPending)
                    } else if a.lent() || b.lent() {
                        Err(CapError::Lent)
                    } else if a.parent != b.parent || a.origin != b.origin {
                        // Roots minted apart are not siblings; one origin is one kind.
                        Err(CapError::NotSiblings)
                    } else if a.rights != b.rights {
                        Err(CapError::RightsDiffer)
                    } else if a.end() != b.start && b.end() != a.start {
                        Err(CapError::NotAdjacent)
                    } else if m.has_children(i) || m.has_children(j) {
                        Err(CapError::HasChildren)
                    } else {
                        Ok(())
                    }
                });
            let got = t.merge(caller, &m.entries[i].cap, &m.entries[j].cap);
            assert_eq!(expect, got);
            if got.is_ok() {
                let (bs, bl) = (m.entries[j].start, m.entries[j].len);
                let a = &mut m.entries[i];
                a.start = a.start.min(bs);
                a.len += bl;
                m.entries[j].alive = false;
            }
        }
        5 => {
            // delegate
            let to = owner(rng);
            let expect = m.held_live(i, caller).and_then(|()| {
                if !m.entries[i].rights.contains(Rights::DELEGATE) {
                    Err(CapError::NoRight(Rights::DELEGATE))
                } else if usize::from(to.0) >= OWNERS {
                    Err(CapError::BadOwner(to))
                } else if !m.running[usize::from(to.0)] {
                    Err(CapError::NotRunning(to))
                } else {
                    Ok(())
                }
            });
            let got = t.delegate(caller, &m.entries[i].cap, to);
            assert_eq!(expect, got);
            if got.is_ok() {
                m.entries[i].owner = to;
            }
        }
        6 => {
            // return
            let expect = m.held(i, caller).map(|()| m.subtree(i).len());
            let got = t.return_cap(caller, &m.entries[i].cap);
            assert_eq!(expect, got);
            if got.is_ok() {
                m.kill(i, RevokeReason::AncestorReturned, Some(caller));
            }
        }
        7 => {
            // request revocation
            let deadline = rng.below(1000) as u64;
            let reach = m.reach(i);
            let got = t.request_revocation(&Kernel, m.entries[i].cap.id(), deadline);
            assert_eq!(reach.as_ref().map(|_| ()).map_err(|e| *e), got);
            for k in reach.unwrap_or_default() {
                m.entries[k].deadline = Some(deadline);
            }
        }
        8 => {
            // forced revoke: a root with every piece of its mint
            let reach = m.reach(i);
            let expect = reach.clone().map(|pieces| {
                let start = pieces.iter().map(|&k| m.entries[k].start).min();
                let end = pieces.iter().map(|&k| m.entries[k].end()).max();
                let (start, end) = start.zip(end).expect("a piece");
                let kind = m.entries[pieces[0]].kind;
                Revocation {
                    resource: Resource::new(kind, start, end - start).expect("valid span"),
                    entries: m.subtrees(&pieces).len(),
                }
            });
            let got = t.revoke(&Kernel, m.entries[i].cap.id(), RevokeReason::Kernel);
            assert_eq!(expect, got);
            if let Ok(pieces) = reach {
                m.kill_with(&pieces, None, |_, _| RevokeReason::Kernel);
            }
        }
        9 => {
            // the deadline clock moves
            let now = rng.below(1200) as u64;
            let due = m
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.alive && e.deadline.is_some_and(|d| d <= now))
                .min_by_key(|(_, e)| e.cap.id().index())
                .map(|(k, _)| k);
            let expect = due.map(|k| Revocation {
                resource: m.entries[k].resource(),
                entries: m.subtree(k).len(),
            });
            assert_eq!(expect, t.revoke_next_expired(&Kernel, now));
            if let Some(k) = due {
                m.kill_expired(k, now);
            }
        }
        10 => {
            // revoke_derived from an ancestor, or a bad pairing
            let below: Vec<usize> = m.subtree(i).into_iter().filter(|&k| k != i).collect();
            let target = pick_from(rng, m, &below).unwrap_or(i);
            let expect = m.held(i, caller).and_then(|()| {
                if !m.entries[i].rights.contains(Rights::REVOKE) {
                    Err(CapError::NoRight(Rights::REVOKE))
                } else if !m.entries[target].alive {
                    Err(CapError::Revoked)
                } else if !m.is_strict_descendant(target, i) {
                    Err(CapError::NotDescendant)
                } else {
                    Ok(Revocation {
                        resource: m.entries[target].resource(),
                        entries: m.subtree(target).len(),
                    })
                }
            });
            let got = t.revoke_derived(caller, &m.entries[i].cap, m.entries[target].cap.id());
            assert_eq!(expect, got);
            if got.is_ok() {
                m.kill(target, RevokeReason::Holder, None);
            }
        }
        _ => {
            if rng.below(8) == 0 {
                // an owner starts (again)
                let who = owner(rng);
                let expect = match m.running.get_mut(usize::from(who.0)) {
                    Some(running) => {
                        *running = true;
                        Ok(())
                    }
                    None => Err(CapError::BadOwner(who)),
                };
                assert_eq!(expect, t.start_owner(&Kernel, who));
            } else if rng.below(4) == 0 {
                // an owner ends
                let who = owner(rng);
                let expect = if usize::from(who.0) >= OWNERS {
                    Err(CapError::BadOwner(who))
                } else {
                    let mut count = 0;
                    while let Some(k) = (0..m.entries.len())
                        .filter(|&k| m.entries[k].alive && m.entries[k].owner == who)
                        .min_by_key(|&k| m.entries[k].cap.id().index())
                    {
                        count += m.kill(k, RevokeReason::OwnerReleased, Some(who));
                    }
                    m.logs[usize::from(who.0)] = MLog::default();
                    for e in m.entries.iter_mut().filter(|e| e.owner == who) {
                        e.forfeited = false;
                    }
                    m.forfeits_lost[usize::from(who.0)] = false;
                    m.running[usize::from(who.0)] = false;
                    Ok(count)
                };
                assert_eq!(expect, t.release_owner(&Kernel, who, None));
            } else {
                // plain use
                let need = rights(rng);
                let expect = m.held(i, caller).and_then(|()| {
                    let missing = need.difference(m.entries[i].rights);
                    if missing.is_empty() {
                        Ok(m.entries[i].resource())
                    } else {
                        Err(CapError::NoRight(missing))
                    }
                });
                assert_eq!(
                    expect,
                    t.check(caller, &m.entries[i].cap, need).map(|e| e.resource)
                );
            }
        }
    }
}

/// The table's whole visible state equals the model's.
fn compare(t: &Table, m: &Model) {
    let mut live: Vec<&MEntry> = m.entries.iter().filter(|e| e.alive).collect();
    live.sort_by_key(|e| e.cap.id().index());
    let listed: Vec<EntryInfo> = t.entries().collect();
    assert_eq!(listed.len(), live.len(), "live entries");
    assert_eq!(t.live(), live.len(), "the count of live entries");
    assert!(live.iter().all(|e| t.is_live(e.cap.id())));
    for (info, e) in listed.iter().zip(&live) {
        let state = match e.deadline {
            None => EntryState::Live,
            Some(deadline_ns) => EntryState::RevokeRequested { deadline_ns },
        };
        let parent = e.parent.map(|p| m.entries[p].cap.id());
        assert_eq!(
            *info,
            EntryInfo {
                id: e.cap.id(),
                owner: e.owner,
                resource: e.resource(),
                rights: e.rights,
                parent,
                state
            }
        );
        if let Some(p) = e.parent {
            let p = &m.entries[p];
            assert!(p.alive, "a live entry's parent is live");
            assert!(
                p.rights.contains(e.rights),
                "rights never grow down the tree"
            );
            assert!(
                p.start <= e.start && e.end() <= p.end(),
                "ranges never grow down the tree"
            );
        }
    }
    for e in m.entries.iter().filter(|e| !e.alive) {
        assert!(!t.is_live(e.cap.id()));
        for who in 0..OWNERS as u16 {
            assert_eq!(
                t.check(OwnerId(who), &e.cap, Rights::NONE).map(|_| ()),
                Err(CapError::Revoked)
            );
            let forfeited = if e.forfeited && e.owner == OwnerId(who) {
                Forfeit::Recorded
            } else if m.forfeits_lost[usize::from(who)] {
                Forfeit::RecordsLost
            } else {
                Forfeit::NotForfeited
            };
            assert_eq!(t.forfeited(OwnerId(who), e.cap.id()), forfeited);
        }
    }
    for (o, log) in m.logs.iter().enumerate() {
        let who = OwnerId(o as u16);
        let got: Vec<Repossession> = t.repossessions(who).expect("valid owner").collect();
        assert_eq!(
            got,
            log.records.iter().copied().collect::<Vec<_>>(),
            "log of {who}"
        );
        assert_eq!(t.repossessions_dropped(who), Ok(log.dropped));
        let pending = t.pending_revocations(who).count();
        assert_eq!(
            pending,
            live.iter()
                .filter(|e| e.owner == who && e.deadline.is_some())
                .count()
        );
    }
}

#[test]
fn random_operation_sequences_match_the_model() {
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut t = Table::new();
        let mut m = Model {
            entries: Vec::new(),
            logs: (0..OWNERS).map(|_| MLog::default()).collect(),
            seen: HashSet::new(),
            running: vec![false; OWNERS],
            forfeits_lost: vec![false; OWNERS],
        };
        for _ in 0..300 {
            step(&mut rng, &mut t, &mut m);
            compare(&t, &m);
        }
    }
}

#[test]
fn handles_of_another_table_never_work() {
    let mut a = Table::new();
    let mut b = Table::new();
    let res = Resource::new(ResourceKind::Core, 0, 4).expect("cores");
    let ca = a
        .mint(&Kernel, OwnerId(1), res, Rights::ALL)
        .expect("mint a");
    let cb = b
        .mint(&Kernel, OwnerId(1), res, Rights::ALL)
        .expect("mint b");
    // Same slot, same generation, same owner: only the table id tells them apart.
    assert_eq!(
        (ca.id().index(), ca.id().generation()),
        (cb.id().index(), cb.id().generation())
    );
    assert_eq!(
        b.check(OwnerId(1), &ca, Rights::NONE).map(|_| ()),
        Err(CapError::WrongTable)
    );
    assert_eq!(
        b.derive(OwnerId(1), &ca, 0, 1, Rights::NONE)
            .map(|c| c.id()),
        Err(CapError::WrongTable)
    );
    assert_eq!(
        b.revoke(&Kernel, ca.id(), RevokeReason::Kernel),
        Err(CapError::WrongTable)
    );
    assert_eq!(b.merge(OwnerId(1), &cb, &ca), Err(CapError::WrongTable));
    assert_eq!(b.return_cap(OwnerId(1), &ca), Err(CapError::WrongTable));
    assert!(a.check(OwnerId(1), &ca, Rights::ALL).is_ok());
}
