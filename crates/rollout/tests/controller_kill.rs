//! Issue 5's acceptance item: "SIGKILL of the controller mid-rollout: on restart it resumes at
//! the same step with the same weights, and no client request fails in between".
//!
//! In Slipway the rollout controller runs inside `slipway up` together with the embedded
//! proxy, so a SIGKILL of that process also takes the proxy (and every client connection)
//! down: requests during that gap fail by construction, whatever the controller does. What the
//! controller itself must guarantee is crash-only behaviour: dying at any moment, without its
//! graceful [`RolloutHandle::shutdown`], loses nothing that was acted on, and a successor over
//! the same store resumes at the checkpointed step with the checkpointed weights without
//! touching the proxy's routing. The first test checks that, with the proxy kept alive.
//!
//! **How the controller is killed.** It runs on its own tokio runtime (one worker thread),
//! as the controller's whole world: its loop task and every analysis task it spawns. The test
//! ends that runtime with [`tokio::runtime::Runtime::shutdown_background`]: no stop flag, no
//! `abandon_all`, no awaiting; every task is dropped wherever it is suspended, exactly as if
//! the threads had vanished. The runtime (registry, `LocalRuntime`, proxy, hello processes)
//! and the clients stay on the test's runtime, so the proxy keeps serving across the kill.
//! No controller API was needed for this: `controller::start` spawns on the runtime it is
//! called from.
//!
//! What an in-process kill cannot do is interrupt the synchronous part of a round (observe,
//! step, checkpoint, act, publish run with no `.await`): tasks stop at await points, so the
//! round in flight on the controller's thread completes (possibly after `shutdown_background`
//! returned, a few milliseconds into the successor's life: the same race a crashed process
//! that still flushed one write would create, which compare-and-put on the checkpoint
//! resolves). A kill between "checkpoint" and "act" is covered by the controller's design
//! (`ensure` re-applies the checkpoint's desired state on every round; `machine::resync` is
//! tested in `tests/machine.rs`), not here. The kill points here are arbitrary in time
//! (random delays, printed): while paused, while the canary's pods are starting inside the
//! `setWeight` step (v2 is told to be ready only 1.5 s after it starts), and right after a
//! promote command (possibly before it was applied: a command queued in a
//! dead process is lost, and the test then asks again, as a user would).
//!
//! **A real SIGKILL.** The second test runs what `slipway up` runs for a rollout (a
//! `LocalRuntime` with its proxy, a `Store`, the controller) in a child process (this test
//! binary again, which then runs `sigkill_child`, so no CLI binary has to be built), `kill -9`s it
//! while the rollout is paused at 5 %, and starts another child on the same data directory.
//! The proxy died with the process, so requests in the gap fail by construction; it asserts
//! the checkpoint left by the dead process, that the successor resumes at the same step with
//! the same weights, that clients succeed again with a 95/5 split, and that it drives on.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use slipway_model::Object;
use slipway_rollout::controller::{self, ControllerOptions, RolloutHandle};
use slipway_rollout::machine::{CommandKind, RolloutPhase, RolloutState};
use slipway_runtime::local::{LocalOptions, LocalRuntime};
use slipway_runtime::{ApplyOptions, Runtime};
use slipway_store::Store;
use slipway_testkit::load::{load, split, stop_load};
use slipway_testkit::manifests::{self, namespaced, HelloPod};
use slipway_testkit::{wait_until, HelloRegistry};

const PATIENCE: Duration = Duration::from_secs(60);
const KEY: &str = "default/hello";
const HEAL: ApplyOptions = ApplyOptions {
    heal: true,
    create_namespace: false,
};

fn service() -> Object {
    Object::new(namespaced(
        manifests::service("hello", "hello", None),
        "default",
    ))
}

/// Argo's canary example shape with indefinite pauses (the test promotes past them). `env`:
/// the container's environment.
fn rollout(image: &str, env: serde_json::Value) -> Object {
    let strategy = manifests::canary(&[Some(5), None, Some(25), None, Some(100)], Some(1), None);
    let rollout = manifests::hello_rollout("hello", 2, &HelloPod::new(image).env(env), strategy);
    Object::new(namespaced(rollout, "default"))
}

