//! The CPU thread pool with a page-supplied spawner, as the browser drives it: workers that
//! start late (a Web Worker runs some time after it is created), workers that never start,
//! and spawns that fail. Every task runs exactly once in each case, and dropping the pool
//! returns.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use m1_engine::cpu::kernels::Pool;

type Body = Box<dyn FnOnce() + Send>;

/// Runs `jobs` jobs of `tasks` tasks each and checks that every task ran exactly once.
fn each_task_once(pool: &Pool, jobs: usize, tasks: usize) {
    for job in 0..jobs {
        let counts: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
        pool.run(tasks, &|i| {
            counts[i].fetch_add(1, Ordering::Relaxed);
        });
        for (i, c) in counts.iter().enumerate() {
            assert_eq!(c.load(Ordering::Relaxed), 1, "job {job}: task {i}");
        }
    }
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(20), "timed out: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn workers_that_start_late_join_a_running_pool() {
    // Each worker starts 50 ms after it is spawned; jobs run meanwhile on the caller.
    let pool = Pool::with_spawner(3, &|body: Body| {
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            body()
        });
        Ok(())
    });
    assert_eq!(pool.threads(), 3);
    assert_eq!(pool.started(), 0);
    each_task_once(&pool, 20, 37);
    wait_until("both workers started", || pool.started() == 2);
    // With the workers in, tasks are shared: some run off the caller's thread.
    let caller = thread::current().id();
    let elsewhere = AtomicUsize::new(0);
    for _ in 0..200 {
        pool.run(64, &|_| {
            if thread::current().id() != caller {
                elsewhere.fetch_add(1, Ordering::Relaxed);
            }
            thread::sleep(Duration::from_micros(20));
        });
        if elsewhere.load(Ordering::Relaxed) > 0 {
            break;
        }
    }
    assert!(
        elsewhere.load(Ordering::Relaxed) > 0,
        "no task ran on a worker"
    );
    each_task_once(&pool, 200, 37);
}

#[test]
fn failed_spawns_leave_a_smaller_pool() {
    let none = Pool::with_spawner(4, &|_body: Body| Err("no workers here".into()));
    assert_eq!(none.threads(), 1);
    each_task_once(&none, 5, 9);

    // The second spawn fails: one worker, and no attempt after the failure.
    let calls = AtomicUsize::new(0);
    let one = Pool::with_spawner(4, &|body: Body| {
        if calls.fetch_add(1, Ordering::Relaxed) == 0 {
            thread::spawn(body);
            Ok(())
        } else {
            Err("worker limit".into())
        }
    });
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    assert_eq!(one.threads(), 2);
    each_task_once(&one, 50, 9);
}

#[test]
fn a_pool_whose_workers_never_started_drops_and_they_return() {
    // The spawner keeps the bodies (a Web Worker whose script has not loaded yet).
    let held: Arc<Mutex<Vec<Body>>> = Arc::default();
    let pool = Pool::with_spawner(3, &|body: Body| {
        held.lock().unwrap().push(body);
        Ok(())
    });
    each_task_once(&pool, 3, 5);
    drop(pool);
    // Started after the pool is gone, each body sees the stop and returns.
    let bodies: Vec<Body> = std::mem::take(&mut *held.lock().unwrap());
    assert_eq!(bodies.len(), 2);
    let handles: Vec<_> = bodies.into_iter().map(thread::spawn).collect();
    wait_until("late workers returned", || {
        handles.iter().all(|h| h.is_finished())
    });
}

#[test]
fn dropping_a_pool_stops_its_running_workers() {
    let exited = Arc::new(AtomicUsize::new(0));
    let pool = Pool::with_spawner(3, &|body: Body| {
        let exited = Arc::clone(&exited);
        thread::spawn(move || {
            body();
            exited.fetch_add(1, Ordering::Relaxed);
        });
        Ok(())
    });
    wait_until("workers started", || pool.started() == 2);
    each_task_once(&pool, 10, 16);
    // Let them park, then drop: a parked worker must be woken to see the stop.
    thread::sleep(Duration::from_millis(20));
    drop(pool);
    wait_until("workers exited", || exited.load(Ordering::Relaxed) == 2);
}
