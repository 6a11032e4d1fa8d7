//! The cap on open client connections per core ([`crate::ServerLimits::connections_max`]).
//!
//! Every listener served on one executor thread (one core) counts its open connections in
//! one per-thread tally. A connection accepted while the tally is at the cap is closed at
//! once, without reading from it: the client sees the connection closed and can retry, and
//! a retry from a new source port is usually hashed by `SO_REUSEPORT` to another core.
//! (Leaving it in the kernel's backlog instead would park it behind this core while other
//! cores may have room, and clients would see connect timeouts rather than a quick error.)
//! A burst of refusals is logged once when it starts and once when the core accepts again.

use std::cell::RefCell;

/// What [`Admission::admit`] decided for one accepted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Serve it. `refused_before`: connections refused in the burst that just ended (0 if
    /// the core was not refusing).
    Admit { refused_before: u64 },
    /// Close it. `first_of_burst`: the core was accepting until now.
    Refuse { first_of_burst: bool },
}

/// The tally of one core: open connections and the current burst of refusals.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    open: usize,
    refused_in_burst: u64,
}

impl Admission {
    /// Decides for a newly accepted connection under a cap of `connections_max` open ones
    /// (at least one is always allowed); an admitted connection counts until [`Admission::release`].
    pub(crate) fn admit(&mut self, connections_max: usize) -> Decision {
        if self.open >= connections_max.max(1) {
            self.refused_in_burst += 1;
            return Decision::Refuse {
                first_of_burst: self.refused_in_burst == 1,
            };
        }
        self.open += 1;
        let refused_before = std::mem::take(&mut self.refused_in_burst);
        Decision::Admit { refused_before }
    }

    /// An admitted connection ended.
    pub(crate) fn release(&mut self) {
        assert!(self.open > 0, "a connection slot released twice");
        self.open -= 1;
    }
}

thread_local! {
    /// This executor thread's (core's) tally, shared by all its listeners.
    static ADMISSION: RefCell<Admission> = RefCell::new(Admission::default());
}

/// An admitted connection's place in its core's tally, given back when dropped.
pub(crate) struct ConnectionSlot {
    /// Not `Send`: the slot must be dropped on the thread whose tally it counts in.
    _thread_bound: std::marker::PhantomData<*const ()>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        ADMISSION.with(|admission| admission.borrow_mut().release());
    }
}

/// Admits a connection just accepted on this core, or refuses it (the caller closes it);
/// logs the start and the end of a burst of refusals.
pub(crate) fn admit(
    connections_max: usize,
    listener: Option<std::net::SocketAddr>,
) -> Option<ConnectionSlot> {
    let decision = ADMISSION.with(|admission| admission.borrow_mut().admit(connections_max));
    let address = listener.map(|a| a.to_string()).unwrap_or_default();
    match decision {
        Decision::Admit { refused_before } => {
            if refused_before > 0 {
                tracing::info!(
                    %address,
                    "connections-max" = connections_max as u64,
                    refused = refused_before,
                    "net: below the connection limit again, accepting new connections"
                );
            }
            Some(ConnectionSlot {
                _thread_bound: std::marker::PhantomData,
            })
        }
        Decision::Refuse { first_of_burst } => {
            if first_of_burst {
                tracing::warn!(
                    %address,
                    "connections-max" = connections_max as u64,
                    "net: too many open connections on this core, closing new connections until some end"
                );
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_cap_and_reports_each_burst_once() {
        let mut admission = Admission::default();
        for _ in 0..3 {
            assert_eq!(admission.admit(3), Decision::Admit { refused_before: 0 });
        }
        assert_eq!(
            admission.admit(3),
            Decision::Refuse {
                first_of_burst: true
            }
        );
        assert_eq!(
            admission.admit(3),
            Decision::Refuse {
                first_of_burst: false
            }
        );
        assert_eq!(
            admission.admit(3),
            Decision::Refuse {
                first_of_burst: false
            }
        );
        admission.release();
        assert_eq!(admission.admit(3), Decision::Admit { refused_before: 3 });
        // A second burst is reported again.
        assert_eq!(
            admission.admit(3),
            Decision::Refuse {
                first_of_burst: true
            }
        );
        admission.release();
        admission.release();
        assert_eq!(admission.admit(3), Decision::Admit { refused_before: 1 });
        assert_eq!(admission.admit(3), Decision::Admit { refused_before: 0 });
    }

    #[test]
    fn a_zero_cap_still_admits_one() {
        let mut admission = Admission::default();
        assert_eq!(admission.admit(0), Decision::Admit { refused_before: 0 });
        assert_eq!(
            admission.admit(0),
            Decision::Refuse {
                first_of_burst: true
            }
        );
    }

    #[test]
    #[should_panic(expected = "released twice")]
    fn releasing_more_than_admitted_is_a_bug() {
        Admission::default().release();
    }
}