/// A controller on a runtime of its own, so that it can die abruptly.
struct Controller {
    runtime: Option<tokio::runtime::Runtime>,
    handle: RolloutHandle,
}

impl Controller {
    async fn start(rt: &Arc<LocalRuntime>, store: &Store) -> Controller {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rollout-controller")
            .enable_all()
            .build()
            .expect("controller runtime");
        let handle = runtime
            .spawn(controller::start(
                rt.clone(),
                store.clone(),
                ControllerOptions::default(),
            ))
            .await
            .expect("start task")
            .expect("controller");
        Controller {
            runtime: Some(runtime),
            handle,
        }
    }

    /// Kills it: every task of the controller is dropped where it stands, nothing is awaited.
    fn kill(mut self) {
        if let Some(r) = self.runtime.take() {
            r.shutdown_background();
        }
    }

    fn state(&self) -> Option<RolloutState> {
        self.handle.state(KEY)
    }

    /// The state once the successor has run several rounds (100 ms each): what it made of
    /// the checkpoint, not the checkpoint it loaded.
    async fn after_a_few_rounds(&self) -> RolloutState {
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.state().expect("state")
    }

    async fn wait(&self, what: &str, f: impl Fn(&RolloutState) -> bool) -> RolloutState {
        let ok = wait_until(PATIENCE, || {
            let r = self.state().is_some_and(|s| f(&s));
            async move { r }
        })
        .await;
        assert!(ok, "{what}: {:#?}", self.state());
        self.state().expect("state")
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(r) = self.runtime.take() {
            r.shutdown_background();
        }
    }
}

fn arbitrary_ms(max_ms: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos) % max_ms
}

fn checkpoint(store: &Store) -> RolloutState {
    store
        .get_checkpoint::<RolloutState>(controller::CHECKPOINTS, KEY)
        .expect("read checkpoint")
        .expect("rollout checkpointed")
        .0
}

/// What must survive a kill.
fn position(s: &RolloutState) -> (u32, u32, Option<String>, Option<String>, Option<String>) {
    (
        s.step_index,
        s.weights.canary_weight,
        s.weights.canary.clone(),
        s.stable.clone(),
        s.current.clone(),
    )
}

