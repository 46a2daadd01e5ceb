//! Controller resets: how the driver gets a controller that held a command past
//! [`IO_TIMEOUT_NS`] back to work without waiting inside a call: each `poll` moves the
//! reset on as far as the controller lets it. The controller level reset of NVMe Base
//! 3.7.2 (CC.EN cleared: the controller drops every command, deletes the I/O queues and
//! empties the admin ones), then the initialization of 3.5.1 again over the same queue
//! memory: the admin queue registers, CC.EN, CSTS.RDY within CAP.TO, Set Features
//! Number of Queues with the count the probe asked for (the reset resets the
//! controller's internal state, so a controller may be back at its default allocation,
//! under which a queue past it is refused; Linux and FreeBSD ask again after every reset
//! too), then Create I/O Completion and Submission Queue for each pair, one admin
//! command at a time. No slot is reused, and no request the controller had is failed,
//! before CSTS.RDY clears: until then the controller may still carry a command out and
//! write into its buffer.

use rexo_api::{Completion, DeviceError, Tag};

use crate::{ADMIN_TIMEOUT_MS, IO_TIMEOUT_NS, IoQueue, Nvme, SET_QUEUE_COUNT, Slot, spec};

/// Why a reset fails the disk when Set Features Number of Queues gets no answer, or
/// one under another command's identifier.
const QUEUE_COUNT_NOT_SET: &str = "the number of I/O queues was not set after a reset";

/// How far a controller reset has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reset {
    /// CC.EN was cleared: waiting (up to CAP.TO) for CSTS.RDY to clear.
    Disabling {
        /// When CC.EN was cleared.
        since: u64,
    },
    /// CC.EN was set again over the emptied admin queue: waiting (up to CAP.TO) for
    /// CSTS.RDY.
    Enabling {
        /// When CC.EN was set.
        since: u64,
    },
    /// Bringing the I/O queues back: waiting (up to the admin timeout) for the answer
    /// to admin command `step` of [`Nvme::send_reset_step`].
    Creating {
        /// The step.
        step: usize,
        /// Its command identifier.
        id: u16,
        /// When it was sent.
        since: u64,
    },
}

impl Nvme {
    /// Starts a controller reset because of `why`: every request the controller has
    /// becomes [`Slot::Interrupted`], and CC.EN is cleared. [`Self::continue_reset`]
    /// goes on from there. Every core armed for a completion is woken now: no message
    /// will come for a request the reset interrupts, and only polls move the reset on.
    pub(crate) fn start_reset(&mut self, why: &'static str) {
        log::warn!("nvme: {why}: resetting the controller");
        for io in &mut self.queues {
            io.interrupt();
        }
        self.wakes.wake_all_now();
        self.controller.clear_enable();
        self.reset = Some(Reset::Disabling {
            since: self.platform.now_ns(),
        });
    }

    /// Moves the reset on as far as the controller lets it now, never waiting. A reset
    /// that cannot finish (CSTS.RDY not following CC.EN within CAP.TO, a fatal status,
    /// the controller gone, fewer I/O queues granted than the driver runs, an admin
    /// command refused (but for Set Features Number of Queues refused with a status),
    /// answered under another command's identifier, or not answered within the admin
    /// timeout) leaves the disk `Failed` for good, with the controller disabled.
    pub(crate) fn continue_reset(&mut self) -> Result<(), DeviceError> {
        loop {
            match self.reset {
                None => return Ok(()),
                // Each step reads the clock before the controller: a core that was away
                // past the bound still takes a controller that got there meanwhile.
                Some(Reset::Disabling { since }) => {
                    let late = self.controller.ready_timeout_passed(since);
                    if self.reset_status()? & spec::CSTS_READY != 0 {
                        if late {
                            return Err(
                                self.fail("the controller did not reset (CSTS.RDY stayed set)")
                            );
                        }
                        return Ok(());
                    }
                    // The controller no longer touches the queues: they start over, and
                    // the slots of abandoned requests are free.
                    self.admin.restart();
                    for io in &mut self.queues {
                        io.pair.restart();
                        io.forget_commands();
                    }
                    self.controller.set_admin_queue(&self.admin);
                    self.controller.set_enable();
                    self.reset = Some(Reset::Enabling {
                        since: self.platform.now_ns(),
                    });
                }
                Some(Reset::Enabling { since }) => {
                    let late = self.controller.ready_timeout_passed(since);
                    let status = self.reset_status()?;
                    if status & spec::CSTS_FATAL != 0 {
                        return Err(self.fail("controller fatal status (CSTS.CFS) after a reset"));
                    }
                    if status & spec::CSTS_READY == 0 {
                        if late {
                            return Err(
                                self.fail("the controller did not become ready after a reset")
                            );
                        }
                        return Ok(());
                    }
                    self.send_reset_step(0);
                }
                Some(Reset::Creating { step, id, since }) => {
                    let what = self.reset_step_name(step);
                    let waited = self.platform.now_ns().saturating_sub(since);
                    // The disk's reason when this step fails (refused, or not answered).
                    let (refused, unanswered) = match step {
                        0 => (QUEUE_COUNT_NOT_SET, QUEUE_COUNT_NOT_SET),
                        _ => (
                            "an I/O queue was refused after a reset",
                            "an I/O queue was not created after a reset",
                        ),
                    };
                    match self.admin_answer(what, id) {
                        // A controller that kept the allocation may refuse to set it
                        // again: the queues are created on it (a queue past it is
                        // refused, which fails the disk below). Only a status is such a
                        // refusal: an answer naming another command is a fault.
                        Err(error @ DeviceError::Status { .. }) if step == 0 => {
                            log::warn!(
                                "nvme: {error}: the I/O queues are created on the count granted before the reset"
                            );
                            self.send_reset_step(1);
                        }
                        Err(error) => {
                            log::error!("nvme: {error}");
                            return Err(self.fail(refused));
                        }
                        Ok(None) => {
                            if waited > ADMIN_TIMEOUT_MS * 1_000_000 {
                                log::error!("nvme: no answer to {what}");
                                return Err(self.fail(unanswered));
                            }
                            return Ok(());
                        }
                        Ok(Some(granted)) if step == 0 => {
                            let pairs = spec::granted_pairs(granted, self.queue_pairs_asked);
                            if usize::from(pairs) < self.queues.len() {
                                log::error!(
                                    "nvme: {pairs} I/O queue pair(s) granted after a reset, {} in use",
                                    self.queues.len()
                                );
                                return Err(
                                    self.fail("fewer I/O queues were granted after a reset")
                                );
                            }
                            self.send_reset_step(1);
                        }
                        Ok(Some(_)) => self.send_reset_step(step + 1),
                    }
                }
            }
        }
    }

