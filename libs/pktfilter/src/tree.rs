//! The installed filters of a machine, merged into one decision tree.
//!
//! Installed filters never overlap (insertion refuses an overlap), so a frame matches at
//! most one, and the tree may stop at the first match. A node tests the field (offset,
//! width, mask) that most of its filters share and picks the child by the field's value
//! (a sorted table, binary search); the filters that do not test that field get the
//! node's next test, picked the same way, and so on: a frame not taken below one test
//! tries the next. Filters that test the same bytes under different masks (more of them
//! than share any one exact field) share a test of the bits their masks have in common,
//! and the bits left of each mask are tested below it; so a tree stays as deep as two
//! levels per atom at most, however many filters it holds, and building and classifying
//! recurse only that deep. A frame costs a field read and a binary search per test it
//! tries: one per level for filters that share their fields (ports under one protocol),
//! more where a node's filters test unrelated fields or masks with no bits common to all
//! of them (each then a test of its own, tried in turn). So the tree counts, as it is
//! built, the most tests any frame may try, and a set that would pass
//! [`MAX_FRAME_TESTS`] is refused, the build given up as soon as it would: classifying
//! a frame and building the tree stay bounded whatever filters an owner asks for. The
//! tree is rebuilt on insert (rare; a batch of one owner's filters,
//! [`Filters::insert_all`], is one rebuild), pruned on remove (the owners' filters cut
//! out, which never costs a frame more tests), and read on every frame (often).
//!
//! The tree also finds the installed filters a new one overlaps: only the children
//! whose values agree with the new filter are visited, so checking a port filter costs
//! a binary search per level, not a comparison with every installed filter.

use alloc::vec::Vec;
use core::fmt;

use crate::filter::FrameView;
use crate::{Atom, Filter};

/// The most field tests classifying one frame may take, whatever the frame: the merged
/// tree's worst case, counted as it is built (a test read on the way down, then the
/// worst of the child its value picks, and on to the node's next test when nothing below
/// matched). Filters that share their fields cost a test per level (ports under one
/// protocol: 5); filters that test the same bytes under masks with no bit common to all
/// of them, or unrelated fields, cost a test each at their node, so a set whose
/// tree would pass this is refused ([`InsertError::TooManyTests`]) rather than slow every
/// frame, and building a tree stops as soon as it would pass it.
pub const MAX_FRAME_TESTS: usize = 32;

/// The apps that can always install filters side by side, each within its share
/// ([`APP_FRAME_TESTS`]), whatever the others installed.
pub const SHARING_APPS: usize = 4;

/// An app's share of [`MAX_FRAME_TESTS`]: the most tests the tree of all of one app's
/// filters, built alone, may cost a frame ([`InsertError::OverShare`]). When the filters
/// merged cost more than [`MAX_FRAME_TESTS`], the tree is each app's own tree tried in
/// turn, which costs a frame the sum of the apps' costs: so [`SHARING_APPS`] apps within
/// their shares always fit, however few fields their filters share.
pub const APP_FRAME_TESTS: usize = MAX_FRAME_TESTS / SHARING_APPS;

/// Why a filter was not installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InsertError<T> {
    /// Some frame would match both this filter and one `owner` installed (shown).
    Overlaps {
        /// Who holds the other filter.
        owner: T,
        /// The other filter.
        filter: Filter,
    },
    /// With these filters the merged tree would try some frame against more than `max`
    /// field tests ([`MAX_FRAME_TESTS`]): they share too few of their fields (or mask
    /// bits) with each other and with the installed filters.
    TooManyTests {
        /// The most tests one frame may cost.
        max: usize,
    },
    /// The tree of the app's filters, these with those it installed, would cost some
    /// frame more than its `share` of the tests ([`APP_FRAME_TESTS`]), built alone.
    OverShare {
        /// The most tests one app's filters may cost a frame.
        share: usize,
    },
}

impl<T: fmt::Display> fmt::Display for InsertError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Overlaps { owner, filter } => {
                write!(
                    f,
                    "overlaps the filter '{filter}' of {owner}: some frames would match both"
                )
            }
            Self::TooManyTests { max } => write!(
                f,
                "the filters would cost a frame more than {max} field tests: they share too few fields"
            ),
            Self::OverShare { share } => write!(
                f,
                "the app's filters would cost a frame more than its share of {share} field tests: they share too few fields"
            ),
        }
    }
}

/// A field a node tests: (offset, width, mask).
type Field = (u16, u8, u32);

/// The field an atom reads.
fn field_of(atom: &Atom) -> Field {
    (atom.offset, atom.width, atom.mask)
}

/// An atom still to test on the way down, and whether it is whole: a whole atom may be
/// cut once by a mask other filters share ([`Node::build`]), the part left after the cut
/// is only ever tested exactly, so each atom costs at most two levels.
#[derive(Clone, Copy, Debug)]
struct Part {
    /// What is still to test.
    atom: Atom,
    /// Whether the atom is as the filter has it (not yet cut).
    whole: bool,
}

/// Filters still to place, each with the parts of its atoms not yet tested.
type Pending<T> = Vec<(Vec<Part>, T)>;

/// A node's test: the field, and a child per value (sorted by value).
type Test<T> = (Field, Vec<(u32, Node<T>)>);

/// What the tree holds of an installed filter: its owner, and its serial (installs
/// count up), which names the filter in [`Filters::installed`] and says which of two
/// was installed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry<T> {
    /// Who installed the filter.
    owner: T,
    /// Its place in the order of installs.
    serial: u64,
}

/// One node of the decision tree.
#[derive(Debug, Default)]
struct Node<T> {
    /// A filter whose atoms are all satisfied on the way here.
    matched: Option<T>,
    /// The tests tried in turn: each takes the filters that test its field and did not
    /// go to an earlier one.
    tests: Vec<Test<T>>,
}

/// What a walk of the tree counts the field tests it tries in: nothing (`()`) for
/// [`Filters::classify`], so the per-frame path does no counting; a number for the
/// tests that check how many a frame costs.
trait Tally {
    /// One more field test tried.
    fn tried(&mut self);
}

impl Tally for () {
    fn tried(&mut self) {}
}

#[cfg(test)]
impl Tally for usize {
    fn tried(&mut self) {
        *self += 1;
    }
}

/// How a node's test takes its filters.
enum Split {
    /// Every filter with an atom on exactly this field, that atom tested and removed.
    Exact(Field),
    /// Every filter with a whole atom on these bytes whose mask holds this one: the
    /// shared bits tested, the atom's other bits left as a part for the levels below.
    Shared(Field),
}