/// Kills `ctl` after an arbitrary delay below `max_ms`; waits until its last round can have
/// finished; answers the checkpoint it left.
async fn kill_after(ctl: Controller, max_ms: u64, store: &Store, when: &str) -> RolloutState {
    let ms = arbitrary_ms(max_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ctl.kill();
    // A dead process's restart takes time too; meanwhile its last round has surely ended.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = checkpoint(store);
    println!(
        "killed {when}, {ms} ms in: checkpoint at step {} weight {} ({:?})",
        s.step_index, s.weights.canary_weight, s.phase
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_controller_resumes_at_the_same_step_with_the_same_weights_and_no_request_fails() {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let v2 = registry.push_hello("v2").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = Arc::new(
        LocalRuntime::open(LocalOptions::new(dir.path().join("data")))
            .await
            .expect("open runtime"),
    );
    let store = Store::open(dir.path().join("slipway.db")).expect("store");
    let ctl = Controller::start(&rt, &store).await;
    rt.apply(
        "app",
        vec![service(), rollout(&v1, serde_json::json!([]))],
        &HEAL,
    )
    .await
    .expect("apply v1");
    ctl.wait("v1 healthy", |s| {
        s.phase == RolloutPhase::Healthy && s.stable.is_some()
    })
    .await;
    let addr = rt
        .endpoints(None)
        .into_iter()
        .find(|e| e.name == "hello")
        .and_then(|e| e.ports.first().map(|p| p.1))
        .expect("service endpoint");
    let (l, tasks) = load(addr, 4, true);

    // 1. Inside the first setWeight step, while the canary's pods start (the step waits for
    //    them): the successor carries on from the checkpoint and reaches the pause at 5 %.
    // v2's pods become ready 1.5 s after they start, so the first step lasts that long.
    let slow_start = serde_json::json!([{"name": "READY_AFTER_MS", "value": "1500"}]);
    rt.apply("app", vec![rollout(&v2, slow_start)], &HEAL)
        .await
        .expect("apply v2");
    ctl.wait("the update started", |s| s.current != s.stable)
        .await;
    let killed = kill_after(ctl, 1000, &store, "while the canary starts").await;
    assert_eq!(
        killed.step_index, 0,
        "not killed inside the first step: {killed:#?}"
    );
    let ctl = Controller::start(&rt, &store).await;
    let first = ctl.after_a_few_rounds().await;
    assert!(
        first.step_index >= killed.step_index && first.current == killed.current,
        "resumed behind its checkpoint: {killed:#?} then {first:#?}"
    );
    let paused = ctl
        .wait("paused at 5 %", |s| {
            s.phase == RolloutPhase::Paused && s.step_index == 1 && s.weights.canary_weight == 5
        })
        .await;
    assert_eq!(paused.current, killed.current, "the same canary revision");

    // 2. While paused at 5 %, with clients sending requests.
    let killed = kill_after(ctl, 500, &store, "while paused at 5 %").await;
    assert_eq!(position(&killed), position(&paused));
    // Nobody drives the rollout now: the proxy still splits 95/5.
    let (on_v2, failed) = split(addr, 2000, 8).await;
    assert_eq!(failed, 0);
    let share = on_v2 as f64 * 100.0 / 2000.0;
    assert!(
        (share - 5.0).abs() <= 1.0,
        "{share:.2} % on v2 without a controller"
    );
    let ctl = Controller::start(&rt, &store).await;
    let resumed = ctl.after_a_few_rounds().await;
    assert_eq!(position(&resumed), position(&paused));
    assert_eq!(resumed.phase, RolloutPhase::Paused);

    // 3. Right after a promote (it may die before or after applying it).
    ctl.handle
        .command(KEY, CommandKind::Promote)
        .expect("promote");
    let killed = kill_after(ctl, 150, &store, "right after a promote").await;
    let ctl = Controller::start(&rt, &store).await;
    let resumed = ctl.after_a_few_rounds().await;
    if killed.phase == RolloutPhase::Paused {
        assert_eq!(
            position(&resumed),
            position(&killed),
            "the successor stays where the checkpoint paused"
        );
    } else {
        // Killed between two steps: the successor goes on from there.
        assert!(
            resumed.step_index >= killed.step_index && resumed.current == killed.current,
            "resumed behind its checkpoint: {killed:#?} then {resumed:#?}"
        );
    }
    if resumed.step_index < 3 {
        // The command died with its controller, before being applied: ask again.
        ctl.handle
            .command(KEY, CommandKind::Promote)
            .expect("promote again");
    }
    let at25 = ctl
        .wait("paused at 25 %", |s| {
            s.phase == RolloutPhase::Paused && s.step_index == 3 && s.weights.canary_weight == 25
        })
        .await;
    assert_eq!(at25.current, paused.current);

    // 4. Paused at 25 %, once more.
    let killed = kill_after(ctl, 500, &store, "while paused at 25 %").await;
    assert_eq!(position(&killed), position(&at25));
    let ctl = Controller::start(&rt, &store).await;
    let resumed = ctl.after_a_few_rounds().await;
    assert_eq!(position(&resumed), position(&at25));
    assert_eq!(resumed.phase, RolloutPhase::Paused);

    stop_load(&l, tasks).await;
    let (requests, failures) = (
        l.requests.load(Ordering::SeqCst),
        l.failures.load(Ordering::SeqCst),
    );
    println!("{requests} requests across four kills, {failures} failed");
    assert!(requests > 500, "too little load: {requests}");
    assert_eq!(
        failures,
        0,
        "no request may fail: {:?}",
        l.reasons.lock().expect("lock")
    );

    // The last successor finishes the rollout.
    ctl.handle
        .command(KEY, CommandKind::Promote)
        .expect("promote");
    let done = ctl
        .wait("v2 stable", |s| {
            s.phase == RolloutPhase::Healthy && s.stable == at25.current
        })
        .await;
    assert_eq!(done.weights.canary_weight, 0);
    ctl.handle.shutdown().await;
    ctl.kill();
    rt.shutdown().await;
}

// ---- a real SIGKILL ------------------------------------------------------------------------

/// Set in the child process of the SIGKILL test: its data directory.
const CHILD_DIR: &str = "SLIPWAY_CONTROLLER_KILL_CHILD";

/// The child of [`a_sigkilled_process_resumes_the_rollout_at_the_same_step_and_weights`]:
/// `slipway up` reduced to what a rollout needs (a `LocalRuntime`, a `Store`, the rollout
/// controller; this test binary run again, so no CLI binary is needed). It takes commands on
/// stdin (`apply <JSON array of objects>`, `promote`) and prints `state <JSON>` every 20 ms.
/// The test binary runs it when started with the child's environment variable (the test
/// itself re-runs as the child; see its first lines).
async fn sigkill_child(dir: std::ffi::OsString) {
    let dir = std::path::PathBuf::from(dir);
    let rt = Arc::new(
        LocalRuntime::open(LocalOptions::new(dir.join("data")))
            .await
            .expect("open runtime"),
    );
    let store = Store::open(dir.join("slipway.db")).expect("store");
    let handle = controller::start(rt.clone(), store, ControllerOptions::default())
        .await
        .expect("controller");
    let printer = {
        let handle = handle.clone();
        tokio::spawn(async move {
            loop {
                if let Some(s) = handle.state(KEY) {
                    println!("state {}", serde_json::to_string(&s).expect("json"));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // Stdin is read on a thread of its own (the workspace's tokio has no `io-std`).
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        if let Some(objects) = line.strip_prefix("apply ") {
            let objects: Vec<serde_json::Value> = serde_json::from_str(objects).expect("objects");
            rt.apply("app", objects.into_iter().map(Object::new).collect(), &HEAL)
                .await
                .expect("apply");
        } else if line == "promote" {
            handle.command(KEY, CommandKind::Promote).expect("promote");
        }
    }
    // Stdin closed: the parent is done (or gone); stop cleanly, replicas included.
    printer.abort();
    handle.shutdown().await;
    rt.shutdown().await;
}

/// A child process running the controller (see [`sigkill_child`]).
struct Child {
    process: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    state: Arc<std::sync::Mutex<Option<RolloutState>>>,
}

impl Child {
    fn start(dir: &std::path::Path) -> Child {
        use std::io::BufRead;
        let mut process = std::process::Command::new(std::env::current_exe().expect("test exe"))
            .args([
                "--exact",
                "a_sigkilled_process_resumes_the_rollout_at_the_same_step_and_weights",
                "--nocapture",
            ])
            .env(CHILD_DIR, dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start the child");
        let stdin = process.stdin.take();
        let stdout = process.stdout.take().expect("stdout");
        let state = Arc::new(std::sync::Mutex::new(None));
        let latest = state.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(json) = line.strip_prefix("state ") {
                    if let Ok(s) = serde_json::from_str::<RolloutState>(json) {
                        *latest.lock().expect("lock") = Some(s);
                    }
                }
            }
        });
        Child {
            process,
            stdin,
            state,
        }
    }

    fn send(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("child stdin");
        writeln!(stdin, "{line}").expect("write to the child");
        stdin.flush().expect("flush");
    }

    fn apply(&mut self, objects: &[Object]) {
        let values: Vec<&serde_json::Value> = objects.iter().map(|o| &o.value).collect();
        self.send(&format!(
            "apply {}",
            serde_json::to_string(&values).expect("json")
        ));
    }

    fn state(&self) -> Option<RolloutState> {
        self.state.lock().expect("lock").clone()
    }

    async fn wait(&self, what: &str, f: impl Fn(&RolloutState) -> bool) -> RolloutState {
        let ok = wait_until(PATIENCE, || {
            let r = self.state().is_some_and(|s| f(&s));
            async move { r }
        })
        .await;
        assert!(ok, "{what}: {:#?}", self.state());
        self.state().expect("state")
    }

    /// `kill -9`.
    fn sigkill(mut self) {
        self.process.kill().expect("SIGKILL");
        self.process.wait().expect("reap");
        self.stdin = None;
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Closing stdin stops the child cleanly (its replicas with it); kill it if it hangs.
        if self.stdin.take().is_some() {
            for _ in 0..100 {
                if matches!(self.process.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

fn pinned_service(port: u16) -> Object {
    let service = manifests::service("hello", "hello", Some(port));
    Object::new(namespaced(service, "default"))
}

/// A real `kill -9` of a process running the runtime, the proxy and the controller, as
/// `slipway up` does, in the middle of a rollout paused at 5 %. The proxy dies with it, so
/// requests during the gap fail by construction: this test asserts only what the checkpoint
/// guarantees. After a restart on the same data directory (which kills the replicas the dead
/// process left and starts them again, the stable revision from its saved template) and the
/// same desired objects applied again (what the GitOps controller does on start), the rollout
/// is back at the same step with the same weights, the proxy splits 95/5 again, clients
/// succeed again, and the successor still drives the rollout on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_process_resumes_the_rollout_at_the_same_step_and_weights() {
    // Started by this very test as its child: be the child, not the test.
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        return sigkill_child(dir).await;
    }
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let v2 = registry.push_hello("v2").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = slipway_testkit::free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let service = pinned_service(port);

    let mut child = Child::start(dir.path());
    child.apply(&[service.clone(), rollout(&v1, serde_json::json!([]))]);
    child
        .wait("v1 healthy", |s| {
            s.phase == RolloutPhase::Healthy && s.stable.is_some()
        })
        .await;
    let desired = [service, rollout(&v2, serde_json::json!([]))];
    child.apply(&desired);
    let paused = child
        .wait("paused at 5 %", |s| {
            s.phase == RolloutPhase::Paused && s.step_index == 1 && s.weights.canary_weight == 5
        })
        .await;
    let (_, failed) = split(addr, 400, 8).await;
    assert_eq!(failed, 0, "before the kill");
    let ms = arbitrary_ms(500);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    child.sigkill();
    println!(
        "kill -9 {ms} ms into the pause at step {} weight {}",
        paused.step_index, paused.weights.canary_weight
    );
    {
        let store = Store::open(dir.path().join("slipway.db")).expect("store after the kill");
        assert_eq!(position(&checkpoint(&store)), position(&paused));
    }

    let mut child = Child::start(dir.path());
    child.apply(&desired);
    let resumed = child
        .wait("resumed", |s| s.phase == RolloutPhase::Paused)
        .await;
    assert_eq!(position(&resumed), position(&paused));
    // Clients succeed again once the replicas are ready behind the new proxy.
    let serving = wait_until(PATIENCE, || async {
        matches!(slipway_testkit::http_get(addr, "/").await, Ok((200, _)))
    })
    .await;
    assert!(serving, "the proxy did not come back on {addr}");
    // Both revisions' replicas take a moment to be ready again; then the split is 95/5.
    let steady = wait_until(PATIENCE, || async {
        let (v2, failed) = split(addr, 2000, 8).await;
        let share = v2 as f64 * 100.0 / 2000.0;
        println!("after the restart: {share:.2} % on v2, {failed} of 2000 failed");
        failed == 0 && (share - 5.0).abs() <= 1.0
    })
    .await;
    assert!(steady, "no clean 95/5 split after the restart");
    let s = child.state().expect("state");
    assert_eq!(position(&s), position(&paused), "still at the same step");

    child.send("promote");
    child
        .wait("paused at 25 %", |s| {
            s.phase == RolloutPhase::Paused && s.step_index == 3 && s.weights.canary_weight == 25
        })
        .await;
    drop(child);
}
