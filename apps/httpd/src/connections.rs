//! One core's connections: accepted while places are free, each moved on as far as it
//! goes without waiting, and given back to the TCP once finished. The serving loop
//! (`lib.rs`) and the host tests (`tests.rs`) run the same code.

use alloc::vec::Vec;

use rexo_http::{DateField, Page, Site};

use crate::client::{Client, Ending, Progress};
use crate::status::Counters;
use crate::transport::Transport;

/// A core's open connections.
pub struct Connections {
    /// Every open connection.
    clients: Vec<Client>,
    /// The most served at once; more wait in the TCP's backlog until one ends.
    max_clients: usize,
}

impl Connections {
    /// No connection yet; at most `max_clients` at once.
    pub fn new(max_clients: usize) -> Connections {
        Connections {
            clients: Vec::new(),
            max_clients,
        }
    }

    /// The open connections.
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// Takes every open connection, to close them all.
    pub fn take_all(&mut self) -> Vec<Client> {
        core::mem::take(&mut self.clients)
    }

    /// Accepts the connections whose handshake finished at `now_ns` while places are
    /// free, each counted in `counters`; whether any was.
    pub fn accept(
        &mut self,
        tcp: &mut Transport,
        counters: &spin::Mutex<Counters>,
        now_ns: u64,
    ) -> bool {
        let mut accepted = false;
        while self.clients.len() < self.max_clients {
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
    /// and `counters`); gives finished ones back to `tcp`. Whether any byte moved or a
    /// connection ended.
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
            match self.clients[index].step(tcp, site, pages, date, counters, now_ns) {
                Progress::Open { moved: step_moved } => {
                    moved |= step_moved;
                    index += 1;
                }
                Progress::Finished(ending) => {
                    let link = self.clients.swap_remove(index).into_link();
                    tcp.finish(link, ending == Ending::Abort);
                    moved = true;
                }
            }
        }
        moved
    }
}