impl Split {
    /// The split for `filters` (some with atoms left): the exact field most of them
    /// test, or the bytes more of them test under masks with common bits.
    fn pick<T>(filters: &Pending<T>) -> Self {
        let mut exact: Vec<Field> = filters
            .iter()
            .flat_map(|(parts, _)| parts.iter().map(|part| field_of(&part.atom)))
            .collect();
        exact.sort_unstable();
        let (field, count) = exact
            .chunk_by(|a, b| a == b)
            .max_by_key(|run| run.len())
            .map(|run| (run[0], run.len()))
            .expect("filters with atoms left test some field");
        // Per filter, each (offset, width) of its whole atoms once, with the least mask.
        let mut bytes: Vec<Field> = Vec::new();
        for (parts, _) in filters {
            let mut own: Vec<Field> = parts
                .iter()
                .filter(|part| part.whole)
                .map(|part| field_of(&part.atom))
                .collect();
            own.sort_unstable();
            own.dedup_by_key(|(offset, width, _)| (*offset, *width));
            bytes.extend(own);
        }
        bytes.sort_unstable();
        let shared = bytes
            .chunk_by(|a, b| (a.0, a.1) == (b.0, b.1))
            .map(|run| {
                let mask = run.iter().fold(u32::MAX, |all, (_, _, mask)| all & mask);
                ((run[0].0, run[0].1, mask), run.len())
            })
            .filter(|((_, _, mask), _)| *mask != 0)
            .max_by_key(|(_, filters)| *filters);
        match shared {
            Some((bytes, filters)) if filters > count => Self::Shared(bytes),
            _ => Self::Exact(field),
        }
    }

    /// The field this split tests.
    fn field(&self) -> Field {
        match self {
            Self::Exact(field) | Self::Shared(field) => *field,
        }
    }

    /// Where in `parts` the part this split tests is, if the filter has one.
    fn position(&self, parts: &[Part]) -> Option<usize> {
        match *self {
            Self::Exact(field) => parts.iter().position(|part| field_of(&part.atom) == field),
            Self::Shared((offset, width, mask)) => parts.iter().position(|part| {
                part.whole
                    && (part.atom.offset, part.atom.width) == (offset, width)
                    && part.atom.mask & mask == mask
            }),
        }
    }

    /// Takes the tested part out of `parts` (at `at`) and gives the value it asks for;
    /// a shared split leaves the atom's other bits behind as a part no longer whole.
    fn take(&self, parts: &mut Vec<Part>, at: usize) -> u32 {
        let (_, _, mask) = self.field();
        let atom = parts[at].atom;
        let left = atom.mask & !mask;
        if left == 0 {
            parts.remove(at);
        } else {
            parts[at] = Part {
                atom: Atom {
                    mask: left,
                    value: atom.value & left,
                    ..atom
                },
                whole: false,
            };
        }
        atom.value & mask
    }
}

impl<T: Copy> Node<T> {
    /// Builds the node for `filters` (each with the parts still to test) and gives the
    /// most tests a frame tries in it, or `None` as soon as that would pass `budget`.
    /// Each test of the node is picked in turn (a loop, not recursion, so the filters no
    /// test took cost no stack); only the children recurse, at most two levels per atom
    /// and one per test of the budget.
    fn build(mut filters: Pending<T>, budget: usize) -> Option<(Self, usize)> {
        let mut node = Node {
            matched: None,
            tests: Vec::new(),
        };
        if let Some(done) = filters.iter().position(|(parts, _)| parts.is_empty()) {
            // Installed filters never overlap, so at most one has nothing left here.
            node.matched = Some(filters.swap_remove(done).1);
        }
        // The most tests a frame tries in the node's tests so far.
        let mut worst = 0;
        while !filters.is_empty() {
            // A frame may come to this test after all the earlier ones, read its field
            // and go down the child its value picks.
            let below = budget.checked_sub(worst + 1)?;
            let split = Split::pick(&filters);
            let mut by_value: Vec<(u32, Pending<T>)> = Vec::new();
            let mut rest = Vec::new();
            for (mut parts, owner) in filters {
                let Some(at) = split.position(&parts) else {
                    rest.push((parts, owner));
                    continue;
                };
                let value = split.take(&mut parts, at);
                match by_value.binary_search_by_key(&value, |(v, _)| *v) {
                    Ok(i) => by_value[i].1.push((parts, owner)),
                    Err(i) => by_value.insert(i, (value, alloc::vec![(parts, owner)])),
                }
            }
            let mut children = Vec::with_capacity(by_value.len());
            let mut deepest = 0;
            for (value, group) in by_value {
                let (child, tests) = Node::build(group, below)?;
                deepest = deepest.max(tests);
                children.push((value, child));
            }
            worst += 1 + deepest;
            node.tests.push((split.field(), children));
            filters = rest;
        }
        Some((node, worst))
    }

    /// The owner of the filter `frame` matches, if any; `tally` counts the field tests
    /// tried.
    fn classify(&self, frame: &FrameView, tally: &mut impl Tally) -> Option<T> {
        for ((offset, width, mask), children) in &self.tests {
            tally.tried();
            let atom = Atom {
                offset: *offset,
                width: *width,
                mask: *mask,
                value: 0,
            };
            if let Some(value) = atom.read(frame)
                && let Ok(i) = children.binary_search_by_key(&value, |(v, _)| *v)
                && let Some(owner) = children[i].1.classify(frame, tally)
            {
                return Some(owner);
            }
        }
        self.matched
    }
}

impl<T: Copy + PartialEq> Node<Entry<T>> {
    /// Cuts the filters of `owners` out of the node: their matches, and the children and
    /// tests left with nothing to match. Every other filter's frames classify as before
    /// (filters never overlap, so a frame of a filter cut out matches no other), and no
    /// frame tries more tests than before. Returns whether the node is left empty.
    fn prune(&mut self, owners: &[T]) -> bool {
        if self
            .matched
            .is_some_and(|entry| owners.contains(&entry.owner))
        {
            self.matched = None;
        }
        for (_, children) in &mut self.tests {
            children.retain_mut(|(_, child)| !child.prune(owners));
        }
        self.tests.retain(|(_, children)| !children.is_empty());
        self.matched.is_none() && self.tests.is_empty()
    }

    /// Lowers `first` to the serial of each filter below the node that some frame
    /// matching `wanted` (a filter's [`byte_constraints`](Filter::byte_constraints))
    /// matches too, the node's tests on the way here being all such a frame could pass.
    /// Exact, as [`Filter::overlaps`]: a filter's tests on its path are its atoms (a
    /// shared test and the part below it, one atom), so it overlaps `wanted` exactly
    /// when each test's value agrees with `wanted` on the bits both fix. Only the
    /// children that agree are visited: one found by binary search when `wanted` fixes
    /// every bit of the test, as for ports, so a filter is compared with a few values
    /// per level, not with every installed filter.
    fn lower_to_overlapping(&self, wanted: &[(u16, u8, u8)], first: &mut Option<u64>) {
        if let Some(entry) = self.matched {
            *first = Some(first.map_or(entry.serial, |serial| serial.min(entry.serial)));
        }
        for ((offset, width, mask), children) in &self.tests {
            let (fixed, value) = fixed_bits(wanted, *offset, *width);
            let fixed = fixed & mask;
            if fixed == *mask {
                let found = children.binary_search_by_key(&(value & mask), |(child_value, _)| {
                    #[cfg(test)]
                    tests::count_compared();
                    *child_value
                });
                if let Ok(at) = found {
                    children[at].1.lower_to_overlapping(wanted, first);
                }
            } else {
                for (child_value, child) in children {
                    #[cfg(test)]
                    tests::count_compared();
                    if (child_value ^ value) & fixed == 0 {
                        child.lower_to_overlapping(wanted, first);
                    }
                }
            }
        }
    }
}

