//! The installed filters of a machine, merged into one decision tree.
//!
//! Installed filters never overlap (insertion refuses an overlap), so a frame matches at
//! most one, and the tree may stop at the first match. Each node tests one field (offset,
//! width, mask) that many of its filters share and picks the child by the field's value
//! (a sorted table, binary search); filters that do not test that field wait in the
//! node's `rest` subtree. The tree is rebuilt on insert and remove (rare; a batch of
//! one owner's filters, [`Filters::insert_all`], is one rebuild), and read on every frame
//! (often).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use crate::{Atom, Filter};

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
        }
    }
}

/// A field a node tests: (offset, width, mask).
type Field = (u16, u8, u32);

/// Filters still to place, each with the atoms not yet tested on the way down.
type Pending<T> = Vec<(Vec<Atom>, T)>;

/// A node's test: the field, and a child per value (sorted by value).
type Test<T> = (Field, Vec<(u32, Node<T>)>);

/// One node of the decision tree.
#[derive(Debug, Default)]
struct Node<T> {
    /// A filter whose atoms are all satisfied on the way here.
    matched: Option<T>,
    /// The field tested here and the children by value, sorted.
    test: Option<Test<T>>,
    /// The filters that do not test that field.
    rest: Option<Box<Node<T>>>,
}

impl<T: Copy> Node<T> {
    /// Builds the node for `filters` (each with the atoms still to test).
    fn build(mut filters: Pending<T>) -> Self {
        let mut node = Node {
            matched: None,
            test: None,
            rest: None,
        };
        if let Some(done) = filters.iter().position(|(atoms, _)| atoms.is_empty()) {
            // Disjoint filters: one with nothing left to test excludes no other frames
            // here only if it is alone; its siblings still need their own tests.
            node.matched = Some(filters.swap_remove(done).1);
        }
        if filters.is_empty() {
            return node;
        }
        // The field most of the filters test.
        let mut fields: Vec<Field> = filters
            .iter()
            .flat_map(|(atoms, _)| atoms.iter().map(|a| (a.offset, a.width, a.mask)))
            .collect();
        fields.sort_unstable();
        let field = fields
            .chunk_by(|a, b| a == b)
            .max_by_key(|run| run.len())
            .map(|run| run[0])
            .expect("filters with atoms left test some field");
        let (mut testing, rest): (Vec<_>, Vec<_>) = filters
            .into_iter()
            .partition(|(atoms, _)| atoms.iter().any(|a| (a.offset, a.width, a.mask) == field));
        let mut by_value: Vec<(u32, Pending<T>)> = Vec::new();
        for (mut atoms, owner) in testing.drain(..) {
            let at = atoms
                .iter()
                .position(|a| (a.offset, a.width, a.mask) == field)
                .expect("partitioned on it");
            let value = atoms.remove(at).value;
            match by_value.binary_search_by_key(&value, |(v, _)| *v) {
                Ok(i) => by_value[i].1.push((atoms, owner)),
                Err(i) => by_value.insert(i, (value, alloc::vec![(atoms, owner)])),
            }
        }
        node.test = Some((
            field,
            by_value
                .into_iter()
                .map(|(v, group)| (v, Node::build(group)))
                .collect(),
        ));
        if !rest.is_empty() {
            node.rest = Some(Box::new(Node::build(rest)));
        }
        node
    }

    /// The owner of the filter `frame` matches, if any.
    fn classify(&self, frame: &[u8]) -> Option<T> {
        if let Some((field, children)) = &self.test {
            let atom = Atom {
                offset: field.0,
                width: field.1,
                mask: field.2,
                value: 0,
            };
            if let Some(value) = atom.field(frame)
                && let Ok(i) = children.binary_search_by_key(&value, |(v, _)| *v)
                && let Some(owner) = children[i].1.classify(frame)
            {
                return Some(owner);
            }
        }
        if let Some(owner) = self.rest.as_ref().and_then(|rest| rest.classify(frame)) {
            return Some(owner);
        }
        self.matched
    }
}

