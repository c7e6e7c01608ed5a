//! What a long call from Python does as it goes: Ctrl-C stops it, and a Python callable, where
//! given, hears each step. Both need the GIL, which the call runs without, so they are taken
//! only now and then (every 50 ms for Ctrl-C alone).

use std::time::{Duration, Instant};

use pyo3::prelude::*;

use gradstab::api::Progress;

/// How often a call without a callback looks for a Ctrl-C.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

pub struct Watch {
    callback: Option<Py<PyAny>>,
    last_check: Instant,
    /// The exception that stopped the call: a KeyboardInterrupt, or the callback's own.
    raised: Option<PyErr>,
}

impl Watch {
    pub fn new(callback: Option<Py<PyAny>>) -> Self {
        Watch {
            callback,
            last_check: Instant::now(),
            raised: None,
        }
    }

    /// The library's progress callback: a pending Ctrl-C or an exception in the Python
    /// callback stops the call (`Error::Interrupted`), and is kept for [`Watch::finish`].
    pub fn tick(&mut self, p: Progress) -> gradstab::Result<()> {
        if self.callback.is_none() && self.last_check.elapsed() < SIGNAL_CHECK {
            return Ok(());
        }
        self.last_check = Instant::now();
        let heard = Python::attach(|py| -> PyResult<()> {
            py.check_signals()?;
            if let Some(callback) = &self.callback {
                callback.call1(py, (p.done, p.total, p.label))?;
            }
            Ok(())
        });
        heard.map_err(|e| {
            self.raised = Some(e);
            gradstab::Error::Interrupted
        })
    }

    /// The call's result, with the exception that stopped it in place of the library's
    /// `Interrupted`.
    pub fn finish<T>(self, result: PyResult<T>) -> PyResult<T> {
        match (result, self.raised) {
            (Err(_), Some(raised)) => Err(raised),
            (result, _) => result,
        }
    }
}