/// The bits `wanted` (per-byte constraints sorted by offset) fixes in the `width`-byte
/// field at `offset`, and their values, placed as the field reads them.
fn fixed_bits(wanted: &[(u16, u8, u8)], offset: u16, width: u8) -> (u32, u32) {
    (offset..offset + u16::from(width)).fold((0, 0), |(fixed, value), at| {
        let (mask, byte) = wanted
            .binary_search_by_key(&at, |&(byte_at, _, _)| byte_at)
            .map_or((0, 0), |i| (wanted[i].1, wanted[i].2));
        (
            (fixed << 8) | u32::from(mask),
            (value << 8) | u32::from(byte),
        )
    })
}

/// An installed filter, with who installed it, its serial and its app.
struct Installed<T> {
    /// The filter.
    filter: Filter,
    /// Who installed it.
    owner: T,
    /// Its serial, as its [`Entry`] in the tree has it.
    serial: u64,
    /// The app it is of, named as owners are.
    app: T,
}

/// The installed filters, each with its owner, and the tree merged from them.
pub struct Filters<T> {
    /// What was installed, in order (so by rising serial).
    installed: Vec<Installed<T>>,
    /// The serial the next filter installed gets.
    next_serial: u64,
    /// The decision tree over `installed`.
    tree: Node<Entry<T>>,
}

impl<T: Copy + PartialEq> Default for Filters<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + PartialEq> Filters<T> {
    /// No filters.
    pub fn new() -> Self {
        Self {
            installed: Vec::new(),
            next_serial: 0,
            tree: Node {
                matched: None,
                tests: Vec::new(),
            },
        }
    }

    /// Installs `filter` for `owner`, an app of its own, as [`insert_all`](Self::insert_all)
    /// does.
    pub fn insert(&mut self, filter: Filter, owner: T) -> Result<(), InsertError<T>> {
        self.insert_all(core::slice::from_ref(&filter), owner, owner)
    }

    /// Installs all of `filters` for `owner`, or none of them: each is checked against
    /// the installed filters (through the tree, so only against the values of the tests
    /// its frames could pass, not against every filter) and then those before it in
    /// `filters` (one by one), so an overlap's refusal names the owner and filter that
    /// [`insert`](Self::insert) one by one would (the first installed it overlaps, or
    /// `owner` itself for an overlap within `filters`), but the tree is rebuilt once,
    /// not once per filter; then the tree with all of them must cost no frame more than
    /// [`MAX_FRAME_TESTS`] tests ([`InsertError::TooManyTests`]), and the tree of all the
    /// filters of `owner`'s `app` (other owners may be of it too), built alone, no frame
    /// more than [`APP_FRAME_TESTS`] ([`InsertError::OverShare`]). A refusal leaves the
    /// installed filters and the tree as they were.
    pub fn insert_all(
        &mut self,
        filters: &[Filter],
        owner: T,
        app: T,
    ) -> Result<(), InsertError<T>> {
        for (at, filter) in filters.iter().enumerate() {
            if let Some(refused) = self.first_overlap(filter, &filters[..at], owner) {
                return Err(refused);
            }
        }
        if filters.is_empty() {
            return Ok(());
        }
        let before = self.installed.len();
        let first_serial = self.next_serial;
        self.installed.extend(
            (first_serial..)
                .zip(filters)
                .map(|(serial, filter)| Installed {
                    filter: filter.clone(),
                    owner,
                    serial,
                    app,
                }),
        );
        let built = if self.cost_of(app, APP_FRAME_TESTS).is_none() {
            Err(InsertError::OverShare {
                share: APP_FRAME_TESTS,
            })
        } else {
            self.build().ok_or(InsertError::TooManyTests {
                max: MAX_FRAME_TESTS,
            })
        };
        let tree = match built {
            Ok(tree) => tree,
            Err(refused) => {
                self.installed.truncate(before);
                return Err(refused);
            }
        };
        self.next_serial = first_serial + filters.len() as u64;
        self.tree = tree;
        Ok(())
    }

    /// The first filter `filter` overlaps, the first installed (found through the tree)
    /// and then the first of `earlier` (not yet installed, of `owner`), as the refusal
    /// that names it.
    fn first_overlap(
        &self,
        filter: &Filter,
        earlier: &[Filter],
        owner: T,
    ) -> Option<InsertError<T>> {
        // A filter no frame matches overlaps none (as `Filter::overlaps` says).
        let wanted = filter.byte_constraints()?;
        let mut first = None;
        self.tree.lower_to_overlapping(&wanted, &mut first);
        let installed = first.map(|serial| {
            let at = self
                .installed
                .binary_search_by_key(&serial, |installed| installed.serial)
                .expect("the tree holds installed filters only");
            let installed = &self.installed[at];
            (&installed.filter, installed.owner)
        });
        let pending = || {
            earlier
                .iter()
                .find(|other| {
                    #[cfg(test)]
                    tests::count_compared();
                    other.overlaps(filter)
                })
                .map(|other| (other, owner))
        };
        installed
            .or_else(pending)
            .map(|(other, holder)| InsertError::Overlaps {
                owner: holder,
                filter: other.clone(),
            })
    }

    /// Removes every filter of `owner`; returns how many.
    pub fn remove_owner(&mut self, owner: T) -> usize {
        self.remove_owners(&[owner])
    }

    /// Removes every filter of each of `owners`; returns how many. The tree is pruned,
    /// not rebuilt: their filters are cut out of it in one pass, so removing costs no
    /// build and never makes a frame try more tests than before (a tree built again
    /// from fewer filters might).
    pub fn remove_owners(&mut self, owners: &[T]) -> usize {
        let before = self.installed.len();
        self.installed
            .retain(|installed| !owners.contains(&installed.owner));
        let removed = before - self.installed.len();
        if removed > 0 {
            self.tree.prune(owners);
        }
        removed
    }