/// The installed filters, each with its owner, and the tree merged from them.
pub struct Filters<T> {
    /// What was installed, in order.
    installed: Vec<(Filter, T)>,
    /// The decision tree over `installed`.
    tree: Node<T>,
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
            tree: Node {
                matched: None,
                test: None,
                rest: None,
            },
        }
    }

    /// Installs `filter` for `owner`, unless it overlaps an installed filter.
    pub fn insert(&mut self, filter: Filter, owner: T) -> Result<(), InsertError<T>> {
        self.insert_all(core::slice::from_ref(&filter), owner)
    }

    /// Installs all of `filters` for `owner`, or none of them: each is checked against
    /// the installed filters and then those before it in `filters`, so the refusal names
    /// the owner and filter that [`insert`](Self::insert) one by one would (`owner`
    /// itself for an overlap within `filters`), but the tree is rebuilt once, not once
    /// per filter, and a refusal leaves the installed filters as they were.
    pub fn insert_all(&mut self, filters: &[Filter], owner: T) -> Result<(), InsertError<T>> {
        for (at, filter) in filters.iter().enumerate() {
            if let Some(refused) = self.first_overlap(filter, &filters[..at], owner) {
                return Err(refused);
            }
        }
        if filters.is_empty() {
            return Ok(());
        }
        self.installed
            .extend(filters.iter().map(|filter| (filter.clone(), owner)));
        self.rebuild();
        Ok(())
    }

    /// The first filter `filter` overlaps, installed ones first and then `earlier` (not
    /// yet installed, of `owner`), as the refusal that names it.
    fn first_overlap(
        &self,
        filter: &Filter,
        earlier: &[Filter],
        owner: T,
    ) -> Option<InsertError<T>> {
        let installed = self
            .installed
            .iter()
            .map(|(other, holder)| (other, *holder));
        let pending = earlier.iter().map(|other| (other, owner));
        installed
            .chain(pending)
            .find(|(other, _)| other.overlaps(filter))
            .map(|(other, holder)| InsertError::Overlaps {
                owner: holder,
                filter: other.clone(),
            })
    }

    /// Removes every filter of `owner`; returns how many.
    pub fn remove_owner(&mut self, owner: T) -> usize {
        let before = self.installed.len();
        self.installed.retain(|(_, holder)| *holder != owner);
        let removed = before - self.installed.len();
        if removed > 0 {
            self.rebuild();
        }
        removed
    }

    /// Removes every filter of each of `owners`; returns how many. The classification
    /// after is that of [`remove_owner`](Self::remove_owner) one owner at a time, but the
    /// tree is rebuilt once, not once per owner.
    pub fn remove_owners(&mut self, owners: &[T]) -> usize {
        let before = self.installed.len();
        self.installed
            .retain(|(_, holder)| !owners.contains(holder));
        let removed = before - self.installed.len();
        if removed > 0 {
            self.rebuild();
        }
        removed
    }

    /// The installed filters with their owners.
    pub fn installed(&self) -> &[(Filter, T)] {
        &self.installed
    }

    /// The owner of the one filter `frame` matches, if any.
    pub fn classify(&self, frame: &[u8]) -> Option<T> {
        self.tree.classify(frame)
    }

    /// Merges the installed filters into the tree again.
    fn rebuild(&mut self) {
        let filters = self
            .installed
            .iter()
            .map(|(f, owner)| (f.atoms().to_vec(), *owner))
            .collect();
        self.tree = Node::build(filters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rexo_testkit::Rng;

    fn frame(ethertype: u16, protocol: u8, dport: u16) -> Vec<u8> {
        let mut frame = alloc::vec![0u8; 64];
        frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
        frame[14] = 0x45;
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
            .insert_all(&parsed(&["tcp dport 80", "tcp dport 8080", "tcp"]), "httpd")
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
            .insert_all(&parsed(&["tcp dport 80", "udp"]), "greedy")
            .unwrap_err();
        assert!(matches!(
            with_installed,
            InsertError::Overlaps { owner: "kv", .. }
        ));
        assert_eq!(filters.installed().len(), 1, "{:?}", filters.installed());
        assert_eq!(filters.classify(&frame(0x0800, 6, 80)), None);
        assert_eq!(filters.classify(&frame(0x0800, 17, 11211)), Some("kv"));
        filters
            .insert_all(&parsed(&["tcp dport 80", "tcp dport 8080"]), "httpd")
            .unwrap();
        assert_eq!(filters.classify(&frame(0x0800, 6, 80)), Some("httpd"));
        assert_eq!(filters.classify(&frame(0x0800, 6, 8080)), Some("httpd"));
        assert_eq!(filters.classify(&frame(0x0800, 17, 11211)), Some("kv"));
        filters.insert_all(&[], "nobody").unwrap();
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
                assert_eq!(batched.insert_all(&batch, owner), single, "round {round}");
                assert_eq!(batched.installed(), one_by_one.installed(), "round {round}");
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
                one_by_one.insert(filter.clone(), *owner).unwrap();
            }
            // Some owners twice, some never installed.
            let ended: Vec<usize> = (0..rng.below(6)).map(|_| rng.below(12)).collect();
            let removed: usize = ended.iter().map(|o| one_by_one.remove_owner(*o)).sum();
            assert_eq!(at_once.remove_owners(&ended), removed, "round {round}");
            assert_eq!(at_once.installed(), one_by_one.installed(), "round {round}");
            for _ in 0..50 {
                let frame: Vec<u8> = (0..40).map(|_| rng.below(4) as u8).collect();
                assert_eq!(
                    at_once.classify(&frame),
                    one_by_one.classify(&frame),
                    "round {round}"
                );
            }
        }
    }

    /// A random atom over a small space of fields and values, so filters often share
    /// fields and often overlap.
    fn random_filter(rng: &mut Rng) -> Option<Filter> {
        let fields: [(u16, u8, u32); 6] = [
            (12, 2, 0xFFFF),
            (14, 1, 0xFF),
            (14, 1, 0xF0),
            (23, 1, 0xFF),
            (36, 2, 0xFFFF),
            (34, 4, 0x0000_FF00),
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