    /// Sends admin command `step` of bringing the I/O queues back, or ends the reset
    /// when every queue is created: step 0 is Set Features Number of Queues (as many as
    /// the probe asked for), step `s` after it step `s - 1` of [`Self::queue_creation`].
    fn send_reset_step(&mut self, step: usize) {
        if step == 1 + 2 * self.queues.len() {
            self.reset = None;
            log::info!("nvme: controller reset, I/O queues created again");
            return;
        }
        let id = if step == 0 {
            let pairs = self.queue_pairs_asked;
            self.send_admin(|id| spec::Command::set_queue_count(id, pairs))
        } else {
            self.send_admin(self.queue_creation(step - 1).1)
        };
        self.reset = Some(Reset::Creating {
            step,
            id,
            since: self.platform.now_ns(),
        });
    }

    /// The name of admin command `step` of [`Self::send_reset_step`].
    fn reset_step_name(&self, step: usize) -> &'static str {
        match step {
            0 => SET_QUEUE_COUNT,
            _ => self.queue_creation(step - 1).0,
        }
    }

    /// CSTS, or the disk marked `Failed` when the controller no longer answers.
    fn reset_status(&mut self) -> Result<u32, DeviceError> {
        self.controller
            .status()
            .map_err(|_| self.fail("the controller no longer answers"))
    }

    /// Gives the reset up because of `why`: the controller is disabled (without waiting)
    /// and the disk marked `Failed`, which every later call says.
    fn fail(&mut self, why: &'static str) -> DeviceError {
        log::error!("nvme: {why}: the disk stops");
        self.controller.clear_enable();
        self.reset = None;
        self.failed = Some(why);
        DeviceError::Failed(why)
    }

    /// Whether the controller was disabled since the latest reset began (true when
    /// there was none): the slots of the requests it had are safe to reuse.
    pub(crate) fn disabled_since_reset(&self) -> bool {
        !matches!(self.reset, Some(Reset::Disabling { .. }))
    }
}

impl IoQueue {
    /// Makes every request the controller has [`Slot::Interrupted`] (it is being reset).
    fn interrupt(&mut self) {
        for slot in &mut self.slots {
            if let Slot::Busy { rung_at, .. } = slot.state {
                slot.state = Slot::Interrupted {
                    rung_at,
                    timed_out: None,
                };
                self.interrupted = true;
            }
        }
    }

    /// Once the controller is disabled, none of the commands it had can complete: each
    /// slot that had one moves to its next generation (so a completion of one, from a
    /// controller that posts it after all, is stale), and abandoned slots are free.
    fn forget_commands(&mut self) {
        for index in 0..self.slots.len() {
            match self.slots[index].state {
                Slot::Free => continue,
                Slot::Abandoned { .. } => self.release(index),
                Slot::Busy { .. } | Slot::Interrupted { .. } => {}
            }
            self.slots[index].advance_generation();
        }
    }

    /// Fails each [`Slot::Interrupted`] request through `done` and frees its slot (the
    /// reset is over, or failed for good): with `error`, except that a request the
    /// reset was for gets its [`DeviceError::Timeout`] when `error` is
    /// [`DeviceError::Reset`] (the reset disabled the controller: its command will not
    /// be carried out). How many.
    pub(crate) fn fail_interrupted(&mut self, error: DeviceError, done: Completion<'_>) -> usize {
        let mut failed = 0;
        for index in 0..self.slots.len() {
            if let Slot::Interrupted { timed_out, .. } = self.slots[index].state {
                self.release(index);
                let result = match timed_out {
                    Some(operation) if error == DeviceError::Reset => DeviceError::Timeout {
                        what: operation.name(),
                        ms: IO_TIMEOUT_NS / 1_000_000,
                    },
                    _ => error,
                };
                done(index as Tag, Err(result));
                failed += 1;
            }
        }
        self.interrupted = false;
        failed
    }
}