    /// The installed filters with their owners, in the order installed.
    pub fn installed(&self) -> impl ExactSizeIterator<Item = (&Filter, T)> + '_ {
        self.installed
            .iter()
            .map(|installed| (&installed.filter, installed.owner))
    }

    /// The owner of the one filter `frame` matches, if any.
    pub fn classify(&self, frame: &[u8]) -> Option<T> {
        let view = FrameView::of(frame);
        self.tree.classify(&view, &mut ()).map(|entry| entry.owner)
    }

    /// [`classify`](Self::classify), and how many field tests it tried.
    #[cfg(test)]
    fn classify_counting(&self, frame: &[u8]) -> (Option<T>, usize) {
        let mut tests = 0;
        let entry = self.tree.classify(&FrameView::of(frame), &mut tests);
        (entry.map(|entry| entry.owner), tests)
    }

    /// The installed filters merged into a tree, or `None` when it would cost some frame
    /// more than [`MAX_FRAME_TESTS`] tests (given up as soon as it would). When the
    /// filters of all apps merged would, the tree is each app's own tree tried in turn
    /// (their root tests one after another: filters never overlap, so a frame matches in
    /// at most one), which costs a frame the sum of the apps' costs.
    fn build(&self) -> Option<Node<Entry<T>>> {
        if let Some((tree, _)) = Node::build(self.pending(|_| true), MAX_FRAME_TESTS) {
            return Some(tree);
        }
        let mut apps: Vec<T> = Vec::new();
        for installed in &self.installed {
            if !apps.contains(&installed.app) {
                apps.push(installed.app);
            }
        }
        let mut tree = Node {
            matched: None,
            tests: Vec::new(),
        };
        let mut left = MAX_FRAME_TESTS;
        for app in apps {
            let (own, tests) = Node::build(self.pending(|of| of == app), left)?;
            left -= tests;
            tree.matched = tree.matched.or(own.matched);
            tree.tests.extend(own.tests);
        }
        Some(tree)
    }

    /// The most tests the tree of `app`'s filters alone costs a frame, or `None` when it
    /// would pass `budget`.
    fn cost_of(&self, app: T, budget: usize) -> Option<usize> {
        Node::build(self.pending(|of| of == app), budget).map(|(_, tests)| tests)
    }

    /// The installed filters of the apps `wanted` takes, each with all its atoms still
    /// to test.
    fn pending(&self, wanted: impl Fn(T) -> bool) -> Pending<Entry<T>> {
        self.installed
            .iter()
            .filter(|installed| wanted(installed.app))
            .map(|installed| {
                let atoms = installed.filter.atoms().iter();
                let parts = atoms.map(|&atom| Part { atom, whole: true });
                let entry = Entry {
                    owner: installed.owner,
                    serial: installed.serial,
                };
                (parts.collect(), entry)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;
    use rexo_testkit::Rng;

    std::thread_local! {
        /// Filters and tree values a new filter was compared with for overlap, on this
        /// test's thread.
        static COMPARED: Cell<usize> = const { Cell::new(0) };
    }

    /// Counts one filter or tree value a new filter was compared with for overlap.
    pub(super) fn count_compared() {
        COMPARED.with(|compared| compared.set(compared.get() + 1));
    }

    /// The comparisons for overlap made while `run` ran.
    fn compared_by(run: impl FnOnce()) -> usize {
        let before = COMPARED.with(Cell::get);
        run();
        COMPARED.with(Cell::get) - before
    }

    /// What `filters` installed, with the owners, copied out to compare and show.
    fn listed<T: Copy + PartialEq>(filters: &Filters<T>) -> Vec<(Filter, T)> {
        let installed = filters.installed();
        installed
            .map(|(filter, owner)| (filter.clone(), owner))
            .collect()
    }

    /// Binding 64 port filters beside 4,096 compares each with a few tree values per
    /// level (832 in all) and with the batch's filters before it (2,016), not with
    /// every installed filter: 264,160 comparisons counted this way before (measured
    /// at about 65 ms under the interface's lock).
    #[test]
    fn a_bind_is_checked_against_the_tree_not_every_filter() {
        let mut filters = Filters::new();
        for owner in 0..64u32 {
            let ports: Vec<String> = (0..64)
                .map(|i| alloc::format!("udp dport {}", 1000 + owner * 64 + i))
                .collect();
            let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
            filters.insert_all(&parsed(&ports), owner, owner).unwrap();
        }
        assert_eq!(filters.installed().len(), 4096);
        let batch: Vec<Filter> = (0..64)
            .map(|i| Filter::parse(&alloc::format!("udp dport {}", 9000 + i)).unwrap())
            .collect();
        let compared = compared_by(|| filters.insert_all(&batch, 64, 64).unwrap());
        // 2,016 of them are the batch's own filters checked against each other.
        assert!(compared <= 64 * 64, "{compared} comparisons");
        // Still refused: a port taken, and a filter over all of them, naming the first.
        let taken = compared_by(|| {
            let refused = filters
                .insert(Filter::parse("udp dport 2000").unwrap(), 99)
                .unwrap_err();
            assert_eq!(
                refused,
                InsertError::Overlaps {
                    owner: 15,
                    filter: Filter::parse("udp dport 2000").unwrap(),
                }
            );
        });
        assert!(taken <= 64, "{taken} comparisons");
        let refused = filters
            .insert(Filter::parse("udp").unwrap(), 99)
            .unwrap_err();
        assert_eq!(
            refused,
            InsertError::Overlaps {
                owner: 0,
                filter: Filter::parse("udp dport 1000").unwrap(),
            }
        );
    }

    /// The refusal found through the tree names the filter the pairwise check names:
    /// the first installed that overlaps, after installs and removals.
    #[test]
    fn the_tree_finds_the_first_overlap_pairwise_checks_find() {
        let mut rng = Rng(0x0E7E_F1A5);
        for round in 0..300 {
            let mut filters = Filters::new();
            for owner in 0..rng.below(16) {
                let Some(filter) = random_filter(&mut rng) else {
                    continue;
                };
                let first = listed(&filters)
                    .iter()
                    .find(|(other, _)| other.overlaps(&filter))
                    .map(|(other, holder)| InsertError::Overlaps {
                        owner: *holder,
                        filter: other.clone(),
                    });
                let result = filters.insert(filter, owner);
                if !matches!(result, Err(InsertError::TooManyTests { .. })) {
                    assert_eq!(result.err(), first, "round {round}");
                }
                if rng.below(4) == 0 {
                    filters.remove_owner(rng.below(owner + 1));
                }
            }
        }
    }

    fn frame(ethertype: u16, protocol: u8, dport: u16) -> Vec<u8> {
        let mut frame = alloc::vec![0u8; 64];
        frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&50u16.to_be_bytes());
        frame[23] = protocol;
        frame[36..38].copy_from_slice(&dport.to_be_bytes());
        frame
    }

    #[test]
    fn overlapping_filters_are_refused_naming_the_owner() {
        let mut filters = Filters::new();
        filters
            .insert(Filter::parse("udp dport 11211").unwrap(), "kv")
            .unwrap();
        filters
            .insert(Filter::parse("tcp dport 80").unwrap(), "httpd")
            .unwrap();
        filters
            .insert(Filter::parse("arp").unwrap(), "net")
            .unwrap();
        let refused = filters
            .insert(Filter::parse("udp").unwrap(), "greedy")
            .unwrap_err();
        assert!(matches!(refused, InsertError::Overlaps { owner: "kv", .. }));
        assert!(alloc::format!("{refused}").contains("of kv"));
        assert_eq!(filters.classify(&frame(0x0800, 17, 11211)), Some("kv"));
        assert_eq!(filters.classify(&frame(0x0800, 6, 80)), Some("httpd"));
        assert_eq!(filters.classify(&frame(0x0806, 0, 0)), Some("net"));
        assert_eq!(filters.classify(&frame(0x0800, 17, 53)), None);
        assert_eq!(
            filters.classify(&frame(0x0800, 17, 11211)[..30]),
            None,
            "truncated"
        );
        assert_eq!(filters.remove_owner("kv"), 1);
        assert_eq!(filters.classify(&frame(0x0800, 17, 11211)), None);
        filters
            .insert(Filter::parse("udp").unwrap(), "greedy")
            .unwrap();
        assert_eq!(filters.classify(&frame(0x0800, 17, 11211)), Some("greedy"));
    }

    /// A hostile app's filters against kv's port and a tagged TCP port: every shape that
    /// some frame of theirs would match too is refused, naming the owner; a shape
    /// disjoint from them by one bit goes in.
    #[test]
    fn every_shape_that_would_take_another_apps_frames_is_refused() {
        let mut filters = Filters::new();
        let installed = [
            ("udp dport 11211", "kv"),
            ("tcp dport 5000 & 54:1=1", "tagged"),
        ];
        for (text, owner) in installed {
            filters.insert(Filter::parse(text).unwrap(), owner).unwrap();
        }
        for (hostile, owner) in [
            ("udp dport 11211", "kv"),                               // the same port
            ("udp dport 11211 & 42:1=7", "kv"),                      // narrower: a payload byte
            ("udp", "kv"),                                           // wider: the protocol
            ("12:2=0x0800 & 36:2=11211", "kv"),                      // fewer fields
            ("36:2=11211", "kv"),                                    // no protocol at all
            ("udp & 36:2/0xfffe=11210", "kv"),                       // a mask over 11210-11211
            ("udp & 37:1=0xcb", "kv"),                               // one byte of the port
            ("udp & 34:4/0xffff=11211", "kv"),                       // a wider atom over it
            ("12:1/0x08=0x08", "kv"),                                // one bit of the EtherType
            ("0:1/0x01=0", "kv"),                                    // every unicast frame
            ("tcp dport 5000", "tagged"),                            // the port without a tag
            ("12:2=0x0800 & 14:1=0x45 & 23:1=6 & 58:1=0", "tagged"), // payload, unnamed port
            ("tcp & 52:4/0xff=1", "tagged"),                         // an atom into the payload
        ] {
            let refused = filters.insert(Filter::parse(hostile).unwrap(), "hostile");
            assert!(
                matches!(refused, Err(InsertError::Overlaps { owner: o, .. }) if o == owner),
                "{hostile}: {refused:?}"
            );
        }
        assert_eq!(
            filters.installed().len(),
            2,
            "nothing of the hostile's went in"
        );
        for disjoint in [
            "udp dport 11212",
            "udp & 36:2/0xfffe=11208",
            "tcp dport 11211",
            "tcp dport 5000 & 54:1=2",
            "12:2=0x86dd",
        ] {
            let filter = Filter::parse(disjoint).unwrap();
            filters.insert(filter, "hostile").unwrap();
        }
        assert_eq!(filters.classify(&frame(0x0800, 17, 11211)), Some("kv"));
    }

    fn parsed(text: &[&str]) -> Vec<Filter> {
        text.iter().map(|t| Filter::parse(t).unwrap()).collect()
    }

    #[test]
    fn a_batch_with_an_overlap_installs_nothing() {
        let mut filters = Filters::new();
        filters
            .insert(Filter::parse("udp dport 11211").unwrap(), "kv")
            .unwrap();
        let within = filters
            .insert_all(
                &parsed(&["tcp dport 80", "tcp dport 8080", "tcp"]),
                "httpd",
                "httpd",
            )
            .unwrap_err();
        assert_eq!(
            within,
            InsertError::Overlaps {
                owner: "httpd",
                filter: Filter::parse("tcp dport 80").unwrap(),
            },
            "an overlap within the batch names the batch's owner and its earlier filter"
        );
        let with_installed = filters
            .insert_all(&parsed(&["tcp dport 80", "udp"]), "greedy", "greedy")
            .unwrap_err();
        assert!(matches!(
            with_installed,
            InsertError::Overlaps { owner: "kv", .. }
        ));
        assert_eq!(filters.installed().len(), 1, "{:?}", listed(&filters));
        assert_eq!(filters.classify(&frame(0x0800, 6, 80)), None);
        assert_eq!(filters.classify(&frame(0x0800, 17, 11211)), Some("kv"));
        filters
            .insert_all(
                &parsed(&["tcp dport 80", "tcp dport 8080"]),
                "httpd",
                "httpd",
            )
            .unwrap();
        assert_eq!(filters.classify(&frame(0x0800, 6, 80)), Some("httpd"));
        assert_eq!(filters.classify(&frame(0x0800, 6, 8080)), Some("httpd"));
        assert_eq!(filters.classify(&frame(0x0800, 17, 11211)), Some("kv"));
        filters.insert_all(&[], "nobody", "nobody").unwrap();
        assert_eq!(filters.installed().len(), 3);
    }

    #[test]
    fn a_batch_agrees_with_inserting_one_by_one() {
        let mut rng = Rng(0x0BA7_C4ED);
        for round in 0..300 {
            let mut batched = Filters::new();
            let mut one_by_one = Filters::new();
            for owner in 0..rng.below(6) {
                let batch: Vec<Filter> = (0..rng.below(5))
                    .filter_map(|_| random_filter(&mut rng))
                    .collect();
                let single = batch
                    .iter()
                    .try_for_each(|filter| one_by_one.insert(filter.clone(), owner));
                if single.is_err() {
                    one_by_one.remove_owner(owner);
                }
                assert_eq!(
                    batched.insert_all(&batch, owner, owner),
                    single,
                    "round {round}"
                );
                assert_eq!(listed(&batched), listed(&one_by_one), "round {round}");
            }
            for _ in 0..50 {
                let frame: Vec<u8> = (0..40).map(|_| rng.below(4) as u8).collect();
                assert_eq!(
                    batched.classify(&frame),
                    one_by_one.classify(&frame),
                    "round {round}"
                );
            }
        }
    }

    #[test]
    fn removing_owners_at_once_agrees_with_one_by_one() {
        let mut rng = Rng(0x5EED_0FF5);
        for round in 0..300 {
            let mut at_once = Filters::new();
            for owner in 0..rng.below(10) {
                if let Some(filter) = random_filter(&mut rng) {
                    // An overlapping filter is refused; the rest make the set.
                    let _ = at_once.insert(filter, owner);
                }
            }
            let mut one_by_one = Filters::new();
            for (filter, owner) in at_once.installed() {
                one_by_one.insert(filter.clone(), owner).unwrap();
            }
            // Some owners twice, some never installed.
            let ended: Vec<usize> = (0..rng.below(6)).map(|_| rng.below(12)).collect();
            let removed: usize = ended.iter().map(|o| one_by_one.remove_owner(*o)).sum();
            assert_eq!(at_once.remove_owners(&ended), removed, "round {round}");
            assert_eq!(listed(&at_once), listed(&one_by_one), "round {round}");
            // Pruned trees classify as a tree built from what is left.
            let mut rebuilt = Filters::new();
            for (filter, owner) in at_once.installed() {
                rebuilt.insert(filter.clone(), owner).unwrap();
            }
            for _ in 0..50 {
                let frame: Vec<u8> = (0..40).map(|_| rng.below(4) as u8).collect();
                let owner = rebuilt.classify(&frame);
                assert_eq!(at_once.classify(&frame), owner, "round {round}");
                assert_eq!(one_by_one.classify(&frame), owner, "round {round}");
            }
        }
    }

    /// A random atom over a small space of fields and values, so filters often share
    /// fields and often overlap.
    fn random_filter(rng: &mut Rng) -> Option<Filter> {
        let fields: [(u16, u8, u32); 7] = [
            (12, 2, 0xFFFF),
            (14, 1, 0xFF),
            (14, 1, 0xF0),
            (23, 1, 0xFF),
            (36, 2, 0xFFFF),
            (34, 4, 0x0000_FF00),
            (36, 2, 0x00FF),
        ];
        let count = 1 + rng.below(4);
        let atoms = (0..count)
            .map(|_| {
                let (offset, width, mask) = fields[rng.below(fields.len())];
                let value = (rng.below(4) as u32 * 0x0101_0101) & mask;
                Atom {
                    offset,
                    width,
                    mask,
                    value,
                }
            })
            .collect();
        Filter::new(atoms).ok()
    }

    #[test]
    fn the_tree_agrees_with_the_naive_matcher() {
        let mut rng = Rng(0xC0FF_EE00_1234_5678);
        for round in 0..300 {
            let mut filters = Filters::new();
            let mut naive: Vec<(Filter, usize)> = Vec::new();
            for owner in 0..rng.below(12) {
                let Some(filter) = random_filter(&mut rng) else {
                    continue;
                };
                let overlap = naive.iter().any(|(other, _)| other.overlaps(&filter));
                assert_eq!(
                    filters.insert(filter.clone(), owner).is_err(),
                    overlap,
                    "round {round}"
                );
                if !overlap {
                    naive.push((filter, owner));
                }
            }
            for _ in 0..200 {
                let len = 30 + rng.below(20);
                let mut frame: Vec<u8> = (0..len).map(|_| rng.below(4) as u8).collect();
                if rng.below(2) == 0 {
                    // Often copy a filter's values in, so frames match.
                    if let Some((filter, _)) = naive.get(rng.below(naive.len().max(1))) {
                        for atom in filter.atoms() {
                            let at = usize::from(atom.offset);
                            for i in 0..usize::from(atom.width) {
                                let shift = 8 * (usize::from(atom.width) - 1 - i);
                                if let Some(byte) = frame.get_mut(at + i) {
                                    let mask = (atom.mask >> shift) as u8;
                                    *byte = (*byte & !mask) | (atom.value >> shift) as u8;
                                }
                            }
                        }
                    }
                }
                let matching: Vec<usize> = naive
                    .iter()
                    .filter(|(f, _)| f.matches(&frame))
                    .map(|(_, o)| *o)
                    .collect();
                assert!(
                    matching.len() <= 1,
                    "installed filters overlap: {matching:?}"
                );
                assert_eq!(
                    filters.classify(&frame),
                    matching.first().copied(),
                    "round {round}, frame {frame:?}"
                );
            }
        }
    }

    /// Filter texts as the crate's tests write them, which [`grammar_filter`] mutates.
    const FILTER_TEXTS: [&str; 16] = [
        "udp dport 11211",
        "tcp dport 80",
        "arp",
        "udp",
        "udp dport 53",
        "udp sport 53 dst 10.0.2.15",
        "icmp dst 10.0.2.15",
        "tcp dport 5000 & 54:1=1",
        "tcp dport 5000 & 54:1=1 & 55:2=0x0203",
        "tcp & 52:4=0x00000102",
        "udp dport 5000 & 42:1=1",
        "12:2=0x0800 & 23:1=6 & 54:1=1",
        "12:2=0x88b5 & 14:1=1",
        "ipv4 & 30:4/0xffffff00=0x0a000200",
        "6:4=0x02000000 & 10:2=0x0001 & ipv4",
        "12:2=0x0800 & 42:4/0xfffffff8=0x10",
    ];

    /// Terms a mutation adds to a filter's text.
    const FILTER_TERMS: [&str; 16] = [
        "tcp",
        "udp",
        "arp",
        "icmp",
        "ipv4",
        "dport 80",
        "dport 5000",
        "sport 53",
        "dst 10.0.2.15",
        "src 10.0.2.2",
        "54:1=1",
        "55:1/0xf0=0x10",
        "42:1=2",
        "14:1/0xf0=0x40",
        "20:2/0x1fff=0",
        "46:1/0xf0=0x80",
    ];

    /// Numbers a mutation writes over one in a filter's text: ports, protocols, values
    /// and offsets the frames of [`built_frame`] hold.
    const FILTER_NUMBERS: [&str; 14] = [
        "0", "1", "2", "6", "12", "17", "23", "36", "53", "54", "80", "5000", "11211", "0x0800",
    ];

    /// One of [`FILTER_TEXTS`] with up to three mutations (a term dropped, a term added,
    /// a number replaced, a character replaced, another filter joined to it), if
    /// [`Filter::parse`] accepts the result.
    fn grammar_filter(rng: &mut Rng) -> Option<Filter> {
        let mut terms: Vec<String> = FILTER_TEXTS[rng.below(FILTER_TEXTS.len())]
            .split(' ')
            .map(String::from)
            .collect();
        for _ in 0..rng.below(4) {
            let at = rng.below(terms.len());
            match rng.below(5) {
                0 if terms.len() > 1 => {
                    terms.remove(at);
                }
                1 => terms.insert(at, FILTER_TERMS[rng.below(FILTER_TERMS.len())].into()),
                2 => {
                    // A number: a whole term, or an atom's offset or value.
                    let number = FILTER_NUMBERS[rng.below(FILTER_NUMBERS.len())];
                    let term = &mut terms[at];
                    *term = match (term.split_once(':'), term.split_once('=')) {
                        (Some((_, rest)), _) if rng.below(2) == 0 => format!("{number}:{rest}"),
                        (_, Some((field, _))) => format!("{field}={number}"),
                        _ => number.into(),
                    };
                }
                3 => {
                    let noise = b"0123456789x:/=& ."[rng.below(17)];
                    let term = &mut terms[at];
                    let byte = rng.below(term.len());
                    term.replace_range(byte..=byte, char::from(noise).encode_utf8(&mut [0; 4]));
                }
                _ => {
                    terms.push("&".into());
                    terms.extend(
                        FILTER_TEXTS[rng.below(FILTER_TEXTS.len())]
                            .split(' ')
                            .map(String::from),
                    );
                }
            }
        }
        Filter::parse(&terms.join(" ")).ok()
    }

    /// A frame of the kinds filters name, its fields from small sets so that filters
    /// often match: ARP, IPv4 (a first fragment, whole or a later fragment) carrying
    /// UDP, TCP with 0 to 40 bytes of options, or ICMP, or another EtherType; then up to
    /// three mutations (a bit flipped, a byte made small, the TCP data offset changed,
    /// the frame cut short).
    fn built_frame(rng: &mut Rng) -> Vec<u8> {
        let small = |rng: &mut Rng| [0u8, 1, 2, 3, 0x10][rng.below(5)];
        let addresses: [[u8; 4]; 3] = [[10, 0, 2, 15], [10, 0, 2, 2], [10, 0, 3, 15]];
        let ports: [u16; 5] = [53, 80, 5000, 11211, 40000];
        let mut frame = Vec::new();
        for _ in 0..2 {
            frame.extend_from_slice(&[2, 0, 0, 0, 0, 1 + rng.below(2) as u8]);
        }
        let kind = rng.below(5);
        let ethertype: u16 = match kind {
            0 => 0x0806,
            4 => 0x88b5,
            _ => 0x0800,
        };
        frame.extend_from_slice(&ethertype.to_be_bytes());
        match kind {
            0 => {
                frame.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1 + rng.below(2) as u8]);
                for _ in 0..2 {
                    frame.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
                    frame.extend_from_slice(&addresses[rng.below(3)]);
                }
            }
            4 => frame.extend((0..rng.below(60)).map(|_| small(rng))),
            _ => {
                let protocol = [17u8, 6, 1][kind - 1];
                let fragment: u16 = [0, 0, 0x4000, 0x2000, 185][rng.below(5)];
                frame.extend_from_slice(&[0x45, 0, 0, 0, 0, 1]);
                frame.extend_from_slice(&fragment.to_be_bytes());
                frame.extend_from_slice(&[64, protocol, 0, 0]);
                for _ in 0..2 {
                    frame.extend_from_slice(&addresses[rng.below(3)]);
                }
                for _ in 0..2 {
                    if protocol != 1 {
                        frame.extend_from_slice(&ports[rng.below(ports.len())].to_be_bytes());
                    }
                }
                match protocol {
                    17 => frame.extend_from_slice(&[0, 0, 0, 0]),
                    6 => {
                        let options = rng.below(11);
                        frame.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
                        frame.extend_from_slice(&[((5 + options) as u8) << 4, 0x18, 1, 0]);
                        frame.extend_from_slice(&[0; 4]);
                        frame.extend((0..4 * options).map(|_| small(rng)));
                    }
                    _ => frame.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]),
                }
                frame.extend((0..rng.below(12)).map(|_| small(rng)));
                let total = (frame.len() - 14) as u16;
                frame[16..18].copy_from_slice(&total.to_be_bytes());
            }
        }
        if rng.below(2) == 0 && frame.len() < 60 {
            frame.resize(60, 0);
        }
        for _ in 0..rng.below(4) {
            let Some(at) = (!frame.is_empty()).then(|| rng.below(frame.len())) else {
                break;
            };
            match rng.below(4) {
                0 => frame[at] ^= 1 << rng.below(8),
                1 => frame[at] = small(rng),
                2 if frame.len() > 46 => frame[46] = (rng.below(16) as u8) << 4,
                _ => frame.truncate(at),
            }
        }
        frame
    }

    /// The owner of the one filter of `installed` that matches `frame`, found by trying
    /// each in turn; no two may match.
    fn scanned(installed: &[(Filter, usize)], frame: &[u8]) -> Option<usize> {
        let mut matching = installed.iter().filter(|(filter, _)| filter.matches(frame));
        let first = matching.next().map(|(_, owner)| *owner);
        let second = matching.next();
        assert!(second.is_none(), "two installed filters match {frame:?}");
        first
    }

    /// The tree is a linear scan (seed 0x7EE5_CA11): filters from the language (the
    /// crate's tests' texts, mutated, those `Filter::parse` takes), each one's text read
    /// back as itself, installed a binding's batch at a time as the registry does (a
    /// batch refused for an overlap exactly when one of its filters overlaps an
    /// installed one or an earlier one of the batch, by `Filter::overlaps`); frames built
    /// as Ethernet, ARP, IPv4, UDP, TCP with options and ICMP, their fields mutated.
    /// `classify` names the owner of the one filter a linear scan of `Filter::matches`
    /// finds, and no two installed filters match a frame; after some owners' filters
    /// are removed, the pruned tree holds and classifies what a tree built from the rest
    /// holds and classifies.
    #[test]
    fn the_tree_of_filters_from_the_language_is_a_linear_scan() {
        let mut rng = Rng(0x7EE5_CA11);
        let (mut matched, mut missed, mut refused) = (0, 0, 0);
        for round in 0..2_000 {
            let mut filters = Filters::new();
            let mut scan: Vec<(Filter, usize)> = Vec::new();
            let owners = 1 + rng.below(10);
            for owner in 0..owners {
                let batch: Vec<Filter> = (0..1 + rng.below(3))
                    .filter_map(|_| grammar_filter(&mut rng))
                    .collect();
                for filter in &batch {
                    let text = filter.to_string();
                    assert_eq!(Filter::parse(&text).as_ref(), Ok(filter), "{text}");
                }
                let overlaps = batch.iter().enumerate().any(|(at, filter)| {
                    let earlier = batch[..at].iter();
                    let installed = scan.iter().map(|(other, _)| other);
                    installed.chain(earlier).any(|other| other.overlaps(filter))
                });
                match filters.insert_all(&batch, owner, owner) {
                    Ok(()) => {
                        assert!(!overlaps, "round {round}: {batch:?} went in");
                        scan.extend(batch.into_iter().map(|filter| (filter, owner)));
                    }
                    Err(InsertError::Overlaps { .. }) => {
                        assert!(overlaps, "round {round}: {batch:?} refused");
                        refused += 1;
                    }
                    Err(InsertError::TooManyTests { .. } | InsertError::OverShare { .. }) => {
                        assert!(!overlaps)
                    }
                }
            }
            assert_eq!(listed(&filters), scan, "round {round}");
            for _ in 0..100 {
                let frame = built_frame(&mut rng);
                let owner = scanned(&scan, &frame);
                assert_eq!(filters.classify(&frame), owner, "round {round}: {frame:?}");
                if owner.is_some() {
                    matched += 1;
                } else {
                    missed += 1;
                }
            }
            // One or two owners' filters removed (maybe an owner with none).
            let ended: Vec<usize> = (0..1 + rng.below(2))
                .map(|_| rng.below(owners + 1))
                .collect();
            filters.remove_owners(&ended);
            scan.retain(|(_, owner)| !ended.contains(owner));
            let mut rebuilt = Filters::new();
            for (filter, owner) in &scan {
                rebuilt.insert(filter.clone(), *owner).unwrap();
            }
            assert_eq!(listed(&filters), listed(&rebuilt), "round {round}");
            for _ in 0..100 {
                let frame = built_frame(&mut rng);
                let owner = scanned(&scan, &frame);
                assert_eq!(filters.classify(&frame), owner, "round {round}: {frame:?}");
                assert_eq!(rebuilt.classify(&frame), owner, "round {round}: {frame:?}");
            }
        }
        assert!(
            matched > 10_000 && missed > 10_000 && refused > 1_000,
            "{matched} frames matched, {missed} missed, {refused} batches refused"
        );
    }

    #[test]
    fn filters_on_one_field_under_different_masks_share_a_node() {
        // Filter k tests bytes 100..104 under its own mask: no two name the same field,
        // which once made the tree a chain as deep as the filters are many.
        let classified = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(|| {
                let mut filters = Filters::new();
                let batch: Vec<Filter> = (0..1024u32)
                    .map(|k| {
                        let mask = 0xFFFF_0000 | (k + 1);
                        Filter::parse(&alloc::format!("100:4/{mask:#x}={:#x}", k << 16)).unwrap()
                    })
                    .collect();
                filters.insert_all(&batch, 7u32, 7u32).unwrap();
                let mut frame = alloc::vec![0u8; 128];
                let mut owners = Vec::new();
                for (k, field) in [(5u32, 5u32 << 16), (1023, 1023 << 16), (5, (5 << 16) | 4)] {
                    frame[100..104].copy_from_slice(&field.to_be_bytes());
                    owners.push((k, filters.classify(&frame)));
                }
                frame[100..104].copy_from_slice(&(2000u32 << 16).to_be_bytes());
                owners.push((2000, filters.classify(&frame)));
                owners
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(
            classified,
            [(5, Some(7)), (1023, Some(7)), (5, None), (2000, None)],
            "filter 5's mask (0xffff0006) holds bit 2, which must be 0"
        );
    }

    /// One app binds filters on an EtherType nobody uses (`12:1=0x88`, one byte of the
    /// EtherType where the others test both) and four bytes under masks with no bit
    /// common to all, a binding per filter: before, its 52 filters left no room, and
    /// every later app's `tcp dport 80` was refused (`TooManyTests`, seen). Now the app is refused past its share, and three other
    /// apps bind beside what it holds, each frame still costing at most 32 tests.
    #[test]
    fn one_app_cannot_keep_the_others_from_binding() {
        let mut rng = Rng(0x88B5_A77A);
        let mut filters = Filters::new();
        let mut attack = Vec::new();
        let mut refused = None;
        for binding in 100..164u32 {
            let mask = (0..3).fold(u32::MAX, |mask, _| mask & !(1 << rng.below(32)));
            let value = rng.next_u64() as u32 & mask;
            let text = alloc::format!("12:1=0x88 & 42:4/{mask:#x}={value:#x}");
            let filter = Filter::parse(&text).unwrap();
            match filters.insert_all(core::slice::from_ref(&filter), binding, 0) {
                Ok(()) => attack.push(filter),
                Err(refusal) => refused = Some(refusal),
            }
        }
        let others: [(u32, &[&str]); 3] = [
            (1, &["tcp dport 80"]),
            (2, &["udp dport 53", "udp dport 11211", "tcp dport 11211"]),
            (
                3,
                &[
                    "icmp dst 10.0.2.15",
                    "udp sport 53 dst 10.0.2.15 & 36:2/0xffc0=0xc000",
                    "tcp sport 53 dst 10.0.2.15 & 36:2/0xffc0=0xc000",
                ],
            ),
        ];
        for (app, texts) in others {
            let bound = filters.insert_all(&parsed(texts), app, app);
            assert_eq!(bound, Ok(()), "{texts:?} beside {} filters", attack.len());
        }
        assert_eq!(
            refused,
            Some(InsertError::OverShare {
                share: APP_FRAME_TESTS
            })
        );
        let refusal = InsertError::<u32>::OverShare { share: 8 }.to_string();
        assert!(refusal.contains("its share of 8 field tests"), "{refusal}");
        assert!(!attack.is_empty());
        // Every frame still finds its owner, within the limit.
        for (protocol, dport, owner) in [(6, 80, 1), (17, 53, 2), (6, 11211, 2), (17, 7, 0)] {
            let frame = frame(0x0800, protocol, dport);
            let expected = (owner != 0).then_some(owner);
            let (found, tests) = filters.classify_counting(&frame);
            assert_eq!(found, expected, "{dport}");
            assert!(tests <= MAX_FRAME_TESTS, "{tests} tests");
        }
        let mut masked = alloc::vec![0u8; 64];
        masked[12] = 0x88;
        for filter in &attack {
            let field = filter.atoms()[1];
            let noise = rng.next_u64() as u32 & !field.mask;
            masked[42..46].copy_from_slice(&(field.value | noise).to_be_bytes());
            let (found, tests) = filters.classify_counting(&masked);
            assert!(found.is_some_and(|binding| binding >= 100), "{filter}");
            assert!(tests <= MAX_FRAME_TESTS, "{filter}: {tests} tests");
        }
        for _ in 0..10_000 {
            masked[12..14].copy_from_slice(&[[0x88, 0xb5], [0x08, 0x00]][rng.below(2)]);
            masked[42..46].copy_from_slice(&(rng.next_u64() as u32).to_be_bytes());
            let (_, tests) = filters.classify_counting(&masked);
            assert!(tests <= MAX_FRAME_TESTS, "{masked:?}: {tests} tests");
        }
    }

    #[test]
    fn filters_that_would_cost_a_frame_too_many_tests_are_refused() {
        // The same four bytes under masks that each leave out three random bits: no two
        // filters overlap, but past a few dozen no bit is in every mask, so no test is
        // shared and each filter once cost every frame a test of its own (a thousand
        // such filters made every frame on the interface a hundred times slower).
        let mut rng = Rng(0x5EED_3A5C);
        let mut filters = Filters::new();
        let mut refused = 0;
        for owner in 0..1024u32 {
            let mask = (0..3).fold(u32::MAX, |mask, _| mask & !(1 << rng.below(32)));
            let value = rng.next_u64() as u32 & mask;
            let text = alloc::format!("12:2=0x0800 & 42:4/{mask:#x}={value:#x}");
            match filters.insert(Filter::parse(&text).unwrap(), owner) {
                Ok(()) => {}
                Err(InsertError::TooManyTests { max }) => {
                    assert_eq!(max, MAX_FRAME_TESTS);
                    refused += 1;
                }
                Err(overlap) => panic!("{text}: {overlap:?}"),
            }
        }
        let installed = listed(&filters);
        assert!(refused > 900, "{} installed", installed.len());
        // Each installed filter's frames still find it, and no frame costs more tests.
        let mut masked = alloc::vec![0u8; 64];
        masked[12..14].copy_from_slice(&[0x08, 0x00]);
        for (filter, owner) in &installed {
            let field = filter.atoms()[1];
            let noise = rng.next_u64() as u32 & !field.mask;
            masked[42..46].copy_from_slice(&(field.value | noise).to_be_bytes());
            let (found, tests) = filters.classify_counting(&masked);
            assert_eq!(found, Some(*owner), "{filter}");
            assert!(tests <= MAX_FRAME_TESTS, "{filter}: {tests} tests");
        }
        for _ in 0..10_000 {
            masked[42..46].copy_from_slice(&(rng.next_u64() as u32).to_be_bytes());
            let (_, tests) = filters.classify_counting(&masked);
            assert!(tests <= MAX_FRAME_TESTS, "{masked:?}: {tests} tests");
        }
        let refusal = InsertError::<u32>::TooManyTests {
            max: MAX_FRAME_TESTS,
        };
        assert!(refusal.to_string().contains("more than 32 field tests"));
        // Filters that share their fields still go in beside them.
        let raw = parsed(&["12:2=0x88b5 & 14:1=1", "12:2=0x88b5 & 14:1=2"]);
        filters.insert_all(&raw, 5000, 5000).unwrap();
        let mut tagged = frame(0x88b5, 0, 0);
        tagged[14] = 2;
        assert_eq!(filters.classify(&tagged), Some(5000));
    }

    #[test]
    fn overlap_agrees_with_brute_force_on_one_byte() {
        // On single-byte filters every frame can be enumerated.
        let mut rng = Rng(77);
        for _ in 0..2000 {
            let atom = |rng: &mut Rng| {
                let mask = (1 + rng.below(255)) as u32;
                Atom {
                    offset: 0,
                    width: 1,
                    mask,
                    value: rng.below(256) as u32 & mask,
                }
            };
            let (a, b) = (
                Filter::new(alloc::vec![atom(&mut rng)]).unwrap(),
                Filter::new(alloc::vec![atom(&mut rng)]).unwrap(),
            );
            let both = (0..=255u8).any(|byte| a.matches(&[byte]) && b.matches(&[byte]));
            assert_eq!(a.overlaps(&b), both, "{a} vs {b}");
        }
    }
}
