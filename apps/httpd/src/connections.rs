//! One core's connections: accepted while places are free, each moved on as far as it
//! goes without waiting, and given back to the TCP once finished. Those draining their
//! last answer (`rexo-tcp`) have places of their own, so that clients slow to take it
//! cannot keep new ones out; past those places a connection that would drain is reset
//! (on smoltcp the stack holds such connections once given back, and
//! `Transport::finish` resets one past as many places).
//! The serving loop (`lib.rs`) and the host tests (`tests.rs`) run the same code.

use alloc::vec::Vec;

use rexo_http::{DateField, Page, Site};

use crate::Places;
use crate::client::{Client, Ending, Progress};
use crate::status::Counters;
use crate::transport::Transport;

/// A core's open connections.
pub struct Connections {
    /// Every open connection, served or draining.
    clients: Vec<Client>,
    /// How many of `clients` drain their last answer.
    draining: usize,
    /// The places: served at once (more wait in the TCP's backlog until one ends), and
    /// draining.
    places: Places,
}

impl Connections {
    /// No connection yet; at most `places` at once.
    pub fn new(places: Places) -> Connections {
        Connections {
            clients: Vec::new(),
            draining: 0,
            places,
        }
    }

    /// The open connections.
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// Takes every open connection, to close them all.
    pub fn take_all(&mut self) -> Vec<Client> {
        self.draining = 0;
        core::mem::take(&mut self.clients)
    }

    /// Accepts the connections whose handshake finished at `now_ns` while places to
    /// serve are free (draining ones take none), each counted in `counters`; whether any
    /// was.
    pub fn accept(
        &mut self,
        tcp: &mut Transport,
        counters: &spin::Mutex<Counters>,
        now_ns: u64,
    ) -> bool {
        let mut accepted = false;
        while self.clients.len() - self.draining < self.places.clients {
            let Some(connection) = tcp.accept() else {
                break;
            };
            counters.lock().accepted += 1;
            self.clients.push(Client::new(connection, now_ns));
            accepted = true;
        }
        accepted
    }

    /// Moves every connection on at `now_ns` ([`Client::step`], with `pages`, `date`
    /// and `counters`); gives finished ones back to `tcp`, and resets one that starts to
    /// drain when every draining place is taken, or that `tcp` reset closing for the
    /// same reason (each counted `drain_reset`). Whether any
    /// byte moved or a connection ended.
    pub fn step(
        &mut self,
        tcp: &mut Transport,
        site: &Site,
        pages: &mut dyn FnMut(&[u8], bool) -> Page,
        date: Option<&DateField>,
        counters: &spin::Mutex<Counters>,
        now_ns: u64,
    ) -> bool {
        let mut moved = false;
        let mut index = 0;
        while index < self.clients.len() {
            let client = &mut self.clients[index];
            let was_draining = client.is_draining();
            let ending = match client.step(tcp, site, pages, date, counters, now_ns) {
                Progress::Open { moved: step_moved } => {
                    moved |= step_moved;
                    let starts_draining = !was_draining && client.is_draining();
                    if !starts_draining || self.draining < self.places.draining {
                        self.draining += usize::from(starts_draining);
                        index += 1;
                        continue;
                    }
                    counters.lock().drain_reset += 1;
                    Ending::Abort
                }
                Progress::Finished(ending) => {
                    if was_draining {
                        self.draining -= 1;
                    }
                    ending
                }
            };
            let link = self.clients.swap_remove(index).into_link();
            if tcp.finish(link, ending == Ending::Abort) {
                counters.lock().drain_reset += 1;
            }
            moved = true;
        }
        moved
    }
}
