//! Progress of a `slipway ci run` on stderr: on a terminal a spinner line per running job
//! (its current step and how long it has run) with finished jobs printed above as lines;
//! elsewhere (a pipe, CI logs) the same events as plain lines, one per step and job.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use slipway_ci::runner::{Conclusion, LogEvent, LogSink};

/// The sink for a run: `None` when `quiet`, spinners when stderr is a terminal, else lines.
pub fn sink(quiet: bool) -> Option<Arc<dyn LogSink>> {
    if quiet {
        None
    } else if std::io::stderr().is_terminal() {
        Some(Arc::new(Bars::new()))
    } else {
        Some(Arc::new(Lines))
    }
}

/// The plain line for an event, if it gets one: step starts, steps that did not succeed, and
/// job ends (with how long the job took when known).
fn line(event: &LogEvent, took: Option<Duration>) -> Option<String> {
    Some(match event {
        LogEvent::StepStarted { job, step } => format!("[{job}] {step}"),
        LogEvent::StepFinished {
            job,
            step,
            conclusion,
        } if *conclusion != Conclusion::Success => format!("[{job}] {step}: {conclusion}"),
        LogEvent::JobFinished { job, result } => match took {
            Some(d) => format!("[{job}] job {result} ({:.1}s)", d.as_secs_f64()),
            None => format!("[{job}] job {result}"),
        },
        _ => return None,
    })
}

/// Plain lines, for a stderr that is not a terminal.
struct Lines;

impl LogSink for Lines {
    fn event(&self, event: &LogEvent) {
        if let Some(l) = line(event, None) {
            let _ = writeln!(std::io::stderr(), "{l}");
        }
    }
}

/// Spinners, for a terminal.
struct Bars {
    multi: MultiProgress,
    style: ProgressStyle,
    running: Mutex<HashMap<String, (ProgressBar, Instant)>>,
}

impl Bars {
    fn new() -> Bars {
        let style = ProgressStyle::with_template("{spinner} [{prefix}] {wide_msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            style,
            running: Mutex::new(HashMap::new()),
        }
    }

    fn print(&self, text: &str) {
        // Printed above the spinners; when the terminal went away there is nobody to tell.
        let _ = self.multi.println(text);
    }
}

impl LogSink for Bars {
    fn event(&self, event: &LogEvent) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            LogEvent::JobStarted { job } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(self.style.clone());
                bar.set_prefix(job.clone());
                bar.set_message("starting");
                bar.enable_steady_tick(Duration::from_millis(120));
                running.insert(job.clone(), (bar, Instant::now()));
            }
            LogEvent::StepStarted { job, step } => {
                if let Some((bar, _)) = running.get(job) {
                    bar.set_message(step.clone());
                }
            }
            LogEvent::StepFinished { .. } => {
                if let Some(l) = line(event, None) {
                    self.print(&l);
                }
            }
            LogEvent::JobFinished { job, .. } => {
                let took = running.remove(job).map(|(bar, started)| {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                    started.elapsed()
                });
                if let Some(l) = line(event, took) {
                    self.print(&l);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_tell_step_starts_failures_and_job_ends() {
        let started = LogEvent::StepStarted {
            job: "build".into(),
            step: "Run make".into(),
        };
        assert_eq!(line(&started, None).as_deref(), Some("[build] Run make"));
        let ok = LogEvent::StepFinished {
            job: "build".into(),
            step: "Run make".into(),
            conclusion: Conclusion::Success,
        };
        assert_eq!(line(&ok, None), None, "a step that succeeded adds no line");
        let failed = LogEvent::StepFinished {
            job: "build".into(),
            step: "Run make".into(),
            conclusion: Conclusion::Failure,
        };
        assert_eq!(
            line(&failed, None).as_deref(),
            Some("[build] Run make: failure")
        );
        let done = LogEvent::JobFinished {
            job: "build".into(),
            result: Conclusion::Success,
        };
        assert_eq!(
            line(&done, Some(Duration::from_millis(1500))).as_deref(),
            Some("[build] job success (1.5s)")
        );
        let text = LogEvent::Line {
            job: "build".into(),
            step: "Run make".into(),
            line: "cc -c".into(),
        };
        assert_eq!(line(&text, None), None, "output lines are not progress");
    }
}
